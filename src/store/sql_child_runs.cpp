// SqlStore (sql_store_impl.hpp): child runs — one flow run per chunk of a distributed
// mapped task of a parent run: creation, the parent's listing, counts by state. The
// cascade from a parent to its children is part of set_flow_run_state
// (sql_flow_runs.cpp).
#include <set>

#include "core/crypto.hpp"
#include "store/sql_store_impl.hpp"

namespace culvert::store::detail {

namespace {

Status check_chunks(const NewChildRuns& spec) {
  if (spec.task.empty()) return invalid_argument("the task of child runs must not be empty");
  if (spec.chunks.empty() || spec.chunks.size() > kMaxChildChunks)
    return invalid_argument("child runs are created 1 to " + std::to_string(kMaxChildChunks) +
                            " chunks at a time, not " + std::to_string(spec.chunks.size()));
  std::set<int> seen;
  for (size_t i = 0; i < spec.chunks.size(); ++i) {
    const auto& c = spec.chunks[i];
    const std::string at = "chunks[" + std::to_string(i) + "]";
    if (c.chunk < 0) return invalid_argument(at + ".chunk must be >= 0, not " + std::to_string(c.chunk));
    if (c.start < 0 || c.start >= c.end || c.end > int64_t{kMaxMapIndex} + 1)
      return invalid_argument(at + ": the range [" + std::to_string(c.start) + ", " + std::to_string(c.end) +
                              ") must have 0 <= start < end <= " + std::to_string(int64_t{kMaxMapIndex} + 1));
    if (!seen.insert(c.chunk).second)
      return invalid_argument(at + ".chunk " + std::to_string(c.chunk) + " appears twice in the request");
  }
  return Status::ok();
}

// The WHERE clause and parameters of a children query.
std::string child_conditions(const ChildRunQuery& q, Params* params) {
  *params = {q.parent_run_id, int64_t{q.parent_attempt.value_or(0)}, q.task.value_or("")};
  return std::string("parent_run_id = ?") + (q.parent_attempt ? " AND parent_attempt = ?" : " AND ? = 0") +
         (q.task ? " AND map_task = ?" : " AND ? = ''");
}

}  // namespace

Result<std::vector<std::pair<FlowRun, bool>>> SqlStore::create_child_runs(const NewChildRuns& spec) {
  if (Status s = check_chunks(spec); !s) return s;
  return transact(
      TxMode::kWrite,
      [&]() -> Result<std::vector<std::pair<FlowRun, bool>>> {
        // The parent's row lock orders concurrent creations for one parent.
        auto parent = load_run(spec.parent_run_id, /*lock=*/true);
        if (!parent) return parent.status();
        if (parent->child)
          return conflict("flow run " + parent->id + " is a child run (of " + parent->child->parent_run_id +
                          "): a child run cannot have child runs");
        if (parent->state != State::kRunning)
          return conflict("flow run " + parent->id + " is " + state_name(parent->state) +
                          ", not Running: only a running flow run creates child runs");
        const int attempt = parent->run_count;
        const int64_t label_set = label_set_id(labels_json(parent->labels));
        const int64_t now = now_ms();
        const std::string type = spec.run_config_json ? spec.run_config_type : parent->run_config_type;
        std::vector<std::pair<FlowRun, bool>> out;
        out.reserve(spec.chunks.size());
        for (const auto& c : spec.chunks) {
          auto found = db_->query(
              "SELECT id, map_start, map_end FROM flow_runs WHERE parent_run_id = ? AND parent_attempt = ? AND "
              "map_task = ? AND map_chunk = ?",
              {parent->id, int64_t{attempt}, spec.task, int64_t{c.chunk}});
          if (!found.empty()) {
            if (found[0].i64(1) != c.start || found[0].i64(2) != c.end)
              return conflict("chunk " + std::to_string(c.chunk) + " of task '" + spec.task + "' of flow run " +
                              parent->id + " (attempt " + std::to_string(attempt) + ") was created for [" +
                              std::to_string(found[0].i64(1)) + ", " + std::to_string(found[0].i64(2)) +
                              "), not [" + std::to_string(c.start) + ", " + std::to_string(c.end) + ")");
            auto existing = load_run(found[0].str(0), false);
            if (!existing) return existing.status();
            out.emplace_back(std::move(existing).value(), false);
            continue;
          }
          FlowRun run = *parent;
          run.id = new_uuid();
          run.idempotency_key.reset();
          run.auto_scheduled = false;
          run.state = State::kScheduled;
          run.state_message = spec.state_message;
          run.version = 1;
          run.run_count = 0;
          run.agent_id.reset();
          run.created = run.state_changed_at = run.scheduled_start_time = from_unix_ms(now);
          run.submitted_at.reset();
          run.start_time.reset();
          run.end_time.reset();
          run.heartbeat_at.reset();
          run.infrastructure.reset();
          if (spec.run_config_json) run.run_config_json = *spec.run_config_json;
          run.run_config_type = type;
          run.child = ChildRun{parent->id, spec.task, c.chunk, c.start, c.end, attempt};
          db_->exec(
              "INSERT INTO flow_runs (id, flow_id, project_id, parameters_json, labels, label_set_id, "
              "idempotency_key, auto_scheduled, state, state_message, version, run_count, created, "
              "state_changed_at, scheduled_start_time, run_config_type, run_config_json, parent_run_id, map_task, "
              "map_chunk, map_start, map_end, parent_attempt) "
              "VALUES (?, ?, ?, ?, ?, ?, NULL, 0, 'Scheduled', ?, 1, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              {run.id, run.flow_id, run.project_id, run.parameters_json, labels_json(run.labels), label_set,
               run.state_message, now, now, now, type, opt_value(spec.run_config_json), parent->id, spec.task,
               int64_t{c.chunk}, c.start, c.end, int64_t{attempt}});
          append_history(run.id, std::nullopt, State::kScheduled, run.state_message, 1, false, std::nullopt, now);
          out.emplace_back(std::move(run), true);
        }
        return out;
      },
      /*retry_unique=*/true);
}

