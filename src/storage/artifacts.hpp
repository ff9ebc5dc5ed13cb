// Flow artifacts (SPEC §9): the flow's executable (or YAML file) stored once per content
// at <storage>/<flow-name>/<sha256>, verified by hash whenever it is fetched, and cached
// by the agent in a local directory of files named by their hash. A cached copy is
// re-hashed only when its size, modification time or inode changed since it was last
// verified (a stamp file beside it records them).
// Functions only; thread-safe and safe across processes sharing one cache directory
// (downloads land in a temporary file and are renamed into place).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <culvert/status.hpp>
#include <culvert/storage.hpp>

namespace culvert::storage {

struct ArtifactRef {
  std::string uri;     // <storage_base_uri>/<flow_name>/<sha256>
  std::string sha256;  // lower-case hex
};

// Uploads `local_file` as the artifact of `flow_name`, unless an object with that hash
// already exists there. InvalidArgument for a flow name that is empty or contains '/',
// whitespace or control characters, or is "." / "..".
Result<ArtifactRef> upload_artifact(ObjectStore& store, std::string_view storage_base_uri,
                                    std::string_view flow_name, const std::string& local_file);
Result<ArtifactRef> upload_artifact(std::string_view storage_base_uri, std::string_view flow_name,
                                    const std::string& local_file, const StorageOptions& options = {});

// Returns the path of a local executable copy of the artifact: <cache_dir>/<sha256> when
// present and its hash matches, else downloaded to a temporary file, verified, made
// executable and renamed into the cache. A hash mismatch is Unprocessable naming the URI
// and both hashes; the downloaded file is discarded. A cached file whose hash does not
// match is replaced.
Result<std::string> fetch_artifact(ObjectStore& store, std::string_view uri, std::string_view sha256,
                                   const std::string& cache_dir);
Result<std::string> fetch_artifact(std::string_view uri, std::string_view sha256,
                                   const std::string& cache_dir, const StorageOptions& options = {});

// The cached executable of an artifact when the cache holds it verified (its stamp
// matches), without hashing or downloading anything; nullopt otherwise.
std::optional<std::string> cached_artifact(std::string_view sha256, const std::string& cache_dir);

// A read-only descriptor (O_CLOEXEC) of the cached executable whose bytes were hashed
// through that very descriptor and match `sha256`; no stamp is trusted (a stamp beside
// the file can be rewritten by whoever can edit the file). fexecve() it to run the bytes
// that were checked, not whatever the path names a moment later. The caller owns
// (closes) it; nullopt when the cache does not hold it or its content differs.
std::optional<int> open_verified_artifact(std::string_view sha256, const std::string& cache_dir);

// Lower-case hex SHA-256 of a local file, read in chunks. NotFound when unreadable.
Result<std::string> sha256_file(const std::string& path);

}  // namespace culvert::storage
