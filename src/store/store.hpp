// The orchestration server's metadata store: projects, flow versions, flow runs and
// their state history, task runs, logs, agents and API tokens (docs/CONCEPTS.md, docs/SERVER.md).
//
// One interface, two implementations chosen by URL (see open_store):
//   sqlite:///abs/path.db      a single-file database (WAL, synchronous=NORMAL: a
//                              commit survives a crash of the process; add
//                              ?synchronous=full to also survive power loss)
//   sqlite://:memory:          a private in-memory database (tests only)
//   postgresql://user@host:port/db  (also postgres://)  PostgreSQL 15
// Both pass the same test suite (store_test.cpp) and behave identically.
//
// Contracts shared by every method:
// - A method that returns OK has committed its writes durably (a 2xx built on it may be
//   sent). A method that fails has written nothing.
// - Expected failures are Status values: NotFound for a missing object, Conflict for an
//   illegal transition / stale version / duplicate, InvalidArgument for bad input,
//   Unavailable when the database cannot be reached or stays busy.
// - Timestamps are culvert::SysTime, stored as integer Unix milliseconds (so values
//   read back are truncated to the millisecond). Ids are UUID text (culvert::new_uuid)
//   except log ids, which are increasing integers.
// - JSON documents (flow descriptions, parameters, schedules) are opaque std::string
//   JSON text: the store keeps them verbatim and never interprets them.
// - Label lists are stored normalized (sorted, de-duplicated); records return them so.
//
// Thread safety: a Store is one database connection. Every method is thread-safe (calls
// on one Store are serialized by an internal mutex). For parallelism open several Stores
// on the same URL (e.g. one per worker of a pool): they coordinate through the database,
// also across processes (claims are exactly-once; migrations run once).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <culvert/clock.hpp>
#include <culvert/state.hpp>
#include <culvert/status.hpp>

