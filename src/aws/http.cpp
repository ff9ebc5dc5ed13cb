#include "aws/http.hpp"

#include <curl/curl.h>

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cstdio>
#include <memory>
#include <mutex>

namespace culvert::aws {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

struct Transfer {
  CURL* curl = nullptr;
  const HttpRequest* req = nullptr;
  HttpResponse* resp = nullptr;
  // Upload source.
  std::string_view mem;
  size_t mem_pos = 0;
  std::unique_ptr<std::FILE, FileCloser> in;
  uint64_t in_left = 0;
  // Download sink (response_file, opened on the first byte of a 2xx body).
  std::unique_ptr<std::FILE, FileCloser> out;
  bool out_failed = false;
};

size_t read_cb(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t cap = size * n;
  if (t->in) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(cap, t->in_left));
    size_t got = want ? std::fread(buf, 1, want, t->in.get()) : 0;
    if (got < want) return CURL_READFUNC_ABORT;
    t->in_left -= got;
    return got;
  }
  size_t got = std::min(cap, t->mem.size() - t->mem_pos);
  std::memcpy(buf, t->mem.data() + t->mem_pos, got);
  t->mem_pos += got;
  return got;
}

size_t write_cb(char* data, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t len = size * n;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  if (!t->req->response_file.empty() && code >= 200 && code < 300) {
    if (!t->out) {
      t->out.reset(std::fopen(t->req->response_file.c_str(), "wb"));
      if (!t->out) {
        t->out_failed = true;
        return 0;
      }
    }
    if (std::fwrite(data, 1, len, t->out.get()) != len) {
      t->out_failed = true;
      return 0;
    }
    return len;
  }
  t->resp->body.append(data, len);
  return len;
}

size_t header_cb(char* data, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t len = size * n;
  std::string_view line(data, len);
  if (line.starts_with("HTTP/")) {  // a new response (e.g. after 100 Continue or a redirect)
    t->resp->headers.clear();
    return len;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  t->resp->headers.emplace_back(std::move(name), std::string(value));
  return len;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

std::string UrlParts::host_header() const {
  bool default_port = port.empty() || (scheme == "http" && port == "80") ||
                      (scheme == "https" && port == "443");
  return default_port ? host : host + ":" + port;
}

Result<UrlParts> parse_url(std::string_view url) {
  UrlParts p;
  auto sep = url.find("://");
  if (sep == std::string_view::npos)
    return invalid_argument("malformed URL '" + std::string(url) + "' (expected http://host[:port])");
  p.scheme = std::string(url.substr(0, sep));
  if (p.scheme != "http" && p.scheme != "https")
    return invalid_argument("unsupported URL scheme in '" + std::string(url) + "' (http or https)");
  std::string_view rest = url.substr(sep + 3);
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) p.path = std::string(rest.substr(slash));
  if (authority.empty()) return invalid_argument("URL '" + std::string(url) + "' has no host");
  if (authority.front() == '[') {  // IPv6 literal
    auto close = authority.find(']');
    if (close == std::string_view::npos) return invalid_argument("malformed IPv6 host in '" + std::string(url) + "'");
    p.host = std::string(authority.substr(0, close + 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') p.port = std::string(authority.substr(close + 2));
  } else {
    auto colon = authority.rfind(':');
    p.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) p.port = std::string(authority.substr(colon + 1));
  }
  for (char c : p.port)
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return invalid_argument("malformed port in URL '" + std::string(url) + "'");
  if (p.host.empty()) return invalid_argument("URL '" + std::string(url) + "' has no host");
  return p;
}

Result<HttpResponse> http_send(const HttpRequest& req) {
  global_init();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return internal_error("curl_easy_init failed");
  HttpResponse resp;
  Transfer t;
  t.curl = curl.get();
  t.req = &req;
  t.resp = &resp;
  CURL* c = curl.get();

  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req.connect_timeout_ms);
  if (req.timeout_ms > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req.timeout_ms);
  if (req.low_speed_seconds > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req.low_speed_seconds);
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);

  bool has_body = !req.body_file.empty() || !req.body.empty();
  uint64_t body_size = req.body.size();
  if (!req.body_file.empty()) {
    t.in.reset(std::fopen(req.body_file.c_str(), "rb"));
    if (!t.in) return not_found("cannot read local file " + req.body_file);
    if (::fseeko(t.in.get(), static_cast<off_t>(req.body_offset), SEEK_SET) != 0)
      return internal_error("cannot seek in " + req.body_file);
    t.in_left = req.body_length;
    body_size = req.body_length;
  } else {
    t.mem = req.body;
  }

  if (req.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
  } else {
    if (req.method == "POST" || has_body) {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_size));
    }
    if (req.method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(c, CURLOPT_READDATA, &t);

  std::unique_ptr<curl_slist, SlistDeleter> hdrs;
  auto add = [&](const std::string& line) {
    curl_slist* n = curl_slist_append(hdrs.get(), line.c_str());
    if (n) {
      (void)hdrs.release();
      hdrs.reset(n);
    }
  };
  for (const auto& [k, v] : req.headers) add(v.empty() ? k + ";" : k + ": " + v);
  add("Expect:");  // no 100-continue round trip
  if (req.method == "POST" || req.method == "PUT") {
    bool has_ct = false;
    for (const auto& [k, v] : req.headers)
      if (strcasecmp(k.c_str(), "content-type") == 0) has_ct = true;
    if (!has_ct) add("Content-Type:");  // libcurl would add a form content type to POSTs
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs.get());

  CURLcode rc = curl_easy_perform(c);
  if (t.out_failed) return unavailable("cannot write " + req.response_file);
  if (rc != CURLE_OK) {
    auto parts = parse_url(req.url);
    std::string where = parts ? parts->scheme + "://" + parts->host_header() : req.url;
    return unavailable("cannot reach " + where + ": " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  // A 2xx with an empty body still creates the response file.
  if (!req.response_file.empty() && resp.status >= 200 && resp.status < 300 && !t.out) {
    t.out.reset(std::fopen(req.response_file.c_str(), "wb"));
    if (!t.out) return unavailable("cannot write " + req.response_file);
  }
  if (t.out && std::fflush(t.out.get()) != 0) return unavailable("cannot write " + req.response_file);
  return resp;
}

namespace {
class CurlTransport final : public HttpTransport {
 public:
  Result<HttpResponse> send(const HttpRequest& request) override { return http_send(request); }
};
}  // namespace

HttpTransport& curl_transport() {
  static CurlTransport transport;  // stateless
  return transport;
}

}  // namespace culvert::aws
