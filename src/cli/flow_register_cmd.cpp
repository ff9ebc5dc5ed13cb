// `culvert flow register PATH`: upload a flow's artifact to its storage and register it
// as a new flow version. The flow source of PATH (flow_sources.hpp: a flow binary, a
// YAML flow file, ...) gives the description and the artifact; the upload and the
// registration are runtime::register_flow_artifact's.
#include "cli/flow_register_cmd.hpp"

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/command.hpp"
#include "cli/flow_sources.hpp"
#include "runtime/runtime.hpp"

namespace culvert::cli {

void add_flow_register_command(CLI::App& app, CliContext& ctx) {
  // `flow register PATH`: reuse the `flow` command group when it exists.
  CLI::App* flow = nullptr;
  try {
    flow = app.get_subcommand("flow");
  } catch (const CLI::OptionNotFound&) {
    flow = app.add_subcommand("flow", "Flows");
  }
  struct RegisterFlags {
    std::string path, project, storage, s3_endpoint, idempotency_key, run_config;
    std::vector<std::string> labels;
    std::map<std::string, std::string> source_flags;  // the flow sources' own flags given
  };
  auto rf = std::make_shared<RegisterFlags>();
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto* reg = flow->add_subcommand("register", "Upload a flow (binary or flow file) to its storage and register it");
  reg->fallthrough();
  std::string kinds_help;
  for (const auto& s : flow_sources()) kinds_help += (kinds_help.empty() ? "" : "; ") + s.kind + ": " + s.description;
  reg->add_option("path", rf->path, "the flow: " + kinds_help)->required();
  reg->add_option("--project", rf->project, "project name")->required();
  reg->add_option("--storage", rf->storage, "file:///DIR or s3://BUCKET/PREFIX (default: the flow's own)");
  reg->add_option("--label,-l", rf->labels, "run label (repeatable; replaces the run config's labels)");
  reg->add_option("--s3-endpoint", rf->s3_endpoint, "S3-compatible endpoint (path-style)");
  reg->add_option("--idempotency-key", rf->idempotency_key, "a repeat with this key is a no-op");
  reg->add_option("--run-config", rf->run_config, "a run config JSON object replacing the flow's own");
  for (const auto& s : flow_sources())
    for (const auto& flag : s.flags) {
      std::string name = flag.name;
      reg->add_option_function<std::string>(
          "--" + name, [rf, name](const std::string& v) { rf->source_flags[name] = v; }, s.kind + ": " + flag.help);
    }
  add_output_option(reg, *cmd);
  reg->callback([cmd, rf] {
    auto& c = *cmd;
    if (c.ctx->out == nullptr) c.ctx->out = &std::cout;
    if (c.ctx->err == nullptr) c.ctx->err = &std::cerr;
    auto settings = c.settings();
    if (!settings) { c.usage(settings.status().message()); return; }
    FlowSourceRequest request{.path = rf->path, .flags = rf->source_flags};
    const FlowSource& source = flow_source_for(request);
    for (const auto& [name, value] : rf->source_flags) {
      bool own = false;
      for (const auto& f : source.flags) own |= f.name == name;
      if (!own) { c.usage("--" + name + " does not apply to " + rf->path + " (a " + source.kind + " flow)"); return; }
    }
    auto prepared = source.prepare(request);
    if (!prepared) {
      if (prepared.status().code() == StatusCode::kInvalidArgument) c.usage(prepared.status().message());
      else c.fail(prepared.status());
      return;
    }
    struct RemoveTemporaries {
      const std::vector<std::string>& files;
      ~RemoveTemporaries() {
        std::error_code ec;
        for (const auto& f : files) std::filesystem::remove_all(f, ec);
      }
    } remove_temporaries{prepared->temporary_files};
    runtime::RegisterOptions opts;
    opts.artifact_kind = source.kind;
    opts.project = rf->project;
    if (!rf->storage.empty()) opts.storage = rf->storage;
    opts.labels = rf->labels;
    if (!rf->idempotency_key.empty()) opts.idempotency_key = rf->idempotency_key;
    if (!rf->run_config.empty()) opts.run_config_json = rf->run_config;
    opts.s3_endpoint = rf->s3_endpoint.empty() ? c.ctx->env("CULVERT_S3_ENDPOINT").value_or("") : rf->s3_endpoint;
    opts.api_url = settings->api_url;
    opts.api_token = settings->api_token;
    auto r = runtime::register_flow_artifact(prepared->artifact_path, prepared->description_json, opts);
    if (!r) {
      if (r.status().code() == StatusCode::kInvalidArgument) c.usage(r.status().message());
      else c.fail(r.status());
      return;
    }
    if (c.json_out()) {
      c.out() << r->json << "\n";
    } else {
      c.out() << "registered flow '" << r->name << "' version " << r->version << " in project '" << rf->project
              << "' (id " << r->id << ")\n";
    }
    c.done();
  });
}

}  // namespace culvert::cli
