#include "cli/agent_cmds.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/agent.hpp"
#include "agent/client_api.hpp"
#include "agent/docker_launcher.hpp"
#include "agent/local_launcher.hpp"
#include "client/api.hpp"
#include "runtime/runtime.hpp"
#include "storage/artifacts.hpp"

namespace culvert::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "culvert";
  buf[n] = '\0';
  return buf;
}

client::Settings settings_for(CliContext& ctx, std::ostream& err, bool& ok) {
  ok = true;
  client::ProfileConfig config;
  if (auto path = client::default_config_path(ctx.env)) {
    auto loaded = client::load_profile_config(*path);
    if (!loaded) {
      err << "culvert: " << loaded.status().message() << "\n";
      ok = false;
    } else {
      config = *loaded;
    }
  }
  return client::resolve_settings(ctx.flags, ctx.env, config);
}

std::string home_dir(CliContext& ctx) {
  auto h = ctx.env("HOME");
  return h ? *h : std::string("/tmp");
}

struct AgentFlags {
  std::string type = "local";
  std::vector<std::string> labels;
  std::string name;
  int max_concurrent = 4;
  std::vector<std::string> env;
  std::string working_dir;
  std::string docker_host;
  std::string run_output_dir;
  int heartbeat_seconds = 10;
};

void add_agent_flags(CLI::App* cmd, AgentFlags& f) {
  cmd->add_option("--type", f.type, "local or docker (ecs and slurm: not available yet)")
      ->check(CLI::IsMember({"local", "docker", "ecs", "slurm"}));
  cmd->add_option("--label,-l", f.labels, "a label this agent serves (repeatable)");
  cmd->add_option("--name", f.name, "agent name (default: HOSTNAME-TYPE)");
  cmd->add_option("--max-concurrent", f.max_concurrent, "runs at once (default 4)")->check(CLI::Range(1, 10000));
  cmd->add_option("--env,-e", f.env, "K=V added to every run's environment (repeatable)");
  cmd->add_option("--working-dir", f.working_dir, "local: working directory of runs");
  cmd->add_option("--docker-host", f.docker_host, "docker: the engine's unix socket");
  cmd->add_option("--run-output-dir", f.run_output_dir,
                  "local: write each run's stdout/stderr to DIR/<run-id>.log (default: the agent's own)");
  cmd->add_option("--heartbeat-seconds", f.heartbeat_seconds, "agent heartbeat interval (default 10)")
      ->check(CLI::Range(1, 3600));
}