namespace culvert::store {

// ---------------------------------------------------------------------------------
// Records

struct Project {
  std::string id;
  std::string name;  // unique
  std::string description;
  SysTime created{};
};

// A page of a flow listing (Store::list_flows).
struct FlowListPage {
  std::optional<std::string> name;      // only versions of this flow name
  std::optional<std::string> after_id;  // the flows that list after this one (NotFound if unknown)
  int limit = 0;                        // 0: no limit
};

// What `register` sends: one new version of a flow.
struct NewFlowVersion {
  std::string project;  // project *name*
  // When the project does not exist: create it (true) or fail with NotFound (false).
  bool create_project_if_missing = true;
  std::string name;  // flow name; REQUIRES non-empty
  std::string artifact_uri;
  std::string artifact_sha256;
  // What the artifact is, so that `culvert execute` knows how to run it: "binary" (a
  // flow binary), "python", "python-package" or "yaml". The caller validates it.
  std::string artifact_kind = "binary";
  // The whole flow description (docs/FORMATS.md) as JSON text, stored verbatim:
  // tasks, edges, parameters, run_config, schedule... Default: "{}".
  std::string description_json = "{}";
  std::vector<std::string> labels;
  // The schedule JSON object, or nullopt for an unscheduled flow.
  std::optional<std::string> schedule_json;
  // Whether the schedule starts active (ignored without a schedule). Default: true.
  bool schedule_active = true;
  int max_run_retries = 0;
  // A repeated key (per project + flow name) returns the version registered with it,
  // unchanged, instead of creating a new one.
  std::optional<std::string> idempotency_key;
  // The description's "run_config" object as JSON text ("" when it has none) and that
  // object's "type" ("" when none: any agent may launch its runs). The caller extracts
  // them (the store does not interpret the description); runs carry both (FlowRun).
  std::string run_config_json;
  std::string run_config_type;
};
// Registering what the latest version already is (the same artifact URI, SHA-256 and kind,
// description, labels, schedule and its activity, max_run_retries) returns that
// version (Flow::reused) instead of creating a new one; the idempotency key does not
// take part in the comparison.

// One flow version.
struct Flow {
  std::string id;
  std::string project_id;
  std::string project_name;
  std::string name;
  int version = 0;        // 1, 2, ... per (project, name)
  bool archived = false;  // true for every version but the latest
  std::string artifact_uri;
  std::string artifact_sha256;
  std::string artifact_kind = "binary";  // as registered (NewFlowVersion::artifact_kind)
  std::string description_json;
  std::vector<std::string> labels;
  std::optional<std::string> schedule_json;
  bool schedule_active = false;  // meaningful only with a schedule
  int max_run_retries = 0;
  std::optional<std::string> idempotency_key;
  SysTime created{};
  // Set by register_flow only: true when it returned an existing version instead of
  // creating one (the version of a repeated idempotency key, or a latest version with
  // the same artifact and metadata). False from every other call.
  bool reused = false;
};

struct NewFlowRun {
  std::string flow_id;
  std::string parameters_json = "{}";
  // nullopt: the run inherits the flow's labels. An empty vector: no labels.
  std::optional<std::vector<std::string>> labels;
  // Unique per flow: a repeat returns the existing run unchanged (created=false).
  std::optional<std::string> idempotency_key;
  // When the run becomes due. nullopt: now (the store's clock).
  std::optional<SysTime> scheduled_start_time;
  // Scheduled (default) or Pending; other states are refused with InvalidArgument.
  State initial_state = State::kScheduled;
  // True for runs the schedule service creates (see latest_auto_scheduled_start).
  bool auto_scheduled = false;
  std::string state_message;  // first history entry's message
};

// What a flow run runs on, as the agent that launched it reported it: the kind
// ("process", "container", "ecs-task", "slurm-job", ...) and that kind's id (a pid, a
// container id, a task ARN, a job id). An agent started again finds it here to adopt
// the run.
struct Infrastructure {
  std::string kind;
  std::string id;
  std::string agent_id;  // the agent the run was on when it was reported
  SysTime reported_at{};
};

// What makes a flow run a child run: one chunk of a distributed mapped task of its
// parent run, the task runs [start, end) of that task, for one attempt of the parent.
struct ChildRun {
  std::string parent_run_id;
  std::string task;         // the parent's mapped task
  int chunk = 0;            // >= 0, unique per (parent, parent_attempt, task)
  int64_t start = 0;        // the chunk's first map index
  int64_t end = 0;          // one past its last map index
  int parent_attempt = 0;   // the parent's run_count when the child was created
};

struct FlowRun {
  std::string id;
  std::string flow_id;
  std::string project_id;
  std::string flow_name;
  int flow_version = 0;
  std::string parameters_json;
  std::vector<std::string> labels;
  std::optional<std::string> idempotency_key;
  bool auto_scheduled = false;
  State state = State::kScheduled;
  std::string state_message;
  // Incremented by every state change (starts at 1). Pass it back as expected_version.
  int64_t version = 1;
  int run_count = 0;  // times the run entered Running: its current attempt (0: none yet)
  std::optional<std::string> agent_id;  // the agent that claimed it (while claimed)
  SysTime created{};
  SysTime state_changed_at{};
  SysTime scheduled_start_time{};
  std::optional<SysTime> submitted_at;
  // The current attempt's: its entry into Running and into a final state. Going back to
  // Scheduled, Pending or Retrying (a retry, restart or rescheduling) clears both; every
  // attempt's own times stay in its FlowRunAttempt.
  std::optional<SysTime> start_time;
  std::optional<SysTime> end_time;
  std::optional<SysTime> heartbeat_at;
  // The run's run config ("" when none) and its type ("" when none): the flow version's
  // (NewFlowVersion::run_config_json), or a child run's own when it was created with one
  // (NewChildRuns::run_config_json).
  std::string run_config_json;
  std::string run_config_type;
  // What the run's agent reported running it on; nullopt until reported, and again once
  // the run waits to be claimed anew (Scheduled, Pending, Retrying).
  std::optional<Infrastructure> infrastructure;
  // Set for a child run (create_child_runs); nullopt for every other run.
  std::optional<ChildRun> child;
};

// One chunk of a distributed mapped task: the map indexes [start, end).
struct ChildChunk {
  int chunk = 0;       // >= 0
  int64_t start = 0;   // 0 <= start < end
  int64_t end = 0;     // <= kMaxMapIndex + 1
};

// What create_child_runs makes: one child run of `parent_run_id` per chunk of `task`.
struct NewChildRuns {
  std::string parent_run_id;
  std::string task;  // REQUIRES non-empty
  std::vector<ChildChunk> chunks;  // 1..kMaxChildChunks, distinct chunk numbers
  // The children's own run config (JSON text of an object) and its type ("" when
  // none); nullopt: the parent's flow version's, as for any run. The caller validates it.
  std::optional<std::string> run_config_json;
  std::string run_config_type;
  std::string state_message;  // the first history entry's message of each child
};
// At most this many chunks in one create_child_runs call.
inline constexpr size_t kMaxChildChunks = 1000;

// A child run as the children listing has it (list_child_runs): what a waiting parent
// and `run inspect` need, without the parameters and labels every child shares.
struct ChildRunEntry {
  std::string id;
  ChildRun child;
  State state = State::kScheduled;
  std::string state_message;
  int run_count = 0;
  std::optional<Infrastructure> infrastructure;
};

// Which children list_child_runs and count_child_runs look at.
struct ChildRunQuery {
  std::string parent_run_id;
  std::optional<std::string> task;       // nullopt: every task
  std::optional<int> parent_attempt;     // nullopt: every attempt of the parent
  int limit = 10000;                     // list_child_runs: 1..10000
};

// One attempt of a flow run: attempt N begins when the run enters Running for the N-th
// time (run_count becomes N) and ends when the run next enters a final state, or goes
// back to Scheduled, Pending or Retrying, whichever comes first.
struct FlowRunAttempt {
  std::string flow_run_id;
  int attempt = 1;  // 1..run_count
  // The run's latest state within the attempt (its final state once ended) and that
  // state's message.
  State state = State::kRunning;
  std::string message;
  std::optional<std::string> agent_id;  // the agent that had claimed the run
  SysTime start_time{};
  std::optional<SysTime> end_time;  // nullopt while the attempt goes on
};

// One entry of a flow run's append-only state history.
struct StateChange {
  int64_t id = 0;  // increasing across the database
  std::string flow_run_id;
  std::optional<State> from_state;  // nullopt for the first entry
  State state = State::kScheduled;
  std::string message;
  int64_t version = 0;  // the run's version after this change
  bool forced = false;
  std::optional<std::string> agent_id;
  SysTime timestamp{};
};

struct SetFlowRunState {
  std::string run_id;
  State state = State::kPending;
  std::string message;
  // When set, the change applies only if the run is still at this version (else
  // Conflict "stale version").
  std::optional<int64_t> expected_version;
  // An explicit retry/restart: allows a final run to go back to Scheduled/Pending.
  bool forced = false;
  // Moves the due time (e.g. back to Scheduled/Retrying at a later time).
  std::optional<SysTime> scheduled_start_time;
  SysTime now{};
};

struct FlowRunQuery {
  std::optional<std::string> flow_id;
  std::optional<std::string> project_id;
  // Runs in any of these states; empty: every state.
  std::vector<State> states;
  int limit = 50;  // 1..1000
  // Opaque cursor from a previous page's next_cursor; empty for the first page.
  std::string cursor;
  // Runs claimed by this agent (FlowRun::agent_id).
  std::optional<std::string> agent_id;
  // Runs whose labels include this one.
  std::optional<std::string> label;
  // The child runs of this run (FlowRun::child).
  std::optional<std::string> parent_run_id;
  // Runs created at or after / before these times.
  std::optional<SysTime> created_after;
  std::optional<SysTime> created_before;
};

// Newest first: ordered by (created desc, id desc).
struct FlowRunPage {
  std::vector<FlowRun> runs;
  std::string next_cursor;  // empty when there are no more runs
};
// The cursor of a page that goes on after `run` (a page cut short by its reader).
std::string flow_run_cursor(const FlowRun& run);

// A token the store issues for each run it hands out in claim_runs (see ClaimRequest).
struct NewToken;

struct ClaimRequest {
  std::string agent_id;
  std::vector<std::string> agent_labels;
  int max = 1;  // 1..1000
  SysTime now{};
  // Optional: called once per claimed run inside the claim's transaction; the returned
  // token (typically scope "run", flow_run_id set, hash of a fresh secret) is stored in
  // that same transaction. Leave empty to issue no tokens.
  std::function<NewToken(const FlowRun&)> run_token;
  // The run-config types the agent launches: only runs whose FlowRun::run_config_type is
  // one of them, or empty (a run config without a type), are claimed. nullopt: any type.
  std::optional<std::vector<std::string>> run_config_types;
};

// The highest map index of a mapped task run.
inline constexpr int kMaxMapIndex = 10'000'000;

// An update of the task runs [map_index, map_index + map_count) of one task: they go
// to `state` at `timestamp`. map_count above 1 reports many alike task runs of a mapped
// task in one item (they are stored as ranges; see task_run_ranges.hpp).
struct TaskRunUpdate {
  std::string flow_run_id;
  std::string task;
  int map_index = -1;  // -1: not mapped
  State state = State::kPending;
  std::string message;
  std::optional<int> attempts;  // nullopt: keep the stored count
  SysTime timestamp{};
  int map_count = 1;
  // When the task runs first went Running, for an update that is sent after they did
  // (the Running update itself may never have been sent). Kept only if none is stored.
  std::optional<SysTime> start_time;
  // Retrying: when the next attempt starts. Ignored for other states.
  std::optional<SysTime> next_start_time;
  // The flow run's attempt that sends the update (1..run_count); nullopt: the run's
  // current one. An update of a later run attempt replaces the task runs whatever their
  // times; one of an earlier run attempt is ignored.
  std::optional<int> run_attempt;
};

struct TaskRun {
  std::string id;
  std::string flow_run_id;
  std::string task;
  int map_index = -1;
  State state = State::kPending;
  std::string message;
  int attempts = 0;
  SysTime created{};
  SysTime updated{};  // timestamp of the latest applied update
  std::optional<SysTime> start_time;  // first Running
  std::optional<SysTime> end_time;    // latest final state
  std::optional<SysTime> next_start_time;  // Retrying: when the next attempt starts
  int run_attempt = 1;  // the flow run's attempt that wrote it
};

// A task-run state that a later one replaced, kept in the task runs' history: every
// Retrying update (why an attempt failed, and when the next one starts). One entry
// covers the task runs [map_index, map_index + map_count) of one task that said the
// same thing (as the update did).
struct TaskRunHistoryEntry {
  int64_t id = 0;  // increasing; the next page's `after`
  std::string flow_run_id;
  std::string task;
  int map_index = -1;
  int map_count = 1;
  int run_attempt = 1;  // the flow run's attempt (its run_count) the update belongs to
  int attempts = 0;     // the task run's attempt that the state ended
  State state = State::kRetrying;
  std::string message;
  SysTime timestamp{};
  std::optional<SysTime> next_start_time;
};

struct LogEntry {
  std::string flow_run_id;
  std::optional<std::string> task_run_id;
  std::optional<std::string> task;  // task name, when known
  int map_index = -1;
  std::string level = "INFO";
  std::string message;
  SysTime timestamp{};
  // The flow run's attempt that wrote the line (1..run_count); nullopt: the run's
  // current one (1 before the run first ran).
  std::optional<int> run_attempt;
};

struct LogRecord {
  int64_t id = 0;  // increasing; use the last id seen as the next `after` cursor
  std::string flow_run_id;
  std::optional<std::string> task_run_id;
  std::optional<std::string> task;
  int map_index = -1;
  std::string level;
  std::string message;
  SysTime timestamp{};
  int run_attempt = 1;  // the flow run's attempt that wrote it
};

// At most this many agents (names) are bound to one token: a runner token cannot grow
// the agent listing without bound. Registering one more is a Conflict.
inline constexpr int kMaxAgentsPerToken = 1000;

struct NewAgent {
  std::string name;  // unique; re-registering a name updates that agent
  std::string type;  // local, docker, ecs, slurm
  std::vector<std::string> labels;
  // The API token that registers it: the agent is bound to it. Re-registering the name
  // with another token (or none) is a Conflict while the bound token is live (stored,
  // neither revoked nor expired); an agent registered unbound (nullopt, or before agents
  // were bound to tokens) is bound by the next registration with a token.
  std::optional<std::string> token_id;
  // The runs it takes at once (`culvert agent start --max-concurrent`), as it said when
  // it registered; nullopt when it did not say (an agent older than this field).
  std::optional<int> max_concurrent;
};

struct Agent {
  std::string id;
  std::string name;
  std::string type;
  std::vector<std::string> labels;
  SysTime created{};
  std::optional<SysTime> last_heartbeat;  // nullopt until the first heartbeat
  std::optional<std::string> token_id;    // the token it is bound to (NewAgent::token_id)
  // When it was deregistered; nullopt while it is live. Registering again clears it.
  std::optional<SysTime> stopped_at;
  // The run-config types it launches, as its latest claim said (set_agent_types);
  // {type} until then.
  std::vector<std::string> run_config_types;
  // As its latest registration said (NewAgent::max_concurrent); nullopt when it did not.
  std::optional<int> max_concurrent;
};

struct NewToken {
  std::string id;  // empty: the store generates a UUID
  std::string name;
  std::string scope;  // admin | user | runner | run
  std::string hash;   // hex SHA-256 of the secret; the secret itself is never stored
  std::optional<SysTime> expires;
  std::optional<std::string> flow_run_id;  // for scope "run"
};

// Token metadata. Never contains the hash.
struct Token {
  std::string id;
  std::string name;
  std::string scope;
  std::optional<std::string> flow_run_id;
  SysTime created{};
  std::optional<SysTime> expires;
  std::optional<SysTime> revoked_at;
};

struct StateCount {
  State state;
  int64_t count = 0;
};

// What the web UI's dashboard sums up (Store::dashboard).
struct Dashboard {
  std::vector<StateCount> created_since_by_state;  // runs created since the given time
  int64_t late_count = 0;                          // Scheduled/Pending runs past their due time
  std::vector<FlowRun> late_runs;                  // the earliest-due of those
  // Agent id → its runs in Submitted, Running or Cancelling.
  std::vector<std::pair<std::string, int64_t>> in_flight_by_agent;
};

// The task runs of one mapped task (those with map_index >= 0), summed up.
struct MappedTaskSummary {
  std::string task;
  int64_t count = 0;                  // task runs
  int64_t max_map_index = -1;         // the highest map index reported
  std::vector<StateCount> states;     // task runs per state, in state order; no zero counts
  std::optional<SysTime> start_time;  // the earliest first Running
  std::optional<SysTime> end_time;    // the latest end, once every task run has ended
  SysTime updated{};                  // the latest applied update
};

// A page of a flow run's tasks in task-name order: the task run of each unmapped task
// (map_index -1) and a summary of each mapped task. A task with both (a mapped task
// that also reported map_index -1) appears in both.
struct TaskPage {
  std::vector<TaskRun> task_runs;
  std::vector<MappedTaskSummary> mapped;
  std::string next_after;  // the page's last task when more tasks follow; empty otherwise
};

// ---------------------------------------------------------------------------------
// The interface

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite" or "postgresql".
  virtual std::string_view backend() const = 0;
  // The schema version after open (the highest applied migration).
  virtual Result<int> schema_version() = 0;

