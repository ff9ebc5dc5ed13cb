// The `culvert` command line (docs/CLI.md). Exit status: 0 success, 1 failure, 2 bad usage.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "cli/agent_cmds.hpp"
#include "cli/client_cmds.hpp"
#include "cli/command.hpp"
#include "cli/flow_register_cmd.hpp"
#include "cli/image_cmds.hpp"

void add_server_command(CLI::App& app);  // server_cmd.cpp

int main(int argc, char** argv) {
  CLI::App app{"Culvert: a workflow orchestrator with a hybrid execution model"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "culvert " CULVERT_VERSION, "Print the version");
  auto* version = app.add_subcommand("version", "Print the version");
  std::string output = "table";
  culvert::cli::add_output_option(version, output);
  add_server_command(app);
  version->callback([&] {
    if (output == "json")
      fmt::print("{{\"version\":\"{}\"}}\n", CULVERT_VERSION);
    else
      fmt::print("culvert {}\n", CULVERT_VERSION);
  });
  culvert::cli::CliContext client_ctx;
  culvert::cli::add_client_commands(app, client_ctx);
  culvert::cli::add_agent_commands(app, client_ctx);
  culvert::cli::add_flow_register_command(app, client_ctx);
  culvert::cli::add_flow_run_local_command(app, client_ctx);
  culvert::cli::add_image_commands(app, client_ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a command failed; it printed why
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return client_ctx.exit_code;
}