int agent_start(CliContext& ctx, const AgentFlags& f) {
  std::ostream& err = ctx.err ? *ctx.err : std::cerr;
  bool ok;
  auto settings = settings_for(ctx, err, ok);
  if (!ok) return 2;
  if (f.type != "local" && f.type != "docker") {
    err << "culvert agent start: --type " << f.type
        << " is not available in this version (use --type local or --type docker)\n";
    return 2;
  }
  agent::AgentOptions opts;
  char host[256] = "host";
  ::gethostname(host, sizeof(host) - 1);
  opts.name = f.name.empty() ? fmt::format("{}-{}", host, f.type) : f.name;
  opts.labels = f.labels;
  opts.max_concurrent = f.max_concurrent;
  for (const auto& kv : f.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      err << "culvert agent start: --env expects K=V, got '" << kv << "'\n";
      return 2;
    }
    opts.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  // Local runs start this very binary; containers run the image's `culvert`.
  opts.command = {self_exe(), "execute"};
  if (f.type == "local") {
    // A flow version whose artifact is already verified in the cache `culvert execute`
    // uses is started directly (one process start and two API calls fewer per run).
    // Versions are immutable, so the artifact hash of each is asked for once.
    auto cache_dir = std::make_shared<std::string>(
        opts.env.count("CULVERT_ARTIFACT_CACHE")
            ? opts.env.at("CULVERT_ARTIFACT_CACHE")
            : ctx.env("CULVERT_ARTIFACT_CACHE").value_or(home_dir(ctx) + "/.culvert/artifacts"));
    auto flows_api = std::make_shared<client::ApiClient>(
        client::ClientOptions{.api_url = settings.api_url, .api_token = settings.api_token});
    auto sha_of = std::make_shared<std::map<std::string, std::string>>();
    opts.command_for = [cache_dir, flows_api, sha_of](const agent::ClaimedRun& run) -> std::vector<std::string> {
      auto it = sha_of->find(run.flow_id);
      if (it == sha_of->end()) {
        auto flow = flows_api->get_flow(run.flow_id);
        if (!flow || !flow->contains("artifact") || !(*flow)["artifact"].is_object()) return {};
        std::string sha = (*flow)["artifact"].value("sha256", "");
        if (sha.empty()) return {};
        it = sha_of->emplace(run.flow_id, sha).first;
      }
      auto path = storage::cached_artifact(it->second, *cache_dir);
      if (!path) return {};  // not fetched yet: `culvert execute` fetches and verifies it
      return {*path, "execute"};
    };
  }
  opts.api_url = settings.api_url;
  opts.heartbeat_interval = std::chrono::seconds(f.heartbeat_seconds);
  if (!f.run_output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(f.run_output_dir, ec);
    if (ec) {
      err << "culvert agent start: cannot create --run-output-dir '" << f.run_output_dir << "': " << ec.message() << "\n";
      return 2;
    }
  }
  std::unique_ptr<agent::Launcher> launcher;
  if (f.type == "docker") {
    agent::DockerLauncherOptions dopts;
    if (!f.docker_host.empty()) {
      dopts.docker_host = f.docker_host;
      if (dopts.docker_host.starts_with("unix://")) dopts.docker_host = dopts.docker_host.substr(7);
    }
    launcher = std::make_unique<agent::DockerLauncher>(dopts);
  } else {
    launcher = std::make_unique<agent::LocalLauncher>(
        agent::LocalLauncherOptions{.working_dir = f.working_dir, .output_dir = f.run_output_dir});
  }

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  client::ClientOptions co{.api_url = settings.api_url, .api_token = settings.api_token};
  agent::ClientAgentApi claim_api(co, &g_stop);
  agent::ClientAgentApi monitor_api(co);
  agent::Agent agent(opts, claim_api, monitor_api, *launcher, system_clock());
  Status st = agent.register_self();
  if (!st.is_ok()) {
    err << "culvert agent start: cannot register with " << settings.api_url << ": " << st.message() << "\n";
    return 1;
  }
  spdlog::info("agent '{}' ({}) registered as {} with labels [{}]; max {} runs at once; server {}", opts.name,
               f.type, agent.id(), fmt::format("{}", fmt::join(opts.labels, ", ")), opts.max_concurrent,
               settings.api_url);
  st = agent.run(g_stop);
  spdlog::info("agent '{}' stopped ({} runs still running on their own)", opts.name, agent.active_runs());
  return st.is_ok() ? 0 : 1;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

int install_service(CliContext& ctx, const AgentFlags& f, const std::string& unit_name, const std::string& output,
                    const std::string& user) {
  std::ostream& out = ctx.out ? *ctx.out : std::cout;
  std::ostream& err = ctx.err ? *ctx.err : std::cerr;
  std::vector<std::string> args = {self_exe(), "agent", "start", "--type", f.type};
  for (const auto& l : f.labels) args.insert(args.end(), {"--label", l});
  if (!f.name.empty()) args.insert(args.end(), {"--name", f.name});
  args.insert(args.end(), {"--max-concurrent", std::to_string(f.max_concurrent)});
  for (const auto& e : f.env) args.insert(args.end(), {"--env", e});
  if (!f.working_dir.empty()) args.insert(args.end(), {"--working-dir", f.working_dir});
  if (!f.docker_host.empty()) args.insert(args.end(), {"--docker-host", f.docker_host});
  if (!f.run_output_dir.empty()) args.insert(args.end(), {"--run-output-dir", f.run_output_dir});
  if (ctx.flags.profile) args.insert(args.end(), {"--profile", *ctx.flags.profile});
  if (ctx.flags.api_url) args.insert(args.end(), {"--api-url", *ctx.flags.api_url});
  std::string exec;
  for (const auto& a : args) exec += (exec.empty() ? "" : " ") + shell_quote(a);
  std::string unit = fmt::format(
      "# Written by `culvert agent install-service`.\n"
      "[Unit]\n"
      "Description=Culvert agent ({} {})\n"
      "After=network-online.target\n"
      "Wants=network-online.target\n\n"
      "[Service]\n"
      "Type=simple\n"
      "{}"
      "Environment=HOME={}\n"
      "ExecStart={}\n"
      "Restart=always\n"
      "RestartSec=5\n"
      "# Stop only the agent: flow runs it launched finish on their own and report for themselves.\n"
      "KillMode=process\n"
      "TimeoutStopSec=30\n\n"
      "[Install]\n"
      "WantedBy=multi-user.target\n",
      f.type, fmt::format("{}", fmt::join(f.labels, ",")), user.empty() ? "" : "User=" + user + "\n",
      home_dir(ctx), exec);
  if (output.empty() || output == "-") {
    out << unit;
    return 0;
  }
  std::filesystem::path path = output;
  if (std::filesystem::is_directory(path)) path /= unit_name + ".service";
  std::ofstream file(path, std::ios::trunc);
  if (!file || !(file << unit)) {
    err << "culvert agent install-service: cannot write " << path.string() << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  err << "wrote " << path.string() << "\nthen: systemctl daemon-reload && systemctl enable --now "
      << path.stem().string() << "\n";
  return 0;
}

// `culvert execute`: fetch the run's artifact (verified, cached) and exec it as
// `<artifact> execute`, keeping this process (and its process group) for the agent.
int execute(CliContext& ctx) {
  std::ostream& err = ctx.err ? *ctx.err : std::cerr;
  auto env = runtime::execute_env_from_process();
  if (!env) {
    err << "culvert execute: " << env.status().message() << "\n";
    return 2;
  }
  client::ApiClient api(client::ClientOptions{.api_url = env->api_url, .api_token = env->api_token});
  auto crash = [&](const std::string& why) {
    err << "culvert execute: " << why << "\n";
    auto r = api.set_flow_run_state(env->flow_run_id, "Crashed", why);
    if (!r) err << "culvert execute: reporting Crashed failed: " << r.status().message() << "\n";
    return 1;
  };
  auto answer = api.get_flow_run(env->flow_run_id);
  auto run = answer ? runtime::decode_flow_run(*answer) : Result<runtime::FlowRunAnswer>(answer.status());
  if (!run) {
    err << "culvert execute: cannot read flow run " << env->flow_run_id << ": " << run.status().message() << "\n";
    return 1;
  }
  if (run->flow_id.empty()) return crash("the server's flow run names no flow version (\"flow_id\")");
  auto flow = api.get_flow(run->flow_id);
  if (!flow) return crash("cannot read the run's flow version: " + flow.status().message());
  auto artifact = runtime::decode_flow_artifact(*flow);
  if (!artifact) return crash(artifact.status().message());
  const std::string& uri = artifact->uri;
  const std::string& sha = artifact->sha256;
  std::string cache = ctx.env("CULVERT_ARTIFACT_CACHE").value_or(home_dir(ctx) + "/.culvert/artifacts");
  StorageOptions so;
  if (auto ep = ctx.env("CULVERT_S3_ENDPOINT")) so.s3_endpoint = *ep;
  auto path = storage::fetch_artifact(uri, sha, cache, so);
  if (!path) return crash("cannot fetch the flow's artifact " + uri + ": " + path.status().message());
  std::string p = *path;
  char* argv[] = {p.data(), const_cast<char*>("execute"), nullptr};
  std::cout.flush();
  ::execv(p.c_str(), argv);
  return crash(fmt::format("cannot execute the artifact {}: {}", p, std::strerror(errno)));
}

}  // namespace

void add_agent_commands(CLI::App& app, CliContext& ctx) {
  auto* agent_cmd = app.add_subcommand("agent", "Run an agent that launches flow runs");
  agent_cmd->require_subcommand(1);
  agent_cmd->fallthrough();
  auto flags = std::make_shared<AgentFlags>();
  auto* start = agent_cmd->add_subcommand("start", "Start an agent in the foreground");
  start->fallthrough();
  add_agent_flags(start, *flags);
  start->callback([&ctx, flags] { ctx.exit_code = agent_start(ctx, *flags); });

  auto svc_flags = std::make_shared<AgentFlags>();
  auto unit_name = std::make_shared<std::string>("culvert-agent");
  auto output = std::make_shared<std::string>();
  auto user = std::make_shared<std::string>();
  auto* svc = agent_cmd->add_subcommand("install-service", "Write a systemd unit that keeps an agent running");
  svc->fallthrough();
  add_agent_flags(svc, *svc_flags);
  svc->add_option("--unit-name", *unit_name, "unit name (default culvert-agent)");
  svc->add_option("--output,-o", *output, "file or directory to write (default: print the unit)");
  svc->add_option("--user", *user, "run the agent as this user");
  svc->callback([&ctx, svc_flags, unit_name, output, user] {
    ctx.exit_code = install_service(ctx, *svc_flags, *unit_name, *output, *user);
  });

  auto* exec = app.add_subcommand("execute", "Run the flow run named by CULVERT_FLOW_RUN_ID (what agents launch)");
  exec->fallthrough();
  exec->callback([&ctx] { ctx.exit_code = execute(ctx); });
}

}  // namespace culvert::cli