  // ---- projects
  // Creates a project. A name in use: Conflict, or with skip_if_exists the existing
  // project is returned.
  virtual Result<Project> create_project(const std::string& name, const std::string& description,
                                         bool skip_if_exists = false) = 0;
  virtual Result<std::vector<Project>> list_projects() = 0;
  virtual Result<Project> get_project(const std::string& id) = 0;
  virtual Result<Project> find_project(const std::string& name) = 0;

  // ---- flows (versions)
  // Registers version N+1 of (project, name) and archives the older versions, in one
  // transaction. With a known idempotency_key returns that earlier version unchanged.
  virtual Result<Flow> register_flow(const NewFlowVersion& spec) = 0;
  virtual Result<Flow> get_flow(const std::string& id) = 0;
  // Flows of one project (nullopt: all projects), ordered by (project, name, version
  // desc). latest_only: only the current (non-archived) version of each name. `page`
  // narrows it to one name and to the flows after a given one, at most `limit`.
  virtual Result<std::vector<Flow>> list_flows(const std::optional<std::string>& project_id,
                                               bool latest_only = true, const FlowListPage& page = {}) = 0;
  // The latest version of `name` in the project named `project`.
  virtual Result<Flow> find_latest_flow(const std::string& project, const std::string& name) = 0;
  // Pauses (false) or resumes (true) a flow's schedule. InvalidArgument without one.
  virtual Status set_schedule_active(const std::string& flow_id, bool active) = 0;
  // Latest versions that have a schedule that is active.
  virtual Result<std::vector<Flow>> list_scheduled_flows() = 0;

