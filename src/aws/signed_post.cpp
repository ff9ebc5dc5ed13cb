#include "aws/signed_post.hpp"

#include <algorithm>

namespace culvert::aws::detail {

Result<std::string> signed_post(const PostTarget& t, std::string_view what_view, const HeaderList& headers,
                                std::string_view body, AwsError* error) {
  const std::string what(what_view);
  auto url = parse_url(t.endpoint);
  if (!url) return invalid_argument(t.service + " endpoint: " + url.status().message());
  const std::string path = url->path.empty() ? "/" : url->path;
  const std::string payload_hash = sha256_hex(body);

  for (int attempt = 1;; ++attempt) {
    auto creds = t.credentials->get();
    if (!creds) return creds.status();
    SigningRequest sr;
    sr.method = "POST";
    sr.host = url->host_header();
    sr.path = path;
    sr.headers = headers;
    sr.payload_sha256 = payload_hash;
    SignedRequest signed_req = sign_v4(sr, *creds,
                                       {.region = t.region, .service = t.service, .double_encode_path = true,
                                        .content_sha256_header = false},
                                       t.clock->now());
    HttpRequest hr;
    hr.method = "POST";
    hr.url = url->scheme + "://" + url->host_header() + path;
    hr.headers = sr.headers;
    hr.headers.emplace_back("Host", sr.host);
    for (auto& h : signed_req.headers) hr.headers.push_back(std::move(h));
    hr.body = body;
    hr.timeout_ms = t.timeout_ms;

    AwsError err;
    auto resp = t.transport->send(hr);
    if (!resp) {
      err.message = resp.status().message();  // http_status 0: no answer
    } else if (resp->status == 200) {
      return std::move(resp->body);
    } else {
      err = parse_aws_error(resp->status, resp->body, resp->header("x-amzn-errortype"));
    }
    if (error) *error = err;
    Status failure = aws_error_status(what, err);
    if (!is_retryable(err) || attempt >= t.max_attempts) {
      if (attempt > 1)
        return Status(failure.code(), failure.message() + " (after " + std::to_string(attempt) + " attempts)");
      return failure;
    }
    double jitter;
    {
      std::lock_guard lock(*t.random_mu);
      jitter = 0.5 + 0.5 * t.random->uniform01();
    }
    auto delay = std::min<Millis::rep>(t.max_backoff.count(), t.base_backoff.count() << std::min(attempt - 1, 20));
    t.clock->sleep_for(Millis(static_cast<Millis::rep>(static_cast<double>(delay) * jitter)));
  }
}

std::string service_endpoint(const std::string& service, const std::string& region, const std::string& endpoint) {
  std::string out = endpoint.empty() ? "https://" + service + "." + region + ".amazonaws.com" : endpoint;
  while (out.size() > 8 && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace culvert::aws::detail
