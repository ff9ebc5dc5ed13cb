#include "aws/json_client.hpp"

#include "aws/signed_post.hpp"

namespace culvert::aws {

AwsJsonClient::AwsJsonClient(JsonServiceConfig config) : cfg_(std::move(config)) {
  if (!cfg_.clock) cfg_.clock = &system_clock();
  if (!cfg_.random) cfg_.random = &secure_random_;
  if (!cfg_.transport) cfg_.transport = &curl_transport();
  if (cfg_.max_attempts < 1) cfg_.max_attempts = 1;
  endpoint_ = detail::service_endpoint(cfg_.service, cfg_.region, cfg_.endpoint);
}

Result<std::string> AwsJsonClient::call(std::string_view action, std::string_view json_body, AwsError* error) {
  detail::PostTarget t{.service = cfg_.service, .region = cfg_.region, .endpoint = endpoint_,
                       .credentials = cfg_.credentials.get(), .transport = cfg_.transport, .clock = cfg_.clock,
                       .random = cfg_.random, .random_mu = &random_mu_, .max_attempts = cfg_.max_attempts,
                       .base_backoff = cfg_.base_backoff, .max_backoff = cfg_.max_backoff,
                       .timeout_ms = cfg_.timeout_ms};
  const HeaderList headers = {{"Content-Type", "application/x-amz-json-1.1"},
                              {"X-Amz-Target", cfg_.target_prefix + "." + std::string(action)}};
  return detail::signed_post(t, cfg_.service + " " + std::string(action), headers, json_body, error);
}

}  // namespace culvert::aws
