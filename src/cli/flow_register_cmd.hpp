// `culvert flow register PATH` (upload + register a built flow binary). The callback
// puts the exit status into CliContext::exit_code.
#pragma once

#include "cli/client_cmds.hpp"

namespace culvert::cli {

// Adds `register` to the `flow` command group of `app` (created when absent).
void add_flow_register_command(CLI::App& app, CliContext& ctx);

// Adds `run-local` (a YAML flow file run here, without a server) to the `flow` group.
void add_flow_run_local_command(CLI::App& app, CliContext& ctx);  // flow_run_local_cmd.cpp

}  // namespace culvert::cli
