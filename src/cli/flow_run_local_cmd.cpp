// `culvert flow run-local FILE.yaml [run flags]`: a YAML flow file run here, without a
// server, as a flow binary's `run` runs its flow (the same flags and output).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <culvert/main.hpp>

#include "cli/flow_register_cmd.hpp"
#include "yamlflow/yaml_flow.hpp"

namespace culvert::cli {

void add_flow_run_local_command(CLI::App& app, CliContext& ctx) {
  CLI::App* flow = nullptr;
  try {
    flow = app.get_subcommand("flow");
  } catch (const CLI::OptionNotFound&) {
    flow = app.add_subcommand("flow", "Flows");
  }
  struct RunLocalFlags {
    std::string path, output, flow_run_id;
    std::vector<std::string> params;
    int workers = 0;
  };
  auto f = std::make_shared<RunLocalFlags>();
  auto* cmd = flow->add_subcommand(
      "run-local",
      "Run a YAML flow file here without a server: run-local FILE.yaml [--param k=v]... [--workers N] "
      "[--output table|json] (a flow binary does this itself: ./etl run)");
  cmd->add_option("path", f->path, "the YAML flow file")->required();
  cmd->add_option("--param", f->params, "name=value (repeatable)");
  cmd->add_option("--workers", f->workers, "worker threads, 1 to 1024 (default: the machine's cores)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--output,-o", f->output, "table (default) or json");
  cmd->add_option("--flow-run-id", f->flow_run_id, "the run's id (default: a new one)");
  cmd->callback([&ctx, f] {
    const std::string* path = &f->path;
    std::ostream& err = ctx.err ? *ctx.err : std::cerr;
    if (!yamlflow::is_yaml_flow_path(*path)) {
      err << "culvert flow run-local: " << *path
          << " is not a YAML flow file (*.yaml, *.yml); a flow binary runs itself: " << *path << " run\n";
      ctx.exit_code = 2;
      return;
    }
    auto loaded = yamlflow::load_yaml_flow(*path);
    if (!loaded) {
      err << "culvert flow run-local: " << loaded.status().message() << "\n";
      ctx.exit_code = 2;
      return;
    }
    std::vector<std::string> args = {*path, "run"};
    for (const auto& p : f->params) args.insert(args.end(), {"--param", p});
    if (f->workers > 0) args.insert(args.end(), {"--workers", std::to_string(f->workers)});
    if (!f->output.empty()) args.insert(args.end(), {"--output", f->output});
    if (!f->flow_run_id.empty()) args.insert(args.end(), {"--flow-run-id", f->flow_run_id});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ctx.exit_code = culvert::main(*loaded, static_cast<int>(args.size()), argv.data());
  });
}

}  // namespace culvert::cli
