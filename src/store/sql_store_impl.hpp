// Internal to the store: the SqlStore class, which implements Store once over
// detail::Db for both SQLite and PostgreSQL (backend differences stay inside the Db
// implementations and a few dialect switches, e.g. FOR UPDATE SKIP LOCKED).
//
// Its methods are defined per entity: sql_store.cpp (transactions, shared helpers),
// sql_projects.cpp, sql_flows.cpp, sql_flow_runs.cpp (runs, state changes, claims),
// sql_child_runs.cpp (child runs of distributed mapped tasks),
// sql_task_runs.cpp, sql_logs.cpp, sql_agents.cpp, sql_tokens.cpp and
// sql_maintenance.cpp (retention, metrics counts).
//
// Every public method runs in one transaction through transact(), which serializes
// calls on this connection, retries transactions that lost a race (busy database,
// serialization failure, deadlock, or a unique-key race where a retry finds the
// winner's row), and converts database errors into Status values.
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/timefmt.hpp"
#include "store/sql.hpp"
#include "store/store.hpp"
#include "store/task_run_ranges.hpp"

namespace culvert::store::detail {

// The success value of a transaction that returns nothing.
struct Unit {};

// A label list as stored (a JSON array of normalized labels), and back.
std::string labels_json(const std::vector<std::string>& labels);
std::vector<std::string> parse_labels(const std::string& text);
// A state column; an unknown name is a DbError.
State row_state(const Row& row, size_t i);
Status db_error_status(const DbError& e);

class SqlStore final : public Store {
 public:
  SqlStore(std::unique_ptr<Db> db, Clock& clock) : db_(std::move(db)), clock_(clock) {}

  std::string_view backend() const override;
  Result<int> schema_version() override;

  // ---- projects
  Result<Project> create_project(const std::string& name, const std::string& description,
                                 bool skip_if_exists) override;
  Result<std::vector<Project>> list_projects() override;
  Result<Project> get_project(const std::string& id) override;
  Result<Project> find_project(const std::string& name) override;

  // ---- flows
  Result<Flow> register_flow(const NewFlowVersion& spec) override;
  Result<Flow> get_flow(const std::string& id) override;
  Result<std::vector<Flow>> list_flows(const std::optional<std::string>& project_id, bool latest_only,
                                       const FlowListPage& page) override;
  Result<Flow> find_latest_flow(const std::string& project, const std::string& name) override;
  Status set_schedule_active(const std::string& flow_id, bool active) override;
  Result<std::vector<Flow>> list_scheduled_flows() override;

  // ---- flow runs
  Result<std::pair<FlowRun, bool>> create_flow_run(const NewFlowRun& spec) override;
  Result<FlowRun> get_flow_run(const std::string& id) override;
  Result<FlowRunPage> list_flow_runs(const FlowRunQuery& q) override;
  Result<std::optional<SysTime>> latest_auto_scheduled_start(const std::string& flow_id) override;
  Result<FlowRun> set_flow_run_state(const SetFlowRunState& c) override;
  // Inside a transaction: applies a checked change to `run` (loaded locked), writes it,
  // its history and attempt; then, for a parent, the cascade to its children.
  Result<FlowRun> apply_state_change(FlowRun run, State to, const std::string& message, bool forced,
                                     std::optional<SysTime> scheduled_start_time, int64_t now);
  // Inside a transaction: ends the child runs of `parent` that are not final (the
  // cascade of set_flow_run_state).
  Status end_children(const FlowRun& parent, int64_t now);
  Result<std::vector<std::pair<FlowRun, bool>>> create_child_runs(const NewChildRuns& spec) override;
  Result<std::vector<ChildRunEntry>> list_child_runs(const ChildRunQuery& query) override;
  Result<std::vector<StateCount>> count_child_runs(const ChildRunQuery& query) override;
  Result<std::vector<StateChange>> get_flow_run_history(const std::string& run_id, int64_t after_id,
                                                        int limit) override;
  Result<std::vector<FlowRunAttempt>> list_flow_run_attempts(const std::string& run_id) override;
  // Inside set_flow_run_state's transaction, after the change: begins, updates or ends
  // the run's current attempt.
  void record_attempt(const FlowRun& run, int64_t now);
  Result<FlowRun> heartbeat_flow_run(const std::string& run_id, SysTime now) override;
  Result<FlowRun> set_flow_run_infrastructure(const std::string& run_id, const std::string& agent_id,
                                              const std::string& kind, const std::string& infra_id,
                                              SysTime now) override;
  Result<std::vector<FlowRun>> claim_runs(const ClaimRequest& req) override;
  Result<std::vector<FlowRun>> find_stale_running_runs(SysTime cutoff, int limit) override;
  Result<std::vector<FlowRun>> find_stale_submitted_runs(SysTime cutoff, int limit,
                                                         std::optional<SysTime> starting_agents_alive_since) override;

