#include "server/profile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

namespace culvert::server {

Result<std::string> culvert_home() {
  const char* home = std::getenv("HOME");
  if (!home || !*home) return invalid_argument("HOME is not set; cannot locate ~/.culvert");
  return std::string(home) + "/.culvert";
}

Status save_profile(const std::string& path, const std::string& profile, const std::string& api_url,
                    const std::string& api_token) {
  namespace fs = std::filesystem;
  fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) {
    bool created = fs::create_directories(p.parent_path(), ec);
    if (ec) return unavailable("cannot create " + p.parent_path().string() + ": " + ec.message());
    if (created) fs::permissions(p.parent_path(), fs::perms::owner_all, ec);
  }
  toml::table root;
  if (fs::exists(p, ec)) {
    try {
      root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      return invalid_argument("cannot parse " + path + ": " + std::string(e.description()));
    }
  }
  if (!root.contains("active_profile")) root.insert("active_profile", profile);
  auto* profiles = root["profiles"].as_table();
  if (!profiles) {
    root.insert_or_assign("profiles", toml::table{});
    profiles = root["profiles"].as_table();
  }
  auto* entry = (*profiles)[profile].as_table();
  if (!entry) {
    profiles->insert_or_assign(profile, toml::table{});
    entry = (*profiles)[profile].as_table();
  }
  entry->insert_or_assign("api_url", api_url);
  entry->insert_or_assign("api_token", api_token);

  std::ostringstream text;
  text << root << "\n";
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return unavailable("cannot write " + tmp + ": " + std::strerror(errno));
  std::string data = text.str();
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return unavailable("cannot write " + tmp + ": " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  ::fchmod(fd, 0600);
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return unavailable("cannot replace " + path + ": " + std::strerror(err));
  }
  return Status::ok();
}

}  // namespace culvert::server
