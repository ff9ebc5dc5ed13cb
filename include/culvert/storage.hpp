// Object storage for flow artifacts, task results, cache entries and targets
// (docs/STORAGE.md). Everything the server never sees lives behind this interface.
//
// URIs: file:///absolute/dir/key and s3://bucket/prefix/key. An ObjectStore is opened for
// one scheme by open_object_store(); it then accepts any URI of that scheme. Methods are
// thread-safe unless an implementation says otherwise.
#pragma once

#include <culvert/status.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace culvert {

struct StorageOptions {
  // S3-compatible endpoint (path-style addressing), e.g. http://127.0.0.1:4568.
  // Default: $CULVERT_S3_ENDPOINT, else AWS (virtual-hosted style).
  std::string s3_endpoint;
  // Default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's region, else us-east-1.
  std::string region;
  // Default: $AWS_PROFILE, else "default".
  std::string aws_profile;
  // S3 put_file sends files of at least this many bytes as a multipart upload of
  // s3_part_size parts. 0 = the default: 16 MiB, in 8 MiB parts.
  // REQUIRES: s3_part_size is 0 or at least 5 MiB on AWS (S3's minimum part size).
  uint64_t s3_multipart_threshold = 0;
  uint64_t s3_part_size = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // The object's bytes; NotFound when there is none.
  virtual Result<std::string> get(const std::string& uri) = 0;
  // Writes (replaces) the object.
  virtual Status put(const std::string& uri, std::string_view data) = 0;
  // Whether the object exists.
  virtual Result<bool> exists(const std::string& uri) = 0;
  // Streams a local file up / down without holding it in memory at once.
  virtual Status put_file(const std::string& uri, const std::string& local_path) = 0;
  virtual Status get_file(const std::string& uri, const std::string& local_path) = 0;
  virtual Status remove(const std::string& uri) = 0;
};

// Opens the store for `uri`'s scheme ("file://" or "s3://"). InvalidArgument names an
// unknown scheme or a malformed URI.
Result<std::unique_ptr<ObjectStore>> open_object_store(std::string_view uri,
                                                       const StorageOptions& options = {});

// Joins a base URI and a key with exactly one '/'.
std::string join_uri(std::string_view base, std::string_view key);

}  // namespace culvert
