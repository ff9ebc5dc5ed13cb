#include <culvert/storage.hpp>

#include <cstdlib>

#include "aws/http.hpp"
#include "storage/file_store.hpp"
#include "storage/s3_store.hpp"

namespace culvert {

Result<std::unique_ptr<ObjectStore>> open_object_store(std::string_view uri,
                                                       const StorageOptions& options) {
  if (uri.starts_with("file://")) {
    auto path = storage::file_uri_path(uri);
    if (!path) return path.status();
    return std::unique_ptr<ObjectStore>(std::make_unique<storage::FileStore>());
  }
  if (uri.starts_with("s3://")) {
    auto loc = storage::parse_s3_uri(uri);
    if (!loc) return loc.status();
    if (!options.s3_endpoint.empty()) {
      auto parts = aws::parse_url(options.s3_endpoint);
      if (!parts) return invalid_argument("--s3-endpoint: " + parts.status().message());
    } else if (const char* env = std::getenv("CULVERT_S3_ENDPOINT"); env && *env) {
      auto parts = aws::parse_url(env);
      if (!parts) return invalid_argument("CULVERT_S3_ENDPOINT: " + parts.status().message());
    }
    auto store = storage::make_s3_store(options);
    return store;
  }
  return invalid_argument("unsupported storage URI '" + std::string(uri) +
                          "' (expected file:///dir or s3://bucket/prefix)");
}

std::string join_uri(std::string_view base, std::string_view key) {
  std::string out(base);
  while (!out.empty() && out.back() == '/' && !out.ends_with("://")) out.pop_back();
  size_t k = 0;
  while (k < key.size() && key[k] == '/') ++k;
  if (!out.ends_with('/')) out.push_back('/');
  out.append(key.substr(k));
  return out;
}

}  // namespace culvert
