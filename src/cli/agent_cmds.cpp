#include "cli/agent_cmds.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/agent.hpp"
#include "agent/client_api.hpp"
#include "agent/launcher_registry.hpp"
#include "cli/artifact_runners.hpp"
#include "client/api.hpp"
#include "runtime/runtime.hpp"
#include "storage/artifact_cache.hpp"
#include "storage/artifacts.hpp"

extern char** environ;

namespace culvert::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

std::string self_exe() {
  // Started from an image layer, this process is the layer's loader running culvert:
  // the layer's own `culvert` (its launcher) is what starts culvert again.
  if (const char* layer = std::getenv("CULVERT_LAYER"); layer != nullptr && layer[0] == '/')
    return std::string(layer) + "/bin/culvert";
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
  int heartbeat_seconds = 10;
  int workers = 0;  // 0: the machine's cores
  // The launcher flags given (from the launcher registry), by name: single values and
  // switches ("true"), and repeatable flags with every value in order.
  std::map<std::string, std::string> launcher_flags;
  std::map<std::string, std::vector<std::string>> launcher_lists;
};

std::vector<std::string> launcher_type_names() {
  std::vector<std::string> names;
  for (const auto& t : agent::launcher_types()) names.push_back(t.type);
  return names;
}

void add_agent_flags(CLI::App* cmd, AgentFlags& f) {
  std::string types_help;
  for (const auto& t : agent::launcher_types())
    types_help += (types_help.empty() ? "" : "; ") + t.type + ": " + t.description;
  cmd->add_option("--type", f.type, "what the agent launches runs as (default local): " + types_help)
      ->check(CLI::IsMember(launcher_type_names()));
  cmd->add_option("--label,-l", f.labels, "a label this agent serves (repeatable)");
  cmd->add_option("--name", f.name, "agent name (default: HOSTNAME-TYPE)");
  cmd->add_option("--max-concurrent", f.max_concurrent, "runs at once (default 4)")->check(CLI::Range(1, 10000));
  cmd->add_option("--env,-e", f.env,
                  "K=V added to every run's environment (repeatable; the run config's env overrides it)");
  cmd->add_option("--heartbeat-seconds", f.heartbeat_seconds, "agent heartbeat interval (default 10)")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--workers", f.workers,
                  "executor workers of each run, passed as CULVERT_WORKERS (default: this machine's cores)")
      ->check(CLI::Range(1, 1024));
  // Each launcher type's own flags, from the registry (a flag two types share is added once).
  std::set<std::string> added;
  for (const auto& t : agent::launcher_types())
    for (const auto& flag : t.flags) {
      if (!added.insert(flag.name).second) continue;
      std::string name = flag.name;
      switch (flag.kind) {
        case agent::LauncherFlag::Kind::kValue:
          cmd->add_option_function<std::string>(
              "--" + name, [&f, name](const std::string& v) { f.launcher_flags[name] = v; }, flag.help);
          break;
        case agent::LauncherFlag::Kind::kRepeated:
          cmd->add_option_function<std::vector<std::string>>(
                 "--" + name,
                 [&f, name](const std::vector<std::string>& v) {
                   auto& list = f.launcher_lists[name];
                   list.insert(list.end(), v.begin(), v.end());
                 },
                 flag.help)
              ->expected(1)
              ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
          break;
        case agent::LauncherFlag::Kind::kSwitch:
          cmd->add_flag_function(
              "--" + name, [&f, name](std::int64_t) { f.launcher_flags[name] = "true"; }, flag.help);
          break;
      }
    }
}

