// Client settings: the profile file ~/.culvert/config.toml and the precedence rules
// (flags, then CULVERT_* environment variables, then the active profile, then defaults).
//
//   active_profile = "default"
//
//   [profiles.default]
//   api_url = "http://127.0.0.1:4200"
//   api_token = "cvt_..."
//
// The file is written atomically (temporary file + rename) with mode 0600 in a
// directory of mode 0700; keys this code does not know are preserved. `culvert server
// start` writes the admin token of a fresh database into [profiles.default] through
// set_profile_value, the CLI reads it, and agents use it by default.
//
// Pure functions over their arguments (the environment is passed in as EnvLookup);
// nothing here is shared state. Concurrent writers of one file: the last rename wins.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <culvert/status.hpp>

namespace culvert::client {

inline constexpr const char* kDefaultApiUrl = "http://127.0.0.1:4200";
inline constexpr const char* kDefaultProfile = "default";

struct Profile {
  std::string api_url;    // empty: not set
  std::string api_token;  // empty: not set
};

struct ProfileConfig {
  std::string active_profile;  // empty: not set ("default")
  std::map<std::string, Profile> profiles;
};

// Reads one environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
// The real process environment (std::getenv).
EnvLookup process_env();

// $HOME/.culvert/config.toml. kInvalidArgument when HOME is unset.
Result<std::filesystem::path> default_config_path(const EnvLookup& env);

// A missing file is an empty config. A malformed file is kInvalidArgument naming the
// file, line and problem.
Result<ProfileConfig> load_profile_config(const std::filesystem::path& file);

// Sets [profiles.<profile>].<key> = value (creating file, directory and profile as
// needed) and, when make_active, active_profile = profile.
Status set_profile_value(const std::filesystem::path& file, std::string_view profile,
                         std::string_view key, std::string_view value, bool make_active = false);
// Sets active_profile.
Status set_active_profile(const std::filesystem::path& file, std::string_view profile);

// Settings given on the command line (nullopt: flag absent).
struct SettingFlags {
  std::optional<std::string> profile;
  std::optional<std::string> api_url;
  std::optional<std::string> api_token;
};

struct Settings {
  std::string profile;         // the profile in effect
  std::string api_url;
  std::string api_token;       // may be empty
  std::string api_url_source;  // "flag", "env CULVERT_API_URL", "profile NAME", "default"
  std::string api_token_source;
};

// Profile: --profile, CULVERT_PROFILE, active_profile, "default".
// api_url: --api-url, CULVERT_API_URL, the profile's api_url, http://127.0.0.1:4200.
// api_token: --api-token, CULVERT_API_TOKEN, the profile's api_token, empty.
Settings resolve_settings(const SettingFlags& flags, const EnvLookup& env, const ProfileConfig& config);

}  // namespace culvert::client
