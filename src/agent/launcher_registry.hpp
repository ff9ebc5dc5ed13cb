// The launcher registry: one table of the agent types `culvert agent start --type` knows,
// each with its own flags and the factory that makes its Launcher from them. The CLI's
// --type choices, the launcher flags of `agent start` and `agent install-service`, and
// the launcher the agent runs all come from here.
//
// A launcher type is described by a function `LauncherType <name>_launcher_type()` in
// the launcher's own file; adding one is that file plus its line in
// CULVERT_LAUNCHER_TYPES (launcher_registry.cpp).
//
// Thread safety: the table is immutable after first use.
#pragma once

#include <culvert/status.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/launcher.hpp"

namespace culvert::agent {

// A flag of one launcher type on `culvert agent start --type T`.
struct LauncherFlag {
  enum class Kind {
    kValue,     // `--name VALUE`, given once; in LauncherContext::flags
    kRepeated,  // `--name VALUE` any number of times; in LauncherContext::repeated_flags
    kSwitch,    // `--name` alone; in LauncherContext::flags as "true"
  };
  std::string name;  // without the leading "--", e.g. "docker-host"
  std::string help;
  Kind kind = Kind::kValue;
};

// What a factory may use besides its flags.
struct LauncherContext {
  std::map<std::string, std::string> flags;  // the flags given, by name (absent: not given)
  std::map<std::string, std::vector<std::string>> repeated_flags;  // kRepeated flags, in order given
  std::string agent_name;                    // the agent's --name (for tags on what it starts)
  std::string culvert_binary;                // the running `culvert` (for `culvert execute`)
  std::string api_url;                       // the server, and the agent's own token
  std::string api_token;
  std::map<std::string, std::string> agent_env;  // the agent's --env
  // The agent process's environment.
  std::function<std::optional<std::string>(const std::string&)> getenv;
};

struct LauncherType {
  std::string type;         // --type value, e.g. "docker"
  std::string description;  // one line for --help
  std::vector<LauncherFlag> flags;
  // Makes the launcher; an error (a bad flag value, a missing dependency) names what
  // was wrong and stops the agent before it registers.
  std::function<Result<std::unique_ptr<Launcher>>(const LauncherContext&)> factory;
};

// Every launcher type, in registry order.
const std::vector<LauncherType>& launcher_types();
// The type named `type`, or nullptr.
const LauncherType* find_launcher_type(std::string_view type);

}  // namespace culvert::agent