  // ---- task runs
  // A batch's updates by (flow run, task), each group's in batch order (indexes).
  using Key = std::pair<std::string_view, std::string_view>;
  using TaskGroups = std::map<Key, std::vector<size_t>>;
  Result<std::vector<std::string>> upsert_task_runs(const std::vector<TaskRunUpdate>& updates) override;
  // Writes rows in multi-row statements of fixed sizes (few prepared statements). Each
  // row overwrites the one that begins at the same map index, or, with `merge`, is
  // merged with it as a later update (older than the stored row: ignored); then returns
  // the rows written with their stored id.
  std::vector<std::pair<const TaskRunUpdate*, std::optional<std::string>>> write_ranges(
      const std::vector<std::pair<const TaskRunUpdate*, StoredRange>>& rows, bool merge);
  // The stored rows that overlap the updates of each mapped group, sorted by map_index.
  std::map<Key, std::vector<StoredRange>> stored_ranges(const std::vector<TaskRunUpdate>& updates,
                                                       const TaskGroups& groups);
  // The task run `i` of stored range `s` of `task`.
  static TaskRun expand(const TaskRunIds& ids, const std::string& flow_run_id, const std::string& task,
                        const StoredRange& s, int64_t i);
  Result<std::vector<TaskRun>> list_task_runs(const std::string& flow_run_id) override;
  Result<TaskPage> list_tasks(const std::string& flow_run_id, const std::string& after_task, int limit) override;
  Result<std::vector<TaskRun>> list_task_run_elements(const std::string& flow_run_id, const std::string& task,
                                                      int64_t from_index, int limit,
                                                      std::optional<State> state) override;
  Result<std::vector<TaskRunHistoryEntry>> list_task_run_history(const std::string& flow_run_id, int64_t after,
                                                                 int limit) override;

  // ---- logs
  Result<std::vector<int64_t>> append_logs(const std::vector<LogEntry>& entries, int64_t max_bytes_per_run) override;
  Result<std::vector<LogRecord>> read_logs(const std::string& flow_run_id, int64_t after, int limit,
                                           std::optional<int> run_attempt) override;

  // ---- agents
  Result<Agent> register_agent(const NewAgent& a) override;
  Result<Agent> get_agent(const std::string& id) override;
  Status heartbeat_agent(const std::string& id, SysTime now) override;
  Status deregister_agent(const std::string& id, SysTime now) override;
  Status set_agent_types(const std::string& id, const std::vector<std::string>& types) override;
  Result<std::vector<Agent>> list_agents() override;

  // ---- tokens
  Result<Token> create_token(const NewToken& t) override;
  Result<Token> find_token_by_hash(const std::string& hash) override;
  Result<std::vector<Token>> list_tokens() override;
  Status revoke_token(const std::string& id, SysTime now) override;
  Result<int64_t> count_tokens() override;

  // ---- maintenance: retention and metrics
  Result<PruneResult> prune_logs(const PruneCursor& after, SysTime ended_before, int max_runs) override;
  Result<std::vector<StateCount>> count_runs_by_state() override;
  Result<Dashboard> dashboard(SysTime since, SysTime late_before, int late_limit) override;
  Result<int64_t> count_agents() override;

 private:
  static constexpr int kMaxAttempts = 20;

  // Runs `fn` in a transaction (see the file comment). `fn` returns a Result; a non-OK
  // Result rolls back. retry_unique: a unique-key violation is a lost race whose retry
  // finds the winner's row (get-or-create paths).
  template <typename F>
  auto transact(TxMode mode, F&& fn, bool retry_unique = false) -> decltype(fn()) {
    using R = decltype(fn());
    std::lock_guard<std::mutex> lock(mu_);
    for (int attempt = 1;; ++attempt) {
      try {
        try {
          db_->begin(mode);
        } catch (const DbError& e) {
          // A connection that died while idle: reconnect once; nothing was sent yet.
          if (e.kind() != DbError::Kind::kUnavailable || attempt > 1) throw;
          db_->reconnect();
          db_->begin(mode);
        }
        count_deltas_.clear();
        R r = fn();
        if (!r.is_ok()) {
          db_->rollback();
          return r;
        }
        apply_count_deltas();
        db_->commit();
        return r;
      } catch (const DbError& e) {
        db_->rollback();
        bool retry = e.kind() == DbError::Kind::kRetry ||
                     (retry_unique && e.kind() == DbError::Kind::kUnique);
        if (retry && attempt < kMaxAttempts) {
          // Real time, not clock_: this waits out another connection's transaction.
          std::this_thread::sleep_for(std::chrono::milliseconds(std::min(attempt, 10)));
          continue;
        }
        return R(db_error_status(e));
      }
    }
  }

  // INSERT of n task-run ranges; a row that begins at the same map index is overwritten,
  // or with `merge` updated as by a later update (see write_ranges).
  static std::string upsert_sql(size_t n, bool merge);
  std::string for_update(const char* alias) const;
  int64_t now_ms() const { return to_unix_ms(clock_.now()); }
  SysTime now_ms_time() const { return from_unix_ms(now_ms()); }
  Result<Flow> load_flow(const std::string& id);
  Result<FlowRun> load_run(const std::string& id, bool lock);
  Result<Agent> load_agent(const std::string& id);
  bool run_exists(const std::string& id) { return !db_->query("SELECT 1 FROM flow_runs WHERE id = ?", {id}).empty(); }
  // The id of a label set (a JSON array of normalized labels), created when new.
  int64_t label_set_id(const std::string& labels);
  // Applies the state-count changes of this transaction, in (state, shard) order so
  // that concurrent transactions lock counter rows in one order (no deadlocks).
  void apply_count_deltas();
  // Every state change goes through here: the history row and the state counts.
  void append_history(const std::string& run_id, std::optional<State> from, State to, const std::string& message,
                      int64_t version, bool forced, const std::optional<std::string>& agent_id, int64_t ts);
  static Status validate_token(const NewToken& t);
  // Inside a transaction.
  Status insert_token(NewToken t);

  std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> count_deltas_;  // of the open transaction
  std::unique_ptr<Db> db_;
  Clock& clock_;
};

}  // namespace culvert::store::detail
