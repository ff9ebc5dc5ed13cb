// Writes the local CLI profile (~/.culvert/config.toml) so that the user who started
// the server is logged in at once (docs/CLI.md). The format, shared with the CLI:
//
//   active_profile = "default"
//
//   [profiles.default]
//   api_url = "http://127.0.0.1:4200"
//   api_token = "cvt_..."
//
// Other keys and profiles in an existing file are kept. The file is written atomically
// (temporary file + rename) with mode 0600; its directory is created with mode 0700.
// The writing itself is the client's profile code (src/client/profile.hpp), so the
// server and the CLI share one implementation of the format.
#pragma once

#include <string>

#include <culvert/status.hpp>

namespace culvert::server {

// Sets api_url and api_token of `[profiles.<profile>]` in the TOML file at `path`, and
// `active_profile` when the file had none.
Status save_profile(const std::string& path, const std::string& profile, const std::string& api_url,
                    const std::string& api_token);

// "$HOME/.culvert" (InvalidArgument when HOME is unset).
Result<std::string> culvert_home();

}  // namespace culvert::server
