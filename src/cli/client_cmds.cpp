#include "cli/client_cmds.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

#include <culvert/clock.hpp>

#include "cli/command.hpp"

namespace culvert::cli {

void add_client_commands(CLI::App& app, CliContext& ctx) {
  if (ctx.out == nullptr) ctx.out = &std::cout;
  if (ctx.err == nullptr) ctx.err = &std::cerr;
  if (ctx.clock == nullptr) ctx.clock = &system_clock();
  auto opt = [&](const char* name, std::optional<std::string>& target, const char* help) {
    app.add_option_function<std::string>(name, [&target](const std::string& v) { target = v; }, help);
  };
  opt("--profile", ctx.flags.profile, "Profile in ~/.culvert/config.toml (env CULVERT_PROFILE)");
  opt("--api-url", ctx.flags.api_url, "Server URL (env CULVERT_API_URL)");
  opt("--api-token", ctx.flags.api_token, "API token (env CULVERT_API_TOKEN)");
  add_config_commands(app, ctx);
  add_token_commands(app, ctx);
  add_project_commands(app, ctx);
  add_flow_commands(app, ctx);
  add_run_commands(app, ctx);
  add_log_commands(app, ctx);
  add_task_run_commands(app, ctx);
  add_agent_list_commands(app, ctx);
}

}  // namespace culvert::cli