  // ---- flow runs
  // Creates a run pinned to the flow version (first history entry included).
  // Returns the run and whether it was created (false: an idempotency-key repeat).
  virtual Result<std::pair<FlowRun, bool>> create_flow_run(const NewFlowRun& spec) = 0;
  virtual Result<FlowRun> get_flow_run(const std::string& id) = 0;
  // Keyset pagination, newest first; fast at any depth (indexed on flow, state, created).
  virtual Result<FlowRunPage> list_flow_runs(const FlowRunQuery& query) = 0;
  // The latest scheduled_start_time among auto_scheduled runs of the flow version.
  virtual Result<std::optional<SysTime>> latest_auto_scheduled_start(const std::string& flow_id) = 0;

  // Validates with check_flow_run_transition and applies atomically (compare-and-set on
  // the version): Conflict naming both states when illegal, Conflict "stale version"
  // when expected_version does not match. Side effects: version+1, history entry;
  // Submitted: submitted_at=now; Running: run_count+1 (a new attempt, with its own
  // FlowRunAttempt), start_time=now, end_time cleared, heartbeat_at=now; final:
  // end_time=now; Scheduled/Pending/Retrying: agent, submitted_at, start_time and
  // end_time cleared. While an attempt goes on, every change is its state and message;
  // a final state, or Scheduled/Pending/Retrying, ends it (its end_time=now).
  // Cascade: when a run goes to a final state, to Cancelling, or back to Scheduled,
  // Pending or Retrying, its child runs that are not final are ended in the same
  // transaction: Scheduled/Pending/Retrying ones go to Cancelled, Submitted/Running
  // ones to Cancelling (their agents stop them), each with a message naming the parent.
  virtual Result<FlowRun> set_flow_run_state(const SetFlowRunState& change) = 0;

