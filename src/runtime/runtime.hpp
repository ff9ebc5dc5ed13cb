// The orchestration runtime: what a flow binary does under an agent (`execute`) and
// when it registers itself (`register`). Linking Culvert::culvert adds both subcommands
// to every flow binary (see subcommands.cpp); the `culvert` CLI reuses the same
// functions for `culvert execute` and `culvert flow register`.
#pragma once

#include <culvert/clock.hpp>
#include <culvert/flow.hpp>
#include <culvert/status.hpp>

#include "runtime/answers.hpp"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace culvert::runtime {

// Settings of a run under orchestration, from the CULVERT_* environment the agent sets.
struct ExecuteEnv {
  std::string api_url;      // CULVERT_API_URL
  std::string api_token;    // CULVERT_API_TOKEN (a token valid for this run only)
  std::string flow_run_id;  // CULVERT_FLOW_RUN_ID
  std::chrono::milliseconds heartbeat_interval{10000};  // CULVERT_HEARTBEAT_SECONDS
  std::chrono::milliseconds cancel_poll{1000};          // CULVERT_CANCEL_POLL_MS
  // --workers, else CULVERT_WORKERS (the agent's --workers), else default_workers().
  int workers = 1;
  // How long the run keeps trying to reach an unreachable server (a restart) before it
  // gives up on reading the run, reporting states or flushing its batches.
  std::chrono::milliseconds server_wait{300000};       // CULVERT_SERVER_WAIT_SECONDS
  // Time of the retries' backoff, the heartbeat cadence and the engine. Default: the
  // system clock. REQUIRES: outlives execute_flow.
  Clock* clock = nullptr;
};

// Calls `call` until it succeeds, fails for another reason than an unreachable server
// (Unavailable, Timeout), or `wait` of `clock`'s time has passed; it sleeps on `clock`
// between calls, 250 ms doubling to 5 s. A server restart must not lose the start or
// the end of a run.
Result<nlohmann::json> retry_while_unreachable(Clock& clock, std::chrono::milliseconds wait,
                                               const std::function<Result<nlohmann::json>()>& call);

// The machine's cores (at least 1, at most 1024): the worker count of `execute` when
// neither --workers nor CULVERT_WORKERS says otherwise.
int default_workers();

// Reads the environment. InvalidArgument naming each missing or malformed variable.
Result<ExecuteEnv> execute_env_from_process();

// Runs `flow` as flow run env.flow_run_id: fetches its parameters, sets it Running,
// reports task-run states and logs in batches, heartbeats, cancels the run when the
// server says Cancelling, and sets the final state. Returns the exit status (0 Success,
// 1 otherwise, 2 bad usage/environment).
int execute_flow(const Flow& flow, const ExecuteEnv& env);

struct RegisterOptions {
  std::string project;                  // REQUIRES non-empty
  std::optional<std::string> storage;   // overrides the flow's storage URI
  std::vector<std::string> labels;      // when non-empty, replaces the run config's labels
  std::optional<std::string> idempotency_key;
  // A run config (JSON object, docs/SDK.md) replacing the flow's own, e.g. to run the same
  // binary on Docker. Its labels become the flow's labels unless `labels` is given.
  std::optional<std::string> run_config_json;
  std::string s3_endpoint;              // for s3:// storage on S3-compatible services
  // The artifact's kind (docs/FORMATS.md "artifact_kind"), sent in place of the
  // description's own. nullopt: the description's (a flow binary's when it names none).
  std::optional<std::string> artifact_kind;
  // Server settings (already resolved: flags, env, profile).
  std::string api_url;
  std::string api_token;
};

// Uploads the artifact at `artifact_path` (content-addressed, skipped when present) to
// the storage named by the options or the description, then registers the flow
// description (docs/FORMATS.md, as printed by `describe`) with the server. Returns the
// server's answer (the flow version), decoded. InvalidArgument for a malformed
// description or bad options; the server's or the storage's error otherwise.
Result<RegisteredFlow> register_flow_artifact(const std::string& artifact_path,
                                           const std::string& describe_json,
                                           const RegisterOptions& options);

// The `register` subcommand: parses its options (--project P, --storage URI, ...; see
// `register --help`), validates `flow`, resolves the server settings and registers
// `describe_json` (flow's description) with the file at `artifact_path` as its artifact
// (empty: this program's own file).
// Language bindings call it for an artifact that is not the running program (a Python
// flow file). Returns the exit status (0, 1 failure, 2 bad usage).
int register_command_main(const Flow& flow, const std::string& describe_json, const std::string& artifact_path,
                          const std::vector<std::string>& args);

}  // namespace culvert::runtime
