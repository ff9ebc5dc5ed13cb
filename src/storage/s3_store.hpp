// s3:// object storage over the S3 REST API (libcurl, SigV4 signed by aws/sigv4).
//
// Addressing: with a custom endpoint (S3-compatible services, s3rver in tests) requests
// are path-style, endpoint/bucket/key; on AWS they are virtual-hosted,
// https://bucket.s3.REGION.amazonaws.com/key (path-style for bucket names with dots).
// Large files are sent as multipart uploads (aborted on failure). 5xx answers,
// throttling and transport failures are retried with bounded, jittered exponential
// backoff on the injected Clock. S3 XML errors become Status values naming the bucket,
// key or endpoint.
//
// Owns its credentials provider. Thread-safe: the only shared state is the provider
// (thread-safe) and the retry jitter source (guarded).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <culvert/clock.hpp>
#include <culvert/storage.hpp>

#include "core/crypto.hpp"
#include "aws/credentials.hpp"

namespace culvert::storage {

struct S3Config {
  // "http://127.0.0.1:4568" for path-style on an S3-compatible service; empty = AWS.
  std::string endpoint;
  // REQUIRES: not empty.
  std::string region = "us-east-1";
  // REQUIRES: not null.
  std::unique_ptr<aws::CredentialsProvider> credentials;
  // put_file sends files of at least this size as a multipart upload of part_size
  // parts. Default: 16 MiB and 8 MiB. REQUIRES: part_size >= 5 MiB for AWS.
  uint64_t multipart_threshold = 16ull << 20;
  uint64_t part_size = 8ull << 20;
  // Attempts per request (1 = no retry), and the backoff before attempt n+1:
  // min(max_backoff, base_backoff * 2^(n-1)), scaled by a random factor in [0.5, 1).
  int max_attempts = 4;
  Millis base_backoff{100};
  Millis max_backoff{2000};
  long connect_timeout_ms = 5000;
  // Not owned; must outlive the store. Default: the system clock / a CSPRNG.
  Clock* clock = nullptr;
  Random* random = nullptr;
};

// "s3://bucket/a/b" -> {"bucket", "a/b"}. InvalidArgument names what is wrong.
struct S3Location {
  std::string bucket;
  std::string key;
};
Result<S3Location> parse_s3_uri(std::string_view uri);

// Where a request for `loc` goes: path-style under a custom endpoint, else
// virtual-hosted on AWS (path-style on s3.REGION.amazonaws.com for dotted bucket names).
// `path` is percent-encoded, exactly as sent and signed. Empty when `endpoint` is malformed.
struct S3Target {
  std::string scheme;
  std::string host;  // Host header value (with a non-default port)
  std::string path;
};
S3Target s3_target(const std::string& endpoint, const std::string& region, const S3Location& loc);

class S3Store final : public ObjectStore {
 public:
  explicit S3Store(S3Config config);
  ~S3Store() override;

  Result<std::string> get(const std::string& uri) override;
  Status put(const std::string& uri, std::string_view data) override;
  Result<bool> exists(const std::string& uri) override;
  Status put_file(const std::string& uri, const std::string& local_path) override;
  Status get_file(const std::string& uri, const std::string& local_path) override;
  Status remove(const std::string& uri) override;

  // One S3 request and its answer (defined in s3_store.cpp).
  struct Call;
  struct Reply;

 private:
  // Signs and sends `call`, retrying transport failures, 5xx and throttling. A non-2xx
  // final answer is returned as a Reply for error_for().
  Result<Reply> send(const Call& call);
  Status error_for(const Call& call, const Reply& reply) const;
  Status put_multipart(const Call& base, uint64_t size);
  std::string endpoint_name() const;
  double jitter();

  S3Config cfg_;
  Status endpoint_status_;  // InvalidArgument when cfg_.endpoint is malformed
  SecureRandom secure_random_;
  std::mutex random_mu_;
};

// Builds the S3 store for open_object_store(): endpoint, region and credentials from
// `options` and the environment (CULVERT_S3_ENDPOINT, the AWS chain).
std::unique_ptr<ObjectStore> make_s3_store(const StorageOptions& options);

}  // namespace culvert::storage