Result<std::vector<ChildRunEntry>> SqlStore::list_child_runs(const ChildRunQuery& q) {
  if (q.limit < 1 || q.limit > 10000) return invalid_argument("limit must be between 1 and 10000");
  return transact(TxMode::kRead, [&]() -> Result<std::vector<ChildRunEntry>> {
    Params params;
    std::string where = child_conditions(q, &params);
    params.emplace_back(int64_t{q.limit});
    auto rows = db_->query(
        "SELECT id, parent_run_id, map_task, map_chunk, map_start, map_end, parent_attempt, state, state_message, "
        "run_count, infra_kind, infra_id, infra_agent_id, infra_reported_at FROM flow_runs WHERE " +
            where + " ORDER BY parent_attempt, map_task, map_chunk LIMIT ?",
        params);
    if (rows.empty() && !run_exists(q.parent_run_id))
      return not_found("flow run '" + q.parent_run_id + "' does not exist");
    std::vector<ChildRunEntry> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      ChildRunEntry e;
      e.id = r.str(0);
      e.child = ChildRun{r.str(1), r.str(2), static_cast<int>(r.i64(3)), r.i64(4), r.i64(5),
                         static_cast<int>(r.i64(6))};
      e.state = row_state(r, 7);
      e.state_message = r.str(8);
      e.run_count = static_cast<int>(r.i64(9));
      if (!r.is_null(10)) e.infrastructure = Infrastructure{r.str(10), r.str(11), r.opt(12).value_or(""), r.time(13)};
      out.push_back(std::move(e));
    }
    return out;
  });
}

Result<std::vector<StateCount>> SqlStore::count_child_runs(const ChildRunQuery& q) {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<StateCount>> {
    Params params;
    std::string where = child_conditions(q, &params);
    auto rows = db_->query("SELECT state, COUNT(*) FROM flow_runs WHERE " + where + " GROUP BY state", params);
    if (rows.empty() && !run_exists(q.parent_run_id))
      return not_found("flow run '" + q.parent_run_id + "' does not exist");
    std::vector<StateCount> out;
    for (const auto& r : rows) out.push_back({row_state(r, 0), r.i64(1)});
    std::sort(out.begin(), out.end(), [](const StateCount& a, const StateCount& b) { return a.state < b.state; });
    return out;
  });
}

}  // namespace culvert::store::detail
