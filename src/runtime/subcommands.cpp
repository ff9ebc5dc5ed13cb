// Adds `execute` and `register` to every flow binary that links the SDK. The linker
// keeps this file because the SDK's link interface asks for culvert_runtime_link_anchor.
#include <culvert/main.hpp>

#include <unistd.h>

#include <climits>
#include <iostream>

#include <nlohmann/json.hpp>

#include "client/profile.hpp"
#include "runtime/runtime.hpp"

extern "C" {
// Referenced by the SDK's link options (-Wl,--undefined=...) so that static linking
// keeps this translation unit and its registrations.
int culvert_runtime_link_anchor = 0;
}

namespace culvert::runtime {
namespace {

int bad_usage(const std::string& what) {
  std::cerr << what << "\n";
  return 2;
}

int execute_command(const Flow& flow, const std::vector<std::string>& args) {
  auto env = execute_env_from_process();
  if (!env) return bad_usage(flow.name() + " execute: " + env.status().message());
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--workers" && i + 1 < args.size()) {
      char* end = nullptr;
      long n = std::strtol(args[i + 1].c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 1024)
        return bad_usage(flow.name() + " execute: --workers expects a number from 1 to 1024, got '" + args[i + 1] + "'");
      env->workers = static_cast<int>(n);
      ++i;
    } else {
      return bad_usage(flow.name() + " execute: unknown option '" + args[i] + "'");
    }
  }
  return execute_flow(flow, *env);
}

}  // namespace

int register_command_main(const Flow& flow, const std::string& describe_json, const std::string& artifact_path,
                          const std::vector<std::string>& args) {
  const std::string prog = flow.name() + " register";
  RegisterOptions opts;
  client::SettingFlags flags;
  bool json_output = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    std::string v;
    if (a == "--project" && value(v)) opts.project = v;
    else if (a == "--storage" && value(v)) opts.storage = v;
    else if (a == "--label" && value(v)) opts.labels.push_back(v);
    else if (a == "--idempotency-key" && value(v)) opts.idempotency_key = v;
    else if (a == "--run-config" && value(v)) opts.run_config_json = v;
    else if (a == "--s3-endpoint" && value(v)) opts.s3_endpoint = v;
    else if (a == "--api-url" && value(v)) flags.api_url = v;
    else if (a == "--api-token" && value(v)) flags.api_token = v;
    else if (a == "--profile" && value(v)) flags.profile = v;
    // text: the older name of table.
    else if ((a == "--output" || a == "-o") && value(v) && (v == "json" || v == "table" || v == "text"))
      json_output = v == "json";
    else
      return bad_usage(prog + ": unknown or incomplete option '" + a +
                       "' (usage: register --project P [--storage URI] [--label L]... [--idempotency-key K] "
                       "[--run-config JSON] [--s3-endpoint URL] [--api-url URL] [--api-token T] [--profile NAME] [--output table|json])");
  }
  if (opts.project.empty()) return bad_usage(prog + ": --project NAME is required");
  // The schedule goes to the server: its time zone must be one the database knows.
  if (Status valid = flow.validate(); !valid) return bad_usage(prog + ": " + valid.message());
  if (opts.s3_endpoint.empty()) {
    if (const char* e = std::getenv("CULVERT_S3_ENDPOINT")) opts.s3_endpoint = e;
  }
  auto env = client::process_env();
  client::ProfileConfig config;
  if (auto path = client::default_config_path(env)) {
    auto loaded = client::load_profile_config(*path);
    if (!loaded) return bad_usage(prog + ": " + loaded.status().message());
    config = *loaded;
  }
  auto settings = client::resolve_settings(flags, env, config);
  opts.api_url = settings.api_url;
  opts.api_token = settings.api_token;

  std::string artifact = artifact_path;
  if (artifact.empty()) {
    char self[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
      std::cerr << prog << ": cannot find this program's own file\n";
      return 1;
    }
    self[n] = '\0';
    artifact = self;
  }
  auto r = register_flow_artifact(artifact, describe_json, opts);
  if (!r) {
    std::cerr << prog << ": " << r.status().message() << "\n";
    return r.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (json_output) {
    std::cout << r->json << std::endl;
  } else {
    std::cout << "registered flow '" << flow.name() << "' version " << r->version << " in project '"
              << opts.project << "' (id " << r->id << ")\n";
  }
  return 0;
}

namespace {

int register_command(const Flow& flow, const std::vector<std::string>& args) {
  return register_command_main(flow, flow.describe_json(), "", args);
}

const char kExecuteUsage[] =
    "usage: {prog} execute [--workers N]\n"
    "Runs flow run $CULVERT_FLOW_RUN_ID for an agent: reads its parameters from the server at\n"
    "$CULVERT_API_URL (token $CULVERT_API_TOKEN), reports states and logs, heartbeats, and\n"
    "cancels when the server says so. Agents start it; to run the flow here, use `run`.\n"
    "  --workers N   worker threads, 1 to 1024 (default: $CULVERT_WORKERS, else the machine's cores)\n"
    "Environment: CULVERT_API_URL, CULVERT_API_TOKEN, CULVERT_FLOW_RUN_ID (required);\n"
    "CULVERT_WORKERS, CULVERT_HEARTBEAT_SECONDS, CULVERT_CANCEL_POLL_MS, CULVERT_SERVER_WAIT_SECONDS.\n";
const char kRegisterUsage[] =
    "usage: {prog} register --project P [--storage URI] [--label L]... [--idempotency-key K]\n"
    "           [--run-config JSON] [--s3-endpoint URL] [--api-url URL] [--api-token T] [--profile NAME] [--output table|json]\n"
    "Uploads this program to its storage (content-addressed) and registers it as a new version.\n"
    "  --project P          the project (required)\n"
    "  --storage URI        file:///DIR or s3://BUCKET/PREFIX (default: the flow's flow.storage(...))\n"
    "  --label L            a run label (repeatable; replaces the run config's labels)\n"
    "  --idempotency-key K  a repeat with this key is a no-op\n"
    "  --run-config JSON    a run config object replacing the flow's own, e.g. {\"type\":\"local\"}\n"
    "  --s3-endpoint URL    an S3-compatible endpoint (default: $CULVERT_S3_ENDPOINT)\n"
    "  --api-url, --api-token, --profile   the server (default: environment, then profile)\n"
    "  -o, --output FORMAT  table (default) or json (text is accepted as an older name of table)\n";

const bool registered = [] {
  register_subcommand("execute", "run as flow run $CULVERT_FLOW_RUN_ID for an agent (reports to the server)",
                      execute_command, kExecuteUsage);
  register_subcommand("register", "upload this flow to its storage and register it: --project P [--storage URI] [--label L]...",
                      register_command, kRegisterUsage);
  return true;
}();

}  // namespace
}  // namespace culvert::runtime
