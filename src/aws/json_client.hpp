// A client for AWS services spoken in the JSON 1.1 protocol (ECS, and others such as
// CloudWatch Logs): POST / with X-Amz-Target: <prefix>.<Action> and
// Content-Type: application/x-amz-json-1.1, signed with SigV4. Retries throttling,
// 5xx and transport failures with bounded, jittered exponential backoff on the injected
// Clock; maps the JSON error body ({"__type": "...#Code", "message": ...}) to Status.
//
// Owns its credentials provider. Thread-safe (the provider is; the jitter is guarded).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "core/crypto.hpp"
#include "aws/credentials.hpp"

namespace culvert::aws {

struct JsonServiceConfig {
  std::string service;        // signing name, e.g. "ecs"
  std::string target_prefix;  // e.g. "AmazonEC2ContainerServiceV20141113"
  std::string region;         // REQUIRES: not empty
  // Default: https://<service>.<region>.amazonaws.com
  std::string endpoint;
  // REQUIRES: not null.
  std::unique_ptr<CredentialsProvider> credentials;
  int max_attempts = 4;
  Millis base_backoff{100};
  Millis max_backoff{5000};
  long timeout_ms = 30000;
  // Not owned; must outlive the client. Default: the system clock / a CSPRNG.
  Clock* clock = nullptr;
  Random* random = nullptr;
};

class AwsJsonClient {
 public:
  explicit AwsJsonClient(JsonServiceConfig config);
  // Calls `action` (e.g. "RunTask") with a JSON request body; the JSON response body.
  // Errors: Unauthenticated (UnrecognizedClientException, InvalidSignatureException,
  // ExpiredToken...), PermissionDenied (AccessDenied...), NotFound (*NotFoundException),
  // InvalidArgument (ClientException, ValidationException, InvalidParameterException),
  // Unavailable (unreachable, 5xx or throttled after the last attempt). The message
  // names the action, the AWS error code and its message.
  Result<std::string> call(std::string_view action, std::string_view json_body);

  const std::string& endpoint() const { return endpoint_; }

 private:
  JsonServiceConfig cfg_;
  std::string endpoint_;
  SecureRandom secure_random_;
  std::mutex random_mu_;
};

// "com.amazonaws.ecs#ClusterNotFoundException" -> "ClusterNotFoundException".
std::string aws_error_code(std::string_view type);

}  // namespace culvert::aws
