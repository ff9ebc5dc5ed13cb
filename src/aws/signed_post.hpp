// Internal to src/aws: one signed POST to an AWS endpoint, with the retry rule of
// errors.hpp (capped, jittered exponential backoff on the injected clock). Shared by the
// JSON 1.1 client and the query client, which differ only in their headers and body.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "aws/credentials.hpp"
#include "aws/errors.hpp"
#include "aws/http.hpp"
#include "aws/sigv4.hpp"
#include "core/crypto.hpp"

namespace culvert::aws::detail {

// Where and how to send; nothing owned. REQUIRES: every pointer set.
struct PostTarget {
  std::string service;   // signing name
  std::string region;
  std::string endpoint;  // scheme://host[:port][/path]
  CredentialsProvider* credentials = nullptr;
  HttpTransport* transport = nullptr;
  Clock* clock = nullptr;
  Random* random = nullptr;
  std::mutex* random_mu = nullptr;  // guards `random`
  int max_attempts = 4;
  Millis base_backoff{100};
  Millis max_backoff{5000};
  long timeout_ms = 30000;
};

// POSTs `body` with `headers` (signed too); the 200 answer's body. `what` names the call
// in messages ("ecs RunTask"). On failure `error`, when given, holds the last error.
Result<std::string> signed_post(const PostTarget& target, std::string_view what, const HeaderList& headers,
                                std::string_view body, AwsError* error);

// The service's endpoint: `endpoint` without trailing slashes when given, else
// https://SERVICE.REGION.amazonaws.com.
std::string service_endpoint(const std::string& service, const std::string& region, const std::string& endpoint);

}  // namespace culvert::aws::detail
