#include "client/http_client.hpp"

#include <curl/curl.h>

#include <cctype>
#include <mutex>
#include <nlohmann/json.hpp>

namespace culvert::client {

namespace {

std::once_flag g_curl_init;  // curl_global_init must run once, before any handle

struct Answer {
  std::string body;
  size_t limit = 0;
  bool too_large = false;
};

size_t write_body(char* data, size_t size, size_t n, void* user) {
  auto* a = static_cast<Answer*>(user);
  if (size * n > a->limit - a->body.size()) {
    a->too_large = true;
    return 0;  // curl stops the transfer with CURLE_WRITE_ERROR
  }
  a->body.append(data, size * n);
  return size * n;
}

std::string trim_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

struct HttpClient::Impl {
  ClientOptions options;
  std::string base;
  CURL* curl = nullptr;
  char error[CURL_ERROR_SIZE] = {0};

  ~Impl() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  impl_->options = std::move(options);
  impl_->base = trim_slash(impl_->options.api_url);
  impl_->curl = curl_easy_init();
  if (impl_->curl == nullptr) throw std::bad_alloc();  // out of memory: a dead request
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

const ClientOptions& HttpClient::options() const { return impl_->options; }

Result<HttpResponse> HttpClient::send(std::string_view method, std::string_view target,
                                      std::string_view body, std::chrono::milliseconds extra_timeout) {
  CURL* c = impl_->curl;
  // Reset clears options but keeps the connection cache: keep-alive survives.
  curl_easy_reset(c);
  const std::string url = impl_->base + std::string(target);
  const std::string m(method);
  Answer response{.limit = impl_->options.max_answer_bytes};
  impl_->error[0] = 0;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, impl_->error);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(impl_->options.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>((impl_->options.request_timeout + extra_timeout).count()));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "culvert-client");
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");
  std::string auth;
  if (!impl_->options.api_token.empty()) {
    auth = "Authorization: Bearer " + impl_->options.api_token;
    headers = curl_slist_append(headers, auth.c_str());
  }
  if (m == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  if (rc != CURLE_OK && response.too_large) {
    return Status(StatusCode::kTooLarge, "the answer to " + m + " " + url + " is longer than " +
                                             std::to_string(impl_->options.max_answer_bytes) +
                                             " bytes; refused (is that a Culvert server?)");
  }
  if (rc != CURLE_OK) {
    std::string detail = impl_->error[0] != 0 ? impl_->error : curl_easy_strerror(rc);
    switch (rc) {
      case CURLE_COULDNT_CONNECT:
        return unavailable("cannot connect to the Culvert server at " + impl_->base + " (" + detail +
                           "); is it running? Set the address with `culvert config set api-url URL` "
                           "or CULVERT_API_URL");
      case CURLE_COULDNT_RESOLVE_HOST:
        return unavailable("cannot resolve the host of " + impl_->base + " (" + detail + ")");
      case CURLE_OPERATION_TIMEDOUT:
        return Status(StatusCode::kTimeout, m + " " + url + " timed out (" + detail + ")");
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        return invalid_argument("bad server URL '" + impl_->base + "' (" + detail + ")");
      default:
        return unavailable(m + " " + url + " failed: " + detail);
    }
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  return HttpResponse{static_cast<int>(status), std::move(response.body)};
}

Result<std::string> HttpClient::call(std::string_view method, std::string_view target,
                                     std::string_view body, std::chrono::milliseconds extra_timeout) {
  auto r = send(method, target, body, extra_timeout);
  if (!r) return r.status();
  if (r->status >= 200 && r->status < 300) return std::move(r->body);
  return status_from_http(r->status, r->body,
                          std::string(method) + " " + impl_->base + std::string(target));
}

Status status_from_http(int http_status, std::string_view body, std::string_view what) {
  StatusCode code = StatusCode::kInternal;
  switch (http_status) {
    case 400: code = StatusCode::kInvalidArgument; break;
    case 401: code = StatusCode::kUnauthenticated; break;
    case 403: code = StatusCode::kPermissionDenied; break;
    case 404: code = StatusCode::kNotFound; break;
    case 409: code = StatusCode::kConflict; break;
    case 413: code = StatusCode::kTooLarge; break;
    case 422: code = StatusCode::kUnprocessable; break;
    case 502: case 503: case 504: code = StatusCode::kUnavailable; break;
    default:
      code = (http_status >= 400 && http_status < 500) ? StatusCode::kInvalidArgument
                                                       : StatusCode::kInternal;
  }
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded() && j.is_object()) {
    auto e = j.find("error");
    if (e != j.end() && e->is_object()) {
      auto msg = e->find("message");
      if (msg != e->end() && msg->is_string() && !msg->get<std::string>().empty())
        return Status(code, msg->get<std::string>());
    }
  }
  std::string m = "HTTP " + std::to_string(http_status) + " from " + std::string(what);
  if (!body.empty()) m += ": " + std::string(body.substr(0, 200));
  return Status(code, m);
}

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

}  // namespace culvert::client
