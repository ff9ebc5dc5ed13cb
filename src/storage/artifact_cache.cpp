#include "storage/artifact_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

namespace culvert::storage {
namespace {

namespace fs = std::filesystem;

// Creates `dir` (and its parents); "" when it exists, is a folder and is writable, else why not.
std::string usable(const fs::path& dir, bool private_to_user) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return ec.message();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return "not a folder";
  if (private_to_user) {
    struct stat parent {};
    if (::stat(dir.parent_path().c_str(), &parent) != 0 || parent.st_uid != ::geteuid() || st.st_uid != ::geteuid())
      return "owned by another user";
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) return std::strerror(errno);
  return "";
}

}  // namespace

Result<std::string> artifact_cache_dir(const ArtifactCacheEnv& env) {
  if (auto set = env("CULVERT_ARTIFACT_CACHE"); set && !set->empty()) return *set;
  std::vector<std::string> tried;
  if (auto home = env("HOME"); home && !home->empty()) {
    fs::path dir = fs::path(*home) / ".culvert" / "artifacts";
    std::string why = usable(dir, false);
    if (why.empty()) return dir.string();
    tried.push_back(dir.string() + " (" + why + ")");
  }
  std::string tmp = env("TMPDIR").value_or("");
  if (tmp.empty()) tmp = "/tmp";
  fs::path user_dir = fs::path(tmp) / ("culvert-" + std::to_string(::geteuid()));
  std::error_code ec;
  if (!fs::exists(user_dir, ec)) {
    ::mkdir(user_dir.c_str(), 0700);
  }
  fs::path dir = user_dir / "artifacts";
  std::string why = usable(dir, true);
  if (why.empty()) return dir.string();
  tried.push_back(dir.string() + " (" + why + ")");
  std::string msg = "no writable folder for the artifact cache: tried ";
  for (size_t i = 0; i < tried.size(); ++i) msg += (i ? ", " : "") + tried[i];
  return Status(StatusCode::kUnavailable, msg + "; set CULVERT_ARTIFACT_CACHE to one");
}

}  // namespace culvert::storage