// The launcher type of `f`, checking that every launcher flag given is one of its own.
const agent::LauncherType* checked_launcher_type(const AgentFlags& f, std::ostream& err, const char* cmd) {
  const agent::LauncherType* type = agent::find_launcher_type(f.type);
  if (type == nullptr) {
    err << "culvert " << cmd << ": unknown --type " << f.type << " (one of "
        << fmt::format("{}", fmt::join(launcher_type_names(), ", ")) << ")\n";
    return nullptr;
  }
  std::vector<std::string> given;
  for (const auto& [name, value] : f.launcher_flags) given.push_back(name);
  for (const auto& [name, values] : f.launcher_lists) given.push_back(name);
  for (const auto& name : given) {
    bool own = std::any_of(type->flags.begin(), type->flags.end(),
                           [&](const agent::LauncherFlag& fl) { return fl.name == name; });
    if (!own) {
      err << "culvert " << cmd << ": --" << name << " is not a flag of --type " << f.type << "\n";
      return nullptr;
    }
  }
  return type;
}

int default_workers() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int agent_start(CliContext& ctx, const AgentFlags& f) {
  std::ostream& err = ctx.err ? *ctx.err : std::cerr;
  bool ok;
  auto settings = settings_for(ctx, err, ok);
  if (!ok) return 2;
  const agent::LauncherType* type = checked_launcher_type(f, err, "agent start");
  if (type == nullptr) return 2;
  agent::AgentOptions opts;
  char host[256] = "host";
  ::gethostname(host, sizeof(host) - 1);
  opts.name = f.name.empty() ? fmt::format("{}-{}", host, f.type) : f.name;
  opts.labels = f.labels;
  opts.max_concurrent = f.max_concurrent;
  opts.workers = f.workers > 0 ? f.workers : default_workers();
  for (const auto& kv : f.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      err << "culvert agent start: --env expects K=V, got '" << kv << "'\n";
      return 2;
    }
    opts.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  opts.api_url = settings.api_url;
  opts.heartbeat_interval = std::chrono::seconds(f.heartbeat_seconds);

  agent::LauncherContext lctx;
  lctx.flags = f.launcher_flags;
  lctx.repeated_flags = f.launcher_lists;
  lctx.agent_name = opts.name;
  lctx.culvert_binary = self_exe();
  lctx.api_url = settings.api_url;
  lctx.api_token = settings.api_token;
  lctx.agent_env = opts.env;
  lctx.getenv = [&ctx](const std::string& k) { return ctx.env(k); };
  auto launcher = type->factory(lctx);
  if (!launcher) {
    err << "culvert agent start: " << launcher.status().message() << "\n";
    return 2;
  }

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  client::ClientOptions co{.api_url = settings.api_url, .api_token = settings.api_token};
  agent::ClientAgentApi claim_api(co, system_clock(), &g_stop);
  agent::ClientAgentApi monitor_api(co, system_clock());
  agent::Agent agent(opts, claim_api, monitor_api, **launcher, system_clock());
  auto refused = [&](const Status& st) {
    err << "culvert agent start: the server at " << settings.api_url << " refuses this agent's token ("
        << (st.code() == StatusCode::kUnauthenticated ? "revoked, expired or unknown"
                                                      : "it lacks the runner scope, or the agent name belongs to "
                                                        "another token")
        << "): " << st.message() << "\n";
    return 1;
  };
  Status st = agent.register_self();
  if (!st.is_ok()) {
    if (agent::is_auth_failure(st)) return refused(st);
    err << "culvert agent start: cannot register with " << settings.api_url << ": " << st.message() << "\n";
    return 1;
  }
  spdlog::info("agent '{}' ({}) registered as {} with labels [{}]; max {} runs at once, {} workers each; server {}",
               opts.name, f.type, agent.id(), fmt::format("{}", fmt::join(opts.labels, ", ")), opts.max_concurrent,
               opts.workers, settings.api_url);
  st = agent.run(g_stop);
  if (!st.is_ok()) {
    if (agent::is_auth_failure(st)) return refused(st);
    err << "culvert agent start: " << st.message() << "\n";
    return 1;
  }
  spdlog::info("agent '{}' stopped and deregistered ({} runs still running on their own)", opts.name,
               agent.active_runs());
  return 0;
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
  if (checked_launcher_type(f, err, "agent install-service") == nullptr) return 2;
  // The unit's HOME is the home of the user it runs as (the agent's profile and
  // artifact cache live there), not the caller's.
  std::string home = home_dir(ctx);
  if (!user.empty()) {
    std::vector<char> buf(16384);
    struct passwd pw {};
    struct passwd* found = nullptr;
    int rc = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (rc != 0 || found == nullptr || found->pw_dir == nullptr || found->pw_dir[0] == '\0') {
      err << "culvert agent install-service: --user " << user << ": no such user on this machine\n";
      return 2;
    }
    home = found->pw_dir;
  }
  std::vector<std::string> args = {self_exe(), "agent", "start", "--type", f.type};
  for (const auto& l : f.labels) args.insert(args.end(), {"--label", l});
  if (!f.name.empty()) args.insert(args.end(), {"--name", f.name});
  args.insert(args.end(), {"--max-concurrent", std::to_string(f.max_concurrent)});
  for (const auto& e : f.env) args.insert(args.end(), {"--env", e});
  if (f.heartbeat_seconds != 10) args.insert(args.end(), {"--heartbeat-seconds", std::to_string(f.heartbeat_seconds)});
  if (f.workers > 0) args.insert(args.end(), {"--workers", std::to_string(f.workers)});
  const agent::LauncherType* type = agent::find_launcher_type(f.type);
  for (const auto& [name, value] : f.launcher_flags) {
    bool is_switch = std::any_of(type->flags.begin(), type->flags.end(), [&](const agent::LauncherFlag& fl) {
      return fl.name == name && fl.kind == agent::LauncherFlag::Kind::kSwitch;
    });
    if (is_switch) args.push_back("--" + name);
    else args.insert(args.end(), {"--" + name, value});
  }
  for (const auto& [name, values] : f.launcher_lists)
    for (const auto& v : values) args.insert(args.end(), {"--" + name, v});
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
      home, exec);
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