  // ---- child runs (one per chunk of a distributed mapped task)
  // Creates, in one transaction, a child run of the parent for each chunk not created
  // yet for (parent, the parent's current run_count, task, chunk): the parent's flow
  // version, parameters and labels, Scheduled and due now, parent_attempt = the
  // parent's run_count, the given run config or the flow version's. A chunk already
  // created with the same range is returned as it is (created = false), in request
  // order. NotFound for an unknown parent; Conflict unless the parent is Running, when
  // the parent is a child run itself, or when a chunk number was created with another
  // range; InvalidArgument for malformed chunks.
  virtual Result<std::vector<std::pair<FlowRun, bool>>> create_child_runs(const NewChildRuns& spec) = 0;
  // The parent's child runs, ordered by (parent_attempt, task, chunk), at most
  // `query.limit`. NotFound for an unknown parent.
  virtual Result<std::vector<ChildRunEntry>> list_child_runs(const ChildRunQuery& query) = 0;
  // The parent's child runs per state (no zero counts, in state order), whatever their
  // number. NotFound for an unknown parent.
  virtual Result<std::vector<StateCount>> count_child_runs(const ChildRunQuery& query) = 0;
  // The run's history, oldest first: the changes with id > after_id, at most `limit`
  // of them (0: all). NotFound if the run does not exist.
  virtual Result<std::vector<StateChange>> get_flow_run_history(const std::string& run_id, int64_t after_id = 0,
                                                                int limit = 0) = 0;
  // The run's attempts, attempt 1 first (empty before it first ran). NotFound if the
  // run does not exist. Runs that ran before attempts were stored have only their
  // latest attempt.
  virtual Result<std::vector<FlowRunAttempt>> list_flow_run_attempts(const std::string& run_id) = 0;
  // Records a heartbeat; returns the run (so the caller sees e.g. Cancelling).
  virtual Result<FlowRun> heartbeat_flow_run(const std::string& run_id, SysTime now) = 0;

