// AWS Signature Version 4 (header form), for any AWS service: S3 (REST/XML) and the
// JSON 1.1 services such as ECS. Pure computation: the signing time is a parameter, so
// signatures are reproducible and checked against published and botocore-made vectors.
// Thread-safe (no state).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <culvert/clock.hpp>

namespace culvert::aws {

// One set of AWS credentials. `expiration` is empty for long-lived keys.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
  std::optional<SysTime> expiration;
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// What is signed. REQUIRES: `path` is the request path exactly as sent (already
// percent-encoded, "/" when empty); `query` holds decoded names and values.
struct SigningRequest {
  std::string method;          // "GET", "PUT", ...
  std::string host;            // the Host header: "host" or "host:port" for a non-default port
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> query;
  HeaderList headers;          // further headers to sign (content-type, range, x-amz-target...)
  std::string payload_sha256;  // lower-case hex of the body, or "UNSIGNED-PAYLOAD"
};

struct SigningParams {
  std::string region;   // "us-east-1"
  std::string service;  // "s3", "ecs", ...
  // Non-S3 services sign the path encoded once more (S3 signs it as sent).
  // Default: false (S3 behaviour).
  bool double_encode_path = false;
  // Sends and signs x-amz-content-sha256 (S3 requires it). Default: true.
  bool content_sha256_header = true;
};

struct SignedRequest {
  // Headers to add to the request: x-amz-date, x-amz-content-sha256 (when asked),
  // x-amz-security-token (with a session token) and Authorization.
  HeaderList headers;
  std::string canonical_request;
  std::string string_to_sign;
  std::string authorization;
};

SignedRequest sign_v4(const SigningRequest& request, const Credentials& credentials,
                      const SigningParams& params, SysTime when);

// "20130524T000000Z".
std::string amz_date(SysTime t);
// Percent-encodes everything but A-Z a-z 0-9 - _ . ~ (and '/' when `keep_slash`).
std::string uri_encode(std::string_view s, bool keep_slash);
// SHA-256 of the empty string, the payload hash of bodiless requests.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

}  // namespace culvert::aws