// `culvert execute`: fetch the run's artifact (verified, cached) and hand it to the
// runner of its kind (artifact_runners.hpp): a flow binary is exec'd as
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
  auto cache_dir = storage::artifact_cache_dir(ctx.env);
  if (!cache_dir) return crash(cache_dir.status().message());
  const std::string cache = *cache_dir;
  StorageOptions so;
  if (auto ep = ctx.env("CULVERT_S3_ENDPOINT")) so.s3_endpoint = *ep;
  auto path = storage::fetch_artifact(uri, sha, cache, so);
  if (!path) return crash("cannot fetch the flow's artifact " + uri + ": " + path.status().message());
  // Execute exactly the bytes that were hashed: a descriptor whose content was hashed
  // through itself, not the path (which a writer of the cache could change meanwhile).
  // A cached copy that does not hash right (its stamp lied) is fetched once more.
  auto verified = storage::open_verified_artifact(sha, cache);
  if (!verified) {
    storage::forget_cached_artifact(sha, cache);
    path = storage::fetch_artifact(uri, sha, cache, so);
    if (!path) return crash("cannot fetch the flow's artifact " + uri + ": " + path.status().message());
    verified = storage::open_verified_artifact(sha, cache);
  }
  if (!verified) return crash("the cached copy of the flow's artifact " + *path + " does not match the registered hash");
  const ArtifactRunner* runner = find_artifact_runner(artifact->kind);
  if (runner == nullptr) {
    ::close(verified->fd);
    std::string kinds;
    for (const auto& r : artifact_runners()) kinds += (kinds.empty() ? "" : ", ") + r.kind;
    return crash("this culvert cannot run a flow artifact of kind '" + artifact->kind + "' (it runs " + kinds +
                 "): update culvert where the run is launched");
  }
  auto status = runner->run(ArtifactToRun{.path = *path, .fd = verified->fd, .uri = uri});
  ::close(verified->fd);
  if (!status) return crash(status.status().message());
  return *status;
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
