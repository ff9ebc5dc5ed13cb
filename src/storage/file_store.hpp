// file:// object storage: an object is a file; writes go to a temporary file in the same
// directory and are renamed into place, so readers never see a partial object.
// Thread-safe (no shared mutable state).
#pragma once

#include <culvert/storage.hpp>

namespace culvert::storage {

class FileStore final : public ObjectStore {
 public:
  Result<std::string> get(const std::string& uri) override;
  Status put(const std::string& uri, std::string_view data) override;
  Result<bool> exists(const std::string& uri) override;
  Status put_file(const std::string& uri, const std::string& local_path) override;
  Status get_file(const std::string& uri, const std::string& local_path) override;
  Status remove(const std::string& uri) override;
};

// "file:///a/b" -> "/a/b". InvalidArgument unless the URI is file:// with an absolute path.
Result<std::string> file_uri_path(std::string_view uri);

}  // namespace culvert::storage
