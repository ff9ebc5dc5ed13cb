// The client-side commands of `culvert` (docs/CLI.md): config, auth, project, flow (list,
// show, set-schedule, backfill), run (create, watch, inspect, cancel, retry) and get
// (runs, logs, agents). Each talks to the server through client::ApiClient.
//
// add_client_commands() registers them on the top-level CLI::App; their callbacks put
// the exit status (0 success, 1 failure, 2 bad usage) into CliContext::exit_code.
// The context owns nothing: it points at the output streams, the clock used to pace
// --watch/--follow polling and the environment, so tests run commands in-process.
// Single-threaded, like the command line itself.
#pragma once

#include <iosfwd>

#include "client/profile.hpp"

namespace CLI {
class App;
}

namespace culvert {
class Clock;
}

namespace culvert::cli {

struct CliContext {
  client::EnvLookup env = client::process_env();
  std::ostream* out = nullptr;  // default std::cout
  std::ostream* err = nullptr;  // default std::cerr
  Clock* clock = nullptr;       // default culvert::system_clock()
  int exit_code = 0;
  client::SettingFlags flags;   // --profile, --api-url, --api-token
};

// Registers config, auth, project, flow, run and get on `app`. Reuses a subcommand of
// the same name when one exists (e.g. another component's `flow register`).
void add_client_commands(CLI::App& app, CliContext& ctx);

}  // namespace culvert::cli
