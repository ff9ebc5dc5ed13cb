#include "client/profile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace culvert::client {

namespace fs = std::filesystem;

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<fs::path> default_config_path(const EnvLookup& env) {
  auto home = env("HOME");
  if (!home || home->empty())
    return invalid_argument("HOME is not set: cannot locate ~/.culvert/config.toml");
  return fs::path(*home) / ".culvert" / "config.toml";
}

namespace {

Result<toml::table> read_table(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return toml::table{};
  try {
    return toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << file.string() << ":" << e.source().begin.line << ":" << e.source().begin.column
      << ": " << e.description();
    return invalid_argument("bad config file " + m.str());
  }
}

Status write_table(const fs::path& file, const toml::table& table) {
  fs::path dir = file.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return unavailable("cannot create " + dir.string() + ": " + ec.message());
    if (::chmod(dir.c_str(), 0700) != 0)
      return unavailable("cannot set mode 0700 on " + dir.string() + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << toml::toml_formatter(table, toml::toml_formatter::default_flags & ~toml::format_flags::allow_literal_strings)
       << "\n";
  const std::string data = text.str();
  const fs::path tmp = file.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return unavailable("cannot write " + tmp.string() + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // in case a stale temporary had another mode
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string err = std::strerror(errno);
      ::close(fd);
      return unavailable("cannot write " + tmp.string() + ": " + err);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return unavailable("cannot write " + tmp.string() + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    return unavailable("cannot replace " + file.string() + ": " + std::strerror(errno));
  return {};
}

std::string str_or_empty(const toml::node* n) {
  if (n == nullptr) return {};
  if (auto v = n->value<std::string>()) return *v;
  return {};
}

}  // namespace

Result<ProfileConfig> load_profile_config(const fs::path& file) {
  auto t = read_table(file);
  if (!t) return t.status();
  ProfileConfig c;
  c.active_profile = str_or_empty(t->get("active_profile"));
  if (auto* profiles = t->get_as<toml::table>("profiles")) {
    for (auto&& [name, node] : *profiles) {
      auto* p = node.as_table();
      if (p == nullptr) continue;
      Profile prof;
      prof.api_url = str_or_empty(p->get("api_url"));
      prof.api_token = str_or_empty(p->get("api_token"));
      c.profiles.emplace(std::string(name.str()), std::move(prof));
    }
  }
  return c;
}

Status set_profile_value(const fs::path& file, std::string_view profile, std::string_view key,
                         std::string_view value, bool make_active) {
  if (profile.empty()) return invalid_argument("profile name is empty");
  auto t = read_table(file);
  if (!t) return t.status();
  auto* profiles = t->get_as<toml::table>("profiles");
  if (profiles == nullptr) {
    t->insert_or_assign("profiles", toml::table{});
    profiles = t->get_as<toml::table>("profiles");
  }
  auto* p = profiles->get_as<toml::table>(profile);
  if (p == nullptr) {
    profiles->insert_or_assign(profile, toml::table{});
    p = profiles->get_as<toml::table>(profile);
  }
  p->insert_or_assign(key, std::string(value));
  if (make_active || !t->contains("active_profile"))
    t->insert_or_assign("active_profile", std::string(make_active ? profile : kDefaultProfile));
  return write_table(file, *t);
}

Status set_active_profile(const fs::path& file, std::string_view profile) {
  if (profile.empty()) return invalid_argument("profile name is empty");
  auto t = read_table(file);
  if (!t) return t.status();
  t->insert_or_assign("active_profile", std::string(profile));
  return write_table(file, *t);
}

Settings resolve_settings(const SettingFlags& flags, const EnvLookup& env, const ProfileConfig& config) {
  Settings s;
  auto nonempty = [](const std::optional<std::string>& v) { return v && !v->empty(); };
  if (nonempty(flags.profile)) s.profile = *flags.profile;
  else if (auto e = env("CULVERT_PROFILE"); nonempty(e)) s.profile = *e;
  else if (!config.active_profile.empty()) s.profile = config.active_profile;
  else s.profile = kDefaultProfile;

  const Profile* p = nullptr;
  if (auto it = config.profiles.find(s.profile); it != config.profiles.end()) p = &it->second;

  if (nonempty(flags.api_url)) {
    s.api_url = *flags.api_url;
    s.api_url_source = "flag --api-url";
  } else if (auto e = env("CULVERT_API_URL"); nonempty(e)) {
    s.api_url = *e;
    s.api_url_source = "env CULVERT_API_URL";
  } else if (p != nullptr && !p->api_url.empty()) {
    s.api_url = p->api_url;
    s.api_url_source = "profile " + s.profile;
  } else {
    s.api_url = kDefaultApiUrl;
    s.api_url_source = "default";
  }

  if (nonempty(flags.api_token)) {
    s.api_token = *flags.api_token;
    s.api_token_source = "flag --api-token";
  } else if (auto e = env("CULVERT_API_TOKEN"); nonempty(e)) {
    s.api_token = *e;
    s.api_token_source = "env CULVERT_API_TOKEN";
  } else if (p != nullptr && !p->api_token.empty()) {
    s.api_token = p->api_token;
    s.api_token_source = "profile " + s.profile;
  } else {
    s.api_token_source = "none";
  }
  return s;
}

}  // namespace culvert::client
