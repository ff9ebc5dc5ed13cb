// `culvert flow register PATH`: upload a built flow binary to its storage and register
// it as a new flow version. The binary describes itself (`PATH describe`); the upload
// and the registration are runtime::register_flow_artifact's.
#include "cli/flow_register_cmd.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/command.hpp"
#include "runtime/answers.hpp"
#include "runtime/runtime.hpp"

namespace culvert::cli {
namespace {

// Runs `path describe` and returns what it printed.
Result<std::string> describe_binary(const std::string& path) {
  int fds[2];
  if (::pipe(fds) != 0) return unavailable(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) return unavailable(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    execl(path.c_str(), path.c_str(), "describe", static_cast<char*>(nullptr));
    std::fprintf(stderr, "culvert: cannot execute '%s': %s\n", path.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[65536];
  ssize_t n;
  bool too_long = false;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) {
    if (out.size() + static_cast<size_t>(n) > runtime::kMaxDescriptionBytes) {
      too_long = true;  // stop reading; the binary gets SIGPIPE or is killed below
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (too_long) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (too_long) {
    return invalid_argument("'" + path + " describe' printed more than " +
                            std::to_string(runtime::kMaxDescriptionBytes) +
                            " bytes; a flow description is at most that long");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return invalid_argument("'" + path + " describe' failed: is it a flow binary built with the Culvert SDK?");
  return out;
}

}  // namespace

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
  };
  auto rf = std::make_shared<RegisterFlags>();
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto* reg = flow->add_subcommand("register", "Upload a built flow binary to its storage and register it");
  reg->fallthrough();
  reg->add_option("path", rf->path, "the flow binary")->required();
  reg->add_option("--project", rf->project, "project name")->required();
  reg->add_option("--storage", rf->storage, "file:///DIR or s3://BUCKET/PREFIX (default: the flow's own)");
  reg->add_option("--label,-l", rf->labels, "run label (repeatable; replaces the run config's labels)");
  reg->add_option("--s3-endpoint", rf->s3_endpoint, "S3-compatible endpoint (path-style)");
  reg->add_option("--idempotency-key", rf->idempotency_key, "a repeat with this key is a no-op");
  reg->add_option("--run-config", rf->run_config, "a run config JSON object replacing the flow's own");
  add_output_option(reg, *cmd);
  reg->callback([cmd, rf] {
    auto& c = *cmd;
    if (c.ctx->out == nullptr) c.ctx->out = &std::cout;
    if (c.ctx->err == nullptr) c.ctx->err = &std::cerr;
    auto settings = c.settings();
    if (!settings) { c.usage(settings.status().message()); return; }
    auto desc = describe_binary(rf->path);
    if (!desc) { c.usage(desc.status().message()); return; }
    runtime::RegisterOptions opts;
    opts.project = rf->project;
    if (!rf->storage.empty()) opts.storage = rf->storage;
    opts.labels = rf->labels;
    if (!rf->idempotency_key.empty()) opts.idempotency_key = rf->idempotency_key;
    if (!rf->run_config.empty()) opts.run_config_json = rf->run_config;
    opts.s3_endpoint = rf->s3_endpoint.empty() ? c.ctx->env("CULVERT_S3_ENDPOINT").value_or("") : rf->s3_endpoint;
    opts.api_url = settings->api_url;
    opts.api_token = settings->api_token;
    auto r = runtime::register_flow_artifact(rf->path, *desc, opts);
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
