#include "server/profile.hpp"

#include <cstdlib>

#include "client/profile.hpp"

namespace culvert::server {

Result<std::string> culvert_home() {
  const char* home = std::getenv("HOME");
  if (!home || !*home) return invalid_argument("HOME is not set; cannot locate ~/.culvert");
  return std::string(home) + "/.culvert";
}

Status save_profile(const std::string& path, const std::string& profile, const std::string& api_url,
                    const std::string& api_token) {
  // One writer of the profile format for the whole project: the client's.
  auto existing = client::load_profile_config(path);
  if (!existing) return existing.status();
  bool make_active = existing->active_profile.empty();
  if (auto s = client::set_profile_value(path, profile, "api_url", api_url, make_active); !s) return s;
  return client::set_profile_value(path, profile, "api_token", api_token, false);
}

}  // namespace culvert::server