  // Records what runs a run (Infrastructure), replacing an earlier report: NotFound for
  // an unknown run, Conflict unless the run is on agent `agent_id` (FlowRun::agent_id).
  // Returns the run.
  virtual Result<FlowRun> set_flow_run_infrastructure(const std::string& run_id, const std::string& agent_id,
                                                      const std::string& kind, const std::string& infra_id,
                                                      SysTime now) = 0;

  // Atomically takes up to `max` due runs (Scheduled, Pending or Retrying with
  // scheduled_start_time <= now) whose labels the agent covers (docs/CONCEPTS.md) and of
  // one of its run-config types, oldest due
  // first; moves them to Submitted with agent_id and submitted_at, appends history.
  // Conflict when the agent is registered and stopped (deregister_agent).
  // Exactly-once across connections and processes. Fast with a large backlog of runs
  // no agent covers (runs are indexed by their label set).
  virtual Result<std::vector<FlowRun>> claim_runs(const ClaimRequest& request) = 0;

  // Liveness (docs/CONCEPTS.md): Running/Cancelling runs whose heartbeat (or start) is older than
  // `cutoff`; Submitted runs submitted before `cutoff`. At most `limit` each, oldest first.
  // With `starting_agents_alive_since`, a Submitted run whose agent has reported its
  // infrastructure (set_flow_run_infrastructure), is not stopped and heartbeat at or after
  // that time is left out: that agent is still starting it (an ECS task can take minutes
  // to reach RUNNING) and its own start timeout decides.
  virtual Result<std::vector<FlowRun>> find_stale_running_runs(SysTime cutoff, int limit = 1000) = 0;
  virtual Result<std::vector<FlowRun>> find_stale_submitted_runs(
      SysTime cutoff, int limit = 1000, std::optional<SysTime> starting_agents_alive_since = std::nullopt) = 0;

