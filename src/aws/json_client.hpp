// A client for AWS services spoken in the JSON 1.1 protocol (ECS, and others such as
// CloudWatch Logs): POST / with X-Amz-Target: <prefix>.<Action> and
// Content-Type: application/x-amz-json-1.1, signed with SigV4. Retries what may succeed
// when sent again (is_retryable in errors.hpp: throttling, 5xx, no answer, ECS's
// concurrent-revision refusal) with capped, jittered exponential backoff on the injected
// Clock: before attempt n+1 it waits min(max_backoff, base_backoff * 2^(n-1)) times a
// random factor in [0.5, 1). Never retries another 4xx. Error answers, JSON or XML, are
// parsed by parse_aws_error and shown with their AWS code.
//
// Owns its credentials provider. Thread-safe (the provider and the transport are; the
// jitter is guarded).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "core/crypto.hpp"
#include "aws/credentials.hpp"
#include "aws/errors.hpp"
#include "aws/http.hpp"

namespace culvert::aws {

struct JsonServiceConfig {
  std::string service;        // signing name, e.g. "ecs"
  std::string target_prefix;  // e.g. "AmazonEC2ContainerServiceV20141113"
  std::string region;         // REQUIRES: not empty
  // Default: https://<service>.<region>.amazonaws.com
  std::string endpoint;
  // REQUIRES: not null.
  std::unique_ptr<CredentialsProvider> credentials;
  int max_attempts = 4;  // the first attempt included
  Millis base_backoff{100};
  Millis max_backoff{5000};
  long timeout_ms = 30000;
  // Not owned; must outlive the client. Default: the system clock / a CSPRNG / libcurl.
  Clock* clock = nullptr;
  Random* random = nullptr;
  HttpTransport* transport = nullptr;
};

class AwsJsonClient {
 public:
  explicit AwsJsonClient(JsonServiceConfig config);
  // Calls `action` (e.g. "RunTask") with a JSON request body; the JSON response body.
  // Errors: Unauthenticated (UnrecognizedClientException, InvalidSignatureException,
  // ExpiredToken...), PermissionDenied (AccessDenied...), NotFound (*NotFoundException),
  // InvalidArgument (ClientException, ValidationException, InvalidParameterException),
  // Unavailable (unreachable, 5xx or throttled after the last attempt). The message
  // names the action, the AWS error code and its message. When `error` is given, it
  // receives the last error answer (for callers that act on a particular AWS code).
  Result<std::string> call(std::string_view action, std::string_view json_body, AwsError* error = nullptr);

  const std::string& endpoint() const { return endpoint_; }

 private:
  JsonServiceConfig cfg_;
  std::string endpoint_;
  SecureRandom secure_random_;
  std::mutex random_mu_;
};

}  // namespace culvert::aws
