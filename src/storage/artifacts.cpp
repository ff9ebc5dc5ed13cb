#include "storage/artifacts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <openssl/evp.h>

#include "core/crypto.hpp"

namespace culvert::storage {
namespace fs = std::filesystem;
namespace {

Status check_flow_name(std::string_view name) {
  if (name.empty()) return invalid_argument("artifact flow name is empty");
  if (name == "." || name == "..")
    return invalid_argument("artifact flow name '" + std::string(name) + "' is not allowed");
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == '\\' || std::isspace(u) || std::iscntrl(u))
      return invalid_argument("artifact flow name '" + std::string(name) +
                              "' may not contain '/', '\\\\', whitespace or control characters");
  }
  return Status::ok();
}

Status check_sha256(std::string_view h) {
  if (h.size() != 64 || !std::all_of(h.begin(), h.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      }))
    return invalid_argument("artifact hash '" + std::string(h) + "' is not a lower-case hex SHA-256");
  return Status::ok();
}

}  // namespace

Result<std::string> sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return unavailable("read error on " + path);
  unsigned char md[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  return hex_encode(std::string_view(reinterpret_cast<char*>(md), n));
}

Result<ArtifactRef> upload_artifact(ObjectStore& store, std::string_view base, std::string_view flow_name,
                                    const std::string& local_file) {
  if (Status st = check_flow_name(flow_name); !st) return st;
  auto hash = sha256_file(local_file);
  if (!hash) return hash.status();
  ArtifactRef ref{join_uri(join_uri(base, flow_name), *hash), *hash};
  auto present = store.exists(ref.uri);
  if (!present) return present.status();
  if (*present) return ref;  // content-addressed: same hash, same bytes
  if (Status st = store.put_file(ref.uri, local_file); !st) return st;
  return ref;
}

Result<ArtifactRef> upload_artifact(std::string_view base, std::string_view flow_name,
                                    const std::string& local_file, const StorageOptions& options) {
  auto store = open_object_store(base, options);
  if (!store) return store.status();
  return upload_artifact(**store, base, flow_name, local_file);
}

namespace {

// A verified cache entry has a stamp beside it (<sha256>.verified) recording the file's
// identity when its hash was last checked: size, modification time and inode. While they
// are unchanged the hash is not recomputed (hashing a large flow binary on every run
// costs more than the rest of a run's start); any change means a full check again.
std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + " " + std::to_string(st.st_ino);
}

bool stamp_matches(const std::string& path) {
  std::ifstream in(path + ".verified");
  std::string line;
  if (!std::getline(in, line)) return false;
  std::string id = file_identity(path);
  return !id.empty() && line == id;
}

void write_stamp(const std::string& path) {
  std::string id = file_identity(path);
  if (id.empty()) return;
  std::string tmp = path + ".verified.tmp-" + hex_encode(random_bytes(6));
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << id << "\n";
    if (!out) return;
  }
  std::error_code ec;
  fs::rename(tmp, path + ".verified", ec);
  if (ec) fs::remove(tmp, ec);
}

}  // namespace

Result<std::string> fetch_artifact(ObjectStore& store, std::string_view uri, std::string_view sha256,
                                   const std::string& cache_dir) {
  if (Status st = check_sha256(sha256); !st) return st;
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) return unavailable("cannot create artifact cache " + cache_dir + ": " + ec.message());
  const std::string cached = (fs::path(cache_dir) / std::string(sha256)).string();

  if (fs::is_regular_file(cached, ec)) {
    if (stamp_matches(cached)) return cached;
    auto h = sha256_file(cached);
    if (h && *h == sha256) {
      ::chmod(cached.c_str(), 0755);
      write_stamp(cached);
      return cached;
    }
    fs::remove(cached, ec);  // corrupt or truncated: fetch again
  }
  fs::remove(cached + ".verified", ec);  // a stamp never outlives its file

  const std::string tmp = (fs::path(cache_dir) / (".download-" + hex_encode(random_bytes(8)))).string();
  auto discard = [&](Status st) {
    fs::remove(tmp, ec);
    return st;
  };
  if (Status st = store.get_file(std::string(uri), tmp); !st) return discard(st);
  auto h = sha256_file(tmp);
  if (!h) return discard(h.status());
  if (*h != sha256)
    return discard(unprocessable("artifact " + std::string(uri) + " does not match the registered hash " +
                                 std::string(sha256) + "; the download was discarded"));
  if (::chmod(tmp.c_str(), 0755) != 0) return discard(unavailable("cannot chmod " + tmp));
  fs::rename(tmp, cached, ec);
  if (ec) return discard(unavailable("cannot move the artifact into " + cached + ": " + ec.message()));
  write_stamp(cached);
  return cached;
}

std::optional<std::string> cached_artifact(std::string_view sha256, const std::string& cache_dir) {
  if (!check_sha256(sha256).is_ok()) return std::nullopt;
  const std::string cached = (fs::path(cache_dir) / std::string(sha256)).string();
  std::error_code ec;
  if (!fs::is_regular_file(cached, ec) || !stamp_matches(cached)) return std::nullopt;
  return cached;
}

namespace {

FileIdentity identity_of_fd(const struct stat& st) {
  return FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                      static_cast<int64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                      static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

}  // namespace

std::optional<VerifiedArtifact> open_verified_artifact(std::string_view sha256, const std::string& cache_dir,
                                                       const std::optional<FileIdentity>& known) {
  if (!check_sha256(sha256).is_ok()) return std::nullopt;
  const std::string cached = (fs::path(cache_dir) / std::string(sha256)).string();
  // The coarse clock the kernel stamps ctime with, read before anything else: a file
  // whose ctime is older than this moment shows every later write as a newer ctime.
  struct timespec before {};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &before);
  int fd = ::open(cached.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  auto fail = [&] {
    ::close(fd);
    return std::nullopt;
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return fail();
  const FileIdentity id = identity_of_fd(st);
  if (known && *known == id) return VerifiedArtifact{fd, id, true};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  off_t at = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail();
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
    at += n;
  }
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  if (hex_encode(std::string_view(reinterpret_cast<char*>(md), len)) != sha256) return fail();
  // Touched while it was being hashed (a concurrent fetch's chmod or rename, or a
  // write): the bytes hashed are returned, but the identity does not vouch for later.
  struct stat after {};
  const bool unchanged = ::fstat(fd, &after) == 0 && identity_of_fd(after) == id;
  const int64_t before_ns = static_cast<int64_t>(before.tv_sec) * 1000000000 + before.tv_nsec;
  return VerifiedArtifact{fd, id, unchanged && id.ctime_ns < before_ns};
}

void forget_cached_artifact(std::string_view sha256, const std::string& cache_dir) {
  if (!check_sha256(sha256).is_ok()) return;
  const std::string cached = (fs::path(cache_dir) / std::string(sha256)).string();
  std::error_code ec;
  fs::remove(cached + ".verified", ec);
  fs::remove(cached, ec);
}

Result<std::string> fetch_artifact(std::string_view uri, std::string_view sha256,
                                   const std::string& cache_dir, const StorageOptions& options) {
  auto store = open_object_store(uri, options);
  if (!store) return store.status();
  return fetch_artifact(**store, uri, sha256, cache_dir);
}

}  // namespace culvert::storage