  // ---- task runs
  // Upserts task runs keyed by (flow_run_id, task, map_index), all in ONE transaction
  // (all or nothing), applied in input order. An update of a later run attempt replaces
  // the task runs it names (a fresh start); one of an earlier run attempt, or older than
  // the task run's latest one (timestamp) within its run attempt, is ignored. Returns, in
  // input order, the id of each update's first task run. NotFound if a flow run does not
  // exist; InvalidArgument for a run_attempt outside 1..the run's current attempt.
  virtual Result<std::vector<std::string>> upsert_task_runs(const std::vector<TaskRunUpdate>& updates) = 0;
  // One TaskRun per task run, ordered by (task, map_index). Unbounded (a mapped task
  // may have a million task runs): for tests and tools; the API reads with list_tasks
  // and list_task_run_elements.
  virtual Result<std::vector<TaskRun>> list_task_runs(const std::string& flow_run_id) = 0;
  // The tasks whose name sorts after `after_task` ("": from the first), at most `limit`
  // (1..1000) of them; see TaskPage. NotFound if the flow run does not exist.
  virtual Result<TaskPage> list_tasks(const std::string& flow_run_id, const std::string& after_task,
                                      int limit) = 0;
  // The task runs of one task with map_index >= from_index (-1 includes the unmapped
  // task run), in map-index order, at most `limit` (1..1000); with `state`, only those
  // in that state. NotFound if the flow run does not exist.
  virtual Result<std::vector<TaskRun>> list_task_run_elements(const std::string& flow_run_id, const std::string& task,
                                                              int64_t from_index, int limit,
                                                              std::optional<State> state = std::nullopt) = 0;
  // The task runs' history (every Retrying update upsert_task_runs was given, once per
  // (task, first map index, run attempt, attempt, state)), with id > after, in id
  // order, at most `limit` (1..10000). NotFound if the flow run does not exist.
  virtual Result<std::vector<TaskRunHistoryEntry>> list_task_run_history(const std::string& flow_run_id,
                                                                         int64_t after, int limit = 1000) = 0;

