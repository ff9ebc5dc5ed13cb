// Flow artifacts (docs/STORAGE.md): the flow's executable (or YAML file) stored once per content
// at <storage>/<flow-name>/<sha256>, verified by hash whenever it is fetched, and cached
// by the agent in a local directory of files named by their hash. A cached copy is
// re-hashed only when its size, modification time or inode changed since it was last
// verified (a stamp file beside it records them).
// Functions only; thread-safe and safe across processes sharing one cache directory
// (downloads land in a temporary file and are renamed into place).
#pragma once

#include <cstdint>
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

// What fstat says of an open file; any write to it changes ctime_ns.
struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

// A descriptor of verified bytes: `fd` is read-only and O_CLOEXEC, owned by the caller.
// `identity` is the file's when it was hashed; `stable` when that identity can vouch for
// the content later (its ctime is older than the moment it was taken, so any later write
// shows as a newer ctime; a file written in the same clock tick is not stable).
struct VerifiedArtifact {
  int fd = -1;
  FileIdentity identity;
  bool stable = false;
};

// The cached executable of an artifact, opened, with its bytes hashed through that very
// descriptor against `sha256`: fexecve() the descriptor to run exactly the bytes that
// were checked, not whatever the path names a moment later. No stamp on disk is trusted
// (whoever can edit the file can rewrite a stamp beside it). When `known` (a stable
// identity the caller recorded in its own memory from an earlier call) equals the
// descriptor's, the hash is skipped. nullopt when the cache does not hold the artifact or
// its content differs. A file touched while it was hashed (another process sharing the
// cache) is returned but not `stable`.
std::optional<VerifiedArtifact> open_verified_artifact(std::string_view sha256, const std::string& cache_dir,
                                                       const std::optional<FileIdentity>& known = std::nullopt);

// Removes a cached artifact and its stamp (to fetch it again).
void forget_cached_artifact(std::string_view sha256, const std::string& cache_dir);

// Lower-case hex SHA-256 of a local file, read in chunks. NotFound when unreadable.
Result<std::string> sha256_file(const std::string& path);

}  // namespace culvert::storage
