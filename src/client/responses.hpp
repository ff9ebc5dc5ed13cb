// The server's answers as typed values. Each answer is decoded once, here, from the JSON
// the server sends; the field names are the server's own (the to_json functions of
// src/server/api_json.cpp), and nothing else is read.
//
// Decoding rules, the same for every type:
// - A field the value cannot do without (an id, a state, the list of a listing) is
//   required; any other field may be absent or null and then keeps its default.
// - A field that is present with the wrong type (a number where the server sends a
//   string, an unknown state name, a list that is not an array) is an error.
// - Unknown fields are ignored: the server may add fields.
// A failure is StatusCode::kInternal ("the server's answer is malformed") with a message
// naming the field by its path (`runs[3].state must be a string, not an integer`). No
// decoder throws. Stateless functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <culvert/state.hpp>
#include <culvert/status.hpp>

#include "core/schedule.hpp"

namespace culvert::client {

// GET /api/v1/projects item, POST /api/v1/projects answer.
struct Project {
  std::string id;  // required
  std::string name;
  std::string description;
  std::string created;  // RFC 3339 text as the server sent it
};

struct Artifact {
  std::string uri;
  std::string sha256;
};

// One declared parameter of a flow (docs/FORMATS.md).
struct ParameterDecl {
  std::string name;                            // required
  std::string type = "json";                   // int, float, bool, string, json
  std::optional<nlohmann::json> default_value; // "default"
  bool required = false;
};

// A flow version: GET /api/v1/flows/{id} (full), GET /api/v1/flows items and
// POST /api/v1/flows/{id}/schedule (summaries: no tasks).
struct FlowVersion {
  std::string id;  // required
  std::string project_id;
  std::string project;  // the project's name
  std::string name;
  int64_t version = 0;
  bool archived = false;
  Artifact artifact;
  std::vector<std::string> labels;
  std::optional<Schedule> schedule;  // decoded with Schedule::from_json
  bool schedule_active = true;
  std::vector<ParameterDecl> parameters;
  std::optional<size_t> task_count;  // the full answer's "tasks"; nullopt in summaries
  std::string created;
};

// Where a run's process lives, as its agent reported it ("infrastructure").
struct Infrastructure {
  std::string kind;  // required: process, container, ecs-task, slurm-job, ...
  std::string id;    // required: pid, container id, task ARN, job id
  std::string agent_id;
  std::string reported_at;
};

// A child run's place in its parent ("child"): the map indexes [start, end) of the
// parent's mapped task `task`, for the parent's attempt `parent_attempt`.
struct ChildOf {
  std::string parent_run_id;  // required
  std::string task;
  int64_t chunk = 0;
  int64_t start = 0;
  int64_t end = 0;
  int64_t parent_attempt = 0;
};

// Runs per state, in the server's order (no zero counts).
using StateCounts = std::vector<std::pair<State, int64_t>>;

// A parent's children of its current attempt ("children" of GET /api/v1/flow-runs/{id}).
struct ChildrenSummary {
  int64_t count = 0;
  StateCounts by_state;
  int64_t parent_attempt = 0;
};

// A flow run: GET /api/v1/flow-runs/{id}, list items, and the answers of create, state,
// cancel and retry.
struct FlowRun {
  std::string id;               // required
  State state = State::kScheduled;  // required
  std::string flow_id;
  std::string project_id;
  std::string flow_name;
  int64_t flow_version = 0;
  nlohmann::json parameters = nlohmann::json::object();  // an object
  std::vector<std::string> labels;
  std::optional<std::string> idempotency_key;
  bool auto_scheduled = false;
  std::string state_message;
  int64_t version = 0;
  int64_t run_count = 0;
  std::optional<std::string> agent_id;
  std::string created;
  std::string state_changed_at;
  std::string scheduled_start_time;
  std::optional<std::string> submitted_at;
  std::optional<std::string> start_time;
  std::optional<std::string> end_time;
  std::optional<std::string> heartbeat_at;
  std::optional<Infrastructure> infrastructure;
  // The flow version's run config ("run_config": an object, or null when none) and its
  // "type" ("" when it has none: any agent may launch it).
  std::optional<nlohmann::json> run_config;
  std::string run_config_type;
  std::optional<ChildOf> child;              // set for a child run
  std::optional<ChildrenSummary> children;   // GET of one run only; nullopt when none
};

// One child in GET /api/v1/flow-runs/{id}/children.
struct ChildRunEntry {
  std::string id;  // required
  int64_t chunk = 0;
  int64_t start = 0;
  int64_t end = 0;
  std::string task;
  int64_t parent_attempt = 0;
  State state = State::kScheduled;  // required
  std::string state_message;
  int64_t run_count = 0;
  std::optional<Infrastructure> infrastructure;
};

// GET /api/v1/flow-runs/{id}/children.
struct ChildRunListing {
  std::vector<ChildRunEntry> children;  // by chunk
  int64_t count = 0;   // every matching child (children holds at most 10,000 of them)
  int64_t final_count = 0;
  StateCounts by_state;
  int64_t parent_attempt = 0;
};

// GET /api/v1/flow-runs: {"runs": [...], "next_cursor": "..." | null}.
struct FlowRunPage {
  std::vector<FlowRun> runs;
  std::optional<std::string> next_cursor;  // nullopt (also for "") when there are no more
};

// GET /api/v1/flow-runs/{id}/history item.
struct StateChange {
  int64_t id = 0;
  State state = State::kScheduled;  // required
  std::optional<State> from_state;
  std::string message;
  int64_t version = 0;
  bool forced = false;
  std::optional<std::string> agent_id;
  std::string timestamp;
};

// GET /api/v1/flow-runs/{id}/attempts item: one attempt of a run, with its own times.
struct FlowRunAttempt {
  int64_t attempt = 0;  // required: 1, 2, ...
  std::optional<State> state;  // the run's latest state within the attempt
  std::string message;
  std::optional<std::string> agent_id;
  std::string start_time;
  std::optional<std::string> end_time;  // nullopt while the attempt goes on
};

// GET /api/v1/flow-runs/{id}/task-runs item.
struct TaskRun {
  std::string id;
  std::string task;  // required
  int64_t map_index = -1;
  std::optional<State> state;
  std::string message;
  int64_t attempts = 0;
  std::string created;
  std::string updated;
  std::optional<std::string> start_time;
  std::optional<std::string> end_time;
  std::optional<std::string> next_start_time;  // Retrying: when the next attempt starts
  int64_t run_attempt = 1;  // the flow run's attempt that wrote it
};

// GET /api/v1/flow-runs/{id}/task-runs "mapped_tasks" item: the task runs of one
// mapped task, summed up.
struct MappedTask {
  std::string task;  // required
  int64_t count = 0;
  int64_t max_map_index = -1;
  std::vector<std::pair<State, int64_t>> states;  // task runs per state, in state order
  std::optional<std::string> start_time;
  std::optional<std::string> end_time;
  std::string updated;
};

// GET /api/v1/flow-runs/{id}/task-runs: {"task_runs", "mapped_tasks", "next_cursor"}.
// Without ?task=: the unmapped tasks' task runs and the mapped tasks' summaries of a
// page of tasks; with ?task=T: T's task runs by map index ("mapped_tasks" absent).
struct TaskRunPage {
  std::vector<TaskRun> task_runs;
  std::vector<MappedTask> mapped_tasks;
  std::optional<std::string> next_cursor;  // nullopt (also for "") on the last page
};

// GET /api/v1/flow-runs/{id}/task-runs/history item: a Retrying state a task run went
// through (map_count task runs from map_index said the same).
struct TaskRunHistoryEntry {
  int64_t id = 0;
  std::string task;  // required
  int64_t map_index = -1;
  int64_t map_count = 1;
  int64_t run_attempt = 1;
  int64_t attempts = 0;
  std::optional<State> state;
  std::string message;
  std::string timestamp;
  std::optional<std::string> next_start_time;
};

// GET /api/v1/flow-runs/{id}/task-runs/history: {"history", "next_cursor"}.
struct HistoryPage {
  std::vector<StateChange> history;
  std::string next_cursor;  // empty on the last page (also when the server sends none)
};

struct TaskRunHistoryPage {
  std::vector<TaskRunHistoryEntry> history;
  std::string next_cursor;  // empty on the last page
};

// GET /api/v1/flow-runs/{id}/logs item.
struct LogLine {
  int64_t id = 0;  // required: the next page's `after` cursor
  std::optional<std::string> task_run_id;
  std::optional<std::string> task;
  int64_t map_index = -1;
  std::string level;
  std::string message;
  std::string timestamp;
  int64_t run_attempt = 1;  // the flow run's attempt that wrote it
};

// GET /api/v1/flow-runs/{id}/logs: {"logs", "next_cursor", "flow_run_state"}.
struct LogPage {
  std::vector<LogLine> logs;
  std::optional<std::string> next_cursor;  // the `after` of the next page
  // More lines are there already (the page stopped at its limit or byte cap): read on
  // from next_cursor without waiting.
  bool more = false;
  std::optional<State> flow_run_state;
};

// How an agent stands, from "health" and "status".
enum class AgentStatus { kHealthy, kUnhealthy, kStopped };
const char* agent_status_name(AgentStatus s);  // "healthy" | "unhealthy" | "stopped"

// GET /api/v1/agents item.
struct Agent {
  std::string id;  // required
  std::string name;
  std::string type;
  std::vector<std::string> labels;
  std::string created;
  std::optional<std::string> last_heartbeat;
  // The run-config types it launches ("run_config_types"; absent: {type}).
  std::vector<std::string> run_config_types;
  // The runs it takes at once, as it said when it registered ("max_concurrent"); absent
  // or null: it did not say (an agent older than that field).
  std::optional<int64_t> max_concurrent;
  // "status": "stopped" (deregistered) wins; else "health" (healthy | unhealthy);
  // neither: healthy.
  AgentStatus status = AgentStatus::kHealthy;
};

// GET /api/v1/tokens item; POST /api/v1/tokens answer (with the secret).
struct Token {
  std::string id;  // required
  std::string name;
  std::string scope;
  std::optional<std::string> flow_run_id;
  std::string created;
  std::optional<std::string> expires;
  bool revoked = false;
  std::optional<std::string> revoked_at;
  std::optional<std::string> token;  // the secret: only in the answer that created it
};

Result<Project> decode_project(const nlohmann::json& answer);
Result<std::vector<Project>> decode_projects(const nlohmann::json& answer);  // {"projects": [...]}
Result<FlowVersion> decode_flow(const nlohmann::json& answer);
Result<std::vector<FlowVersion>> decode_flows(const nlohmann::json& answer);  // {"flows": [...]}
Result<FlowRun> decode_flow_run(const nlohmann::json& answer);
Result<FlowRunPage> decode_flow_run_page(const nlohmann::json& answer);
Result<ChildRunListing> decode_child_runs(const nlohmann::json& answer);
Result<std::vector<StateChange>> decode_history(const nlohmann::json& answer);    // {"history": [...]}
Result<std::vector<FlowRunAttempt>> decode_attempts(const nlohmann::json& answer); // {"attempts": [...]}
Result<std::vector<TaskRun>> decode_task_runs(const nlohmann::json& answer);      // {"task_runs": [...]}
Result<TaskRunPage> decode_task_run_page(const nlohmann::json& answer);
Result<TaskRunHistoryPage> decode_task_run_history(const nlohmann::json& answer);
Result<HistoryPage> decode_history_page(const nlohmann::json& answer);  // {"history", "next_cursor"}
Result<LogPage> decode_log_page(const nlohmann::json& answer);
Result<std::vector<Agent>> decode_agents(const nlohmann::json& answer);           // {"agents": [...]}
Result<Token> decode_token(const nlohmann::json& answer);
Result<std::vector<Token>> decode_tokens(const nlohmann::json& answer);           // {"tokens": [...]}

}  // namespace culvert::client