  // ---- logs
  // Appends in one transaction; returns the new ids (increasing, in input order).
  // InvalidArgument for a run_attempt outside 1..the run's current attempt. With
  // max_bytes_per_run > 0, a batch that would take a flow run's stored message bytes
  // (over all its lines so far, every attempt) past it is refused whole with TooLarge
  // naming the quota; nothing is written.
  virtual Result<std::vector<int64_t>> append_logs(const std::vector<LogEntry>& entries,
                                                   int64_t max_bytes_per_run = 0) = 0;
  // Logs of a run with id > after, in id order, at most `limit` (1..10000); with
  // `run_attempt`, only that attempt's.
  virtual Result<std::vector<LogRecord>> read_logs(const std::string& flow_run_id, int64_t after,
                                                   int limit = 1000,
                                                   std::optional<int> run_attempt = std::nullopt) = 0;

  // ---- agents
  // Creates the agent or updates the one of that name (type, labels; live again if it
  // was stopped). Conflict when the name is bound to another live token (NewAgent).
  virtual Result<Agent> register_agent(const NewAgent& agent) = 0;
  virtual Result<Agent> get_agent(const std::string& id) = 0;
  virtual Status heartbeat_agent(const std::string& id, SysTime now) = 0;
  // Marks the agent stopped (it is listed, never healthy, and claims nothing until it
  // registers again). Idempotent; NotFound if unknown.
  virtual Status deregister_agent(const std::string& id, SysTime now) = 0;
  // Records the run-config types the agent launches (Agent::run_config_types).
  virtual Status set_agent_types(const std::string& id, const std::vector<std::string>& types) = 0;
  virtual Result<std::vector<Agent>> list_agents() = 0;

  // ---- tokens
  // Conflict if the id or hash exists; InvalidArgument for an unknown scope or a "run"
  // token without flow_run_id.
  virtual Result<Token> create_token(const NewToken& token) = 0;
  // Metadata of the token with this hash, revoked or expired ones included (the caller
  // checks revoked_at/expires). NotFound when none.
  virtual Result<Token> find_token_by_hash(const std::string& hash) = 0;
  virtual Result<std::vector<Token>> list_tokens() = 0;
  // Sets revoked_at (the row stays for audit). NotFound if unknown.
  // Conflict when `id` is the last admin token that is neither revoked nor expired at
  // `now` (revoking it would lock every admin out).
  virtual Status revoke_token(const std::string& id, SysTime now) = 0;
  virtual Result<int64_t> count_tokens() = 0;

  // ---- retention
  // Where a walk over ended runs (in end-time, id order) has got to.
  struct PruneCursor {
    SysTime end{};
    std::string run_id;
  };
  struct PruneResult {
    std::optional<PruneCursor> next;  // the last run handled; nullopt when none was left
    int64_t lines = 0;                // log lines deleted
  };
  // Deletes the log lines of up to `max_runs` runs that ended after `after` (in end-time,
  // id order) and at or before `ended_before`, in one transaction. The runs, their
  // states and task runs stay.
  virtual Result<PruneResult> prune_logs(const PruneCursor& after, SysTime ended_before, int max_runs = 500) = 0;

  // ---- metrics
  virtual Result<std::vector<StateCount>> count_runs_by_state() = 0;
  // The web UI's dashboard (see Dashboard): runs created since `since` by state, the
  // waiting runs due before `late_before` (the first `late_limit` of them, earliest due
  // first, and how many there are), and the unfinished runs on each agent.
  virtual Result<Dashboard> dashboard(SysTime since, SysTime late_before, int late_limit) = 0;
  virtual Result<int64_t> count_agents() = 0;
};

struct StoreOptions {
  // Stamps `created` and other store-set times; not owned. Default: the system clock.
  Clock* clock = nullptr;
  // How long a SQLite write waits for a lock held by another connection.
  Millis busy_timeout{5000};
};

// Opens (and migrates) the store at `url`. InvalidArgument for an unknown scheme,
// Unavailable when the database cannot be opened or reached.
Result<std::unique_ptr<Store>> open_store(std::string_view url, const StoreOptions& options = {});

}  // namespace culvert::store
