// The JSON side of the API: request bodies parsed and validated into store records,
// and store records rendered as JSON. Pure functions (no I/O), so they are unit-tested
// and fuzzed directly. Errors: InvalidArgument (HTTP 400) when a body is not JSON,
// Unprocessable (HTTP 422) naming the field when valid JSON has invalid content.
// Thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "core/json_text.hpp"
#include "store/store.hpp"

namespace culvert::server {

using json = nlohmann::json;

// Limits on batches and names (documented in docs/SERVER.md).
inline constexpr size_t kMaxBatch = 1000;
inline constexpr size_t kMaxNameLength = 200;
// Messages (run states, task-run states, log lines) are cut to this many bytes: longer
// ones are truncated at a UTF-8 boundary and end with "… [truncated from N bytes]"
// (a batch is all or nothing, so refusing one long message would lose the others).
// bound_message (core/json_text.hpp) cuts them.
inline constexpr size_t kMaxMessage = kMaxMessageBytes;
// A mapped task has at most this many task runs (map indexes 0 .. kMaxMapCount - 1);
// one task-run item's map_count is bounded by it too.
inline constexpr int64_t kMaxMapCount = 1'000'000;

// Infrastructure reports: a kind of at most this many bytes, an id of at most this many.
inline constexpr size_t kMaxInfrastructureKind = 32;
inline constexpr size_t kMaxInfrastructureId = 1024;

// The run-config types (run_config.type, an agent's type, a claim's types).
inline constexpr const char* kRunConfigTypes = "local, docker, ecs, slurm";
bool is_run_config_type(std::string_view type);

// Parses a request body. An empty body is `{}` when `empty_is_object`. InvalidArgument
// when it is not JSON or nests arrays and objects deeper than kMaxJsonDepth (64).
Result<json> parse_body(std::string_view body, bool empty_is_object = false);

// POST /api/v1/projects
struct ProjectCreate {
  std::string name;
  std::string description;
  bool skip_if_exists = false;
};
Result<ProjectCreate> parse_project_create(const json& body);

// POST /api/v1/flows. Checks the flow description (docs/FORMATS.md): unique task
// names, edges between known tasks and without cycles, parameter declarations, run
// config type, schedule shape.
Result<store::NewFlowVersion> parse_flow_registration(const json& body);

// POST /api/v1/flow-runs
struct FlowRunCreate {
  std::optional<std::string> flow_id;
  std::optional<std::string> project;  // with `flow`
  std::optional<std::string> flow;
  json parameters = json::object();
  std::optional<std::vector<std::string>> labels;
  std::optional<std::string> idempotency_key;
  std::optional<SysTime> scheduled_start_time;
};
Result<FlowRunCreate> parse_flow_run_create(const json& body);
// Checks run parameters against the flow's declared parameters (the description's
// "parameters" array): unknown names, missing required ones and type mismatches are
// Unprocessable.
Status check_parameters(const json& flow_description, const json& given);

// POST /api/v1/flow-runs/{id}/state
struct StateChange {
  State state = State::kPending;
  std::string message;
  std::optional<int64_t> expected_version;
  std::optional<SysTime> scheduled_start_time;
};
Result<StateChange> parse_state_change(const json& body);

// POST /api/v1/task-runs/states
Result<std::vector<store::TaskRunUpdate>> parse_task_run_batch(const json& body, SysTime now);
// The tasks of a flow version, read from its stored description: the task names its
// runs' task-run states may name, and whether each is mapped ("mapped": true).
struct FlowTasks {
  std::string flow_name;
  int flow_version = 0;
  std::map<std::string, bool, std::less<>> mapped;  // task name -> mapped
  // The distributed mapped tasks (their "distributed" member): each one's children's
  // run config as JSON text and its type ("" when the task has none: the flow's).
  struct DistributedTask {
    std::string run_config_json;
    std::string run_config_type;
  };
  std::map<std::string, DistributedTask, std::less<>> distributed;
};
FlowTasks flow_tasks(const store::Flow& flow, const json& description);

// A distributed mapped task's bounds (a task entry's "distributed" member).
inline constexpr int64_t kMaxDistributedWorkers = 10000;
inline constexpr int64_t kMaxDistributedChunkSize = 1000000;
// The highest chunk number of a child run.
inline constexpr int64_t kMaxChildChunkNumber = 10'000'000;

// POST /api/v1/flow-runs/{id}/children: {"task": T, "chunks": [{"chunk", "start",
// "end"}, ...]}, 1..store::kMaxChildChunks chunks of distinct numbers, 0 <= start < end
// <= store::kMaxMapIndex + 1.
struct ChildRunsCreate {
  std::string task;
  std::vector<store::ChildChunk> chunks;
};
Result<ChildRunsCreate> parse_child_runs_create(const json& body);
// Checks item `index` of a task-run batch against its run's flow version: a task the
// version does not have, or a map_index (or map_count above 1) on a task that is not
// mapped, is Unprocessable naming the item and the task. map_index -1 on a mapped task
// is allowed (a mapped task that never expanded because its upstream failed).
Status check_task_run_item(const store::TaskRunUpdate& u, size_t index, const FlowTasks& tasks);

// POST /api/v1/logs
Result<std::vector<store::LogEntry>> parse_log_batch(const json& body, SysTime now);
// POST /api/v1/agents
Result<store::NewAgent> parse_agent(const json& body);

// POST /api/v1/agents/{id}/claim
struct ClaimBody {
  int max = 1;
  Millis wait{0};
  // The run-config types the agent launches (sorted, distinct); nullopt: its type.
  std::optional<std::vector<std::string>> types;
};
Result<ClaimBody> parse_claim(const json& body, Millis max_wait);

// POST /api/v1/flow-runs/{id}/infrastructure: `kind` (lower-case letters, digits and
// '-', at most kMaxInfrastructureKind bytes) and `id` (no control characters, at most
// kMaxInfrastructureId bytes), both required.
struct InfrastructureReport {
  std::string kind;
  std::string id;
};
Result<InfrastructureReport> parse_infrastructure(const json& body);

// POST /api/v1/tokens. `expires` is a duration ("30d") or an RFC 3339 time.
struct TokenCreate {
  std::string name;
  std::string scope;
  std::optional<SysTime> expires;
};
Result<TokenCreate> parse_token_create(const json& body, SysTime now);

// Integer query parameter in [lo, hi]; `fallback` when absent. Unprocessable names it.
Result<int64_t> parse_int_param(const std::optional<std::string>& value, std::string_view name,
                                int64_t lo, int64_t hi, int64_t fallback);

// Rendering.
json to_json(const store::Project& p);
// `full`: include the stored description (tasks, edges, parameters, run config...).
json to_json(const store::Flow& f, bool full);
json to_json(const store::FlowRun& r);
// null when nullopt.
json to_json(const std::optional<store::Infrastructure>& i);
json to_json(const store::StateChange& c);
json to_json(const store::FlowRunAttempt& a);
json to_json(const store::TaskRun& t);
json to_json(const store::ChildRun& c);
json to_json(const store::ChildRunEntry& e);
json to_json(const store::TaskRunHistoryEntry& h);
json to_json(const store::MappedTaskSummary& m);
json to_json(const store::LogRecord& l);
// `healthy` is decided by the caller (it depends on the clock and intervals).
json to_json(const store::Agent& a, bool healthy);
json to_json(const store::Token& t);
// A flow run as JSON text, the same document as to_json(FlowRun) (written directly:
// this is the hot path of run reads, state changes and heartbeats).
std::string flow_run_text(const store::FlowRun& r);

}  // namespace culvert::server
