#include "aws/json_client.hpp"

#include <algorithm>

#include "aws/http.hpp"
#include "aws/sigv4.hpp"

namespace culvert::aws {
AwsJsonClient::AwsJsonClient(JsonServiceConfig config) : cfg_(std::move(config)) {
  if (!cfg_.clock) cfg_.clock = &system_clock();
  if (!cfg_.random) cfg_.random = &secure_random_;
  if (!cfg_.transport) cfg_.transport = &curl_transport();
  if (cfg_.max_attempts < 1) cfg_.max_attempts = 1;
  endpoint_ = cfg_.endpoint.empty() ? "https://" + cfg_.service + "." + cfg_.region + ".amazonaws.com"
                                    : cfg_.endpoint;
  while (endpoint_.size() > 8 && endpoint_.back() == '/') endpoint_.pop_back();
}

Result<std::string> AwsJsonClient::call(std::string_view action, std::string_view json_body, AwsError* error) {
  auto url = parse_url(endpoint_);
  if (!url) return invalid_argument(cfg_.service + " endpoint: " + url.status().message());
  const std::string target = cfg_.target_prefix + "." + std::string(action);
  const std::string what = cfg_.service + " " + std::string(action);
  const std::string path = url->path.empty() ? "/" : url->path;
  const std::string payload_hash = sha256_hex(json_body);

  for (int attempt = 1;; ++attempt) {
    auto creds = cfg_.credentials->get();
    if (!creds) return creds.status();
    SigningRequest sr;
    sr.method = "POST";
    sr.host = url->host_header();
    sr.path = path;
    sr.headers = {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
    sr.payload_sha256 = payload_hash;
    SignedRequest signed_req = sign_v4(sr, *creds,
                                       {.region = cfg_.region, .service = cfg_.service,
                                        .double_encode_path = true, .content_sha256_header = false},
                                       cfg_.clock->now());
    HttpRequest hr;
    hr.method = "POST";
    hr.url = url->scheme + "://" + url->host_header() + path;
    hr.headers = sr.headers;
    hr.headers.emplace_back("Host", sr.host);
    for (auto& h : signed_req.headers) hr.headers.push_back(std::move(h));
    hr.body = json_body;
    hr.timeout_ms = cfg_.timeout_ms;

    AwsError err;
    auto resp = cfg_.transport->send(hr);
    if (!resp) {
      err.message = resp.status().message();  // http_status 0: no answer
    } else if (resp->status == 200) {
      return std::move(resp->body);
    } else {
      err = parse_aws_error(resp->status, resp->body, resp->header("x-amzn-errortype"));
    }
    if (error) *error = err;
    const bool retry = is_retryable(err);
    Status failure = aws_error_status(what, err);
    if (!retry || attempt >= cfg_.max_attempts) {
      if (attempt > 1) return Status(failure.code(), failure.message() + " (after " + std::to_string(attempt) + " attempts)");
      return failure;
    }
    double jitter;
    {
      std::lock_guard lock(random_mu_);
      jitter = 0.5 + 0.5 * cfg_.random->uniform01();
    }
    auto delay = std::min<Millis::rep>(cfg_.max_backoff.count(), cfg_.base_backoff.count() << std::min(attempt - 1, 20));
    cfg_.clock->sleep_for(Millis(static_cast<Millis::rep>(static_cast<double>(delay) * jitter)));
  }
}

}  // namespace culvert::aws
