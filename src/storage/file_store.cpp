#include "storage/file_store.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/crypto.hpp"

namespace culvert::storage {
namespace fs = std::filesystem;

Result<std::string> file_uri_path(std::string_view uri) {
  constexpr std::string_view kPrefix = "file://";
  if (uri.substr(0, kPrefix.size()) != kPrefix)
    return invalid_argument("not a file:// URI: '" + std::string(uri) + "'");
  std::string path(uri.substr(kPrefix.size()));
  if (path.empty() || path[0] != '/')
    return invalid_argument("file:// URI needs an absolute path (file:///dir/key): '" +
                            std::string(uri) + "'");
  if (path.find("/../") != std::string::npos || path.ends_with("/.."))
    return invalid_argument("file:// URI may not contain '..': '" + std::string(uri) + "'");
  return path;
}

namespace {

Status write_atomically(const std::string& path, const std::function<Status(std::ofstream&)>& fill) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return unavailable("cannot create directory for " + path + ": " + ec.message());
  std::string tmp = path + ".tmp-" + hex_encode(random_bytes(6));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return unavailable("cannot write " + tmp + ": " + std::strerror(errno));
    Status st = fill(out);
    out.flush();
    if (!st.is_ok() || !out) {
      fs::remove(tmp, ec);
      return st.is_ok() ? unavailable("write failed: " + path) : st;
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return unavailable("cannot rename into " + path + ": " + ec.message());
  }
  return Status::ok();
}

}  // namespace

Result<std::string> FileStore::get(const std::string& uri) {
  auto path = file_uri_path(uri);
  if (!path) return path.status();
  std::ifstream in(*path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return not_found("no object at " + uri);
    return unavailable("cannot read " + uri + ": " + std::strerror(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status FileStore::put(const std::string& uri, std::string_view data) {
  auto path = file_uri_path(uri);
  if (!path) return path.status();
  return write_atomically(*path, [&](std::ofstream& out) {
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    return Status::ok();
  });
}

Result<bool> FileStore::exists(const std::string& uri) {
  auto path = file_uri_path(uri);
  if (!path) return path.status();
  std::error_code ec;
  bool e = fs::is_regular_file(*path, ec);
  return e;
}

Status FileStore::put_file(const std::string& uri, const std::string& local_path) {
  auto path = file_uri_path(uri);
  if (!path) return path.status();
  std::ifstream in(local_path, std::ios::binary);
  if (!in) return not_found("cannot read local file " + local_path + ": " + std::strerror(errno));
  return write_atomically(*path, [&](std::ofstream& out) {
    out << in.rdbuf();
    return Status::ok();
  });
}

Status FileStore::get_file(const std::string& uri, const std::string& local_path) {
  auto path = file_uri_path(uri);
  if (!path) return path.status();
  std::ifstream in(*path, std::ios::binary);
  if (!in) return not_found("no object at " + uri);
  return write_atomically(local_path, [&](std::ofstream& out) {
    out << in.rdbuf();
    return Status::ok();
  });
}

Status FileStore::remove(const std::string& uri) {
  auto path = file_uri_path(uri);
  if (!path) return path.status();
  std::error_code ec;
  fs::remove(*path, ec);
  if (ec) return unavailable("cannot remove " + uri + ": " + ec.message());
  return Status::ok();
}

}  // namespace culvert::storage
