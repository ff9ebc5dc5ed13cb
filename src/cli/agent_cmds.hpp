// The agent-side commands of `culvert` (docs/CLI.md): `agent start`, `agent install-service` and
// `execute` (what agents launch). Callbacks put the exit status into CliContext::exit_code.
#pragma once

#include "cli/client_cmds.hpp"

namespace culvert::cli {

void add_agent_commands(CLI::App& app, CliContext& ctx);

}  // namespace culvert::cli
