// SqlStore (sql_store_impl.hpp): task runs (ranges of alike task runs, see
// task_run_ranges.hpp).
#include "store/sql_store_impl.hpp"

#include <set>

namespace culvert::store::detail {

namespace {

// A task_runs row (a range of alike task runs, see task_run_ranges.hpp); column 10 is
// the task.
constexpr const char* kRangeColumns =
    "SELECT map_index, map_count, id, state, message, attempts, created, updated, start_time, end_time, task, "
    "next_start, run_attempt FROM task_runs ";

StoredRange to_range(const Row& r) {
  StoredRange s;
  s.lo = r.i64(0);
  s.count = r.i64(1);
  s.id = r.opt(2);
  s.f.state = row_state(r, 3);
  s.f.message = r.str(4);
  s.f.attempts = r.i64(5);
  s.f.created = r.i64(6);
  s.f.updated = r.i64(7);
  if (!r.is_null(8)) s.f.start = r.i64(8);
  if (!r.is_null(9)) s.f.end = r.i64(9);
  if (!r.is_null(11)) s.f.next_start = r.i64(11);
  s.f.run_attempt = r.i64(12);
  return s;
}

constexpr const char* kHistoryColumns =
    "SELECT id, flow_run_id, task, map_index, map_count, run_attempt, attempts, state, message, ts, next_start "
    "FROM task_run_history ";

TaskRunHistoryEntry to_history(const Row& r) {
  TaskRunHistoryEntry h;
  h.id = r.i64(0);
  h.flow_run_id = r.str(1);
  h.task = r.str(2);
  h.map_index = static_cast<int>(r.i64(3));
  h.map_count = static_cast<int>(r.i64(4));
  h.run_attempt = static_cast<int>(r.i64(5));
  h.attempts = static_cast<int>(r.i64(6));
  h.state = row_state(r, 7);
  h.message = r.str(8);
  h.timestamp = r.time(9);
  h.next_start_time = r.opt_time(10);
  return h;
}

}  // namespace

Result<std::vector<std::string>> SqlStore::upsert_task_runs(const std::vector<TaskRunUpdate>& updates) {
  for (const auto& u : updates) {
    if (u.flow_run_id.empty()) return invalid_argument("task-run update without flow_run_id");
    if (u.task.empty()) return invalid_argument("task-run update without a task name");
    if (u.map_index < -1) return invalid_argument("map_index must be -1 or more");
    if (u.map_count < 1) return invalid_argument("map_count must be 1 or more");
    if (u.map_count > 1 && u.map_index < 0) return invalid_argument("map_count above 1 needs a map_index");
    if (int64_t{u.map_index} + u.map_count - 1 > kMaxMapIndex)
      return invalid_argument("map indexes end at " + std::to_string(kMaxMapIndex));
    if (u.attempts && *u.attempts < 0) return invalid_argument("attempts must not be negative");
  }
  if (updates.empty()) return std::vector<std::string>{};
  return transact(TxMode::kWrite, [&]() -> Result<std::vector<std::string>> {
    // Concurrent batches of one run (PostgreSQL) merge their ranges one after the
    // other: a transaction-scoped advisory lock per run, taken in id order.
    std::set<std::string> runs;
    for (const auto& u : updates) runs.insert(u.flow_run_id);
    std::map<std::string_view, int64_t> run_counts;
    for (const auto& id : runs) {
      db_->xact_lock("task_runs:" + id);
      auto found = db_->query("SELECT run_count FROM flow_runs WHERE id = ?", {id});
      if (found.empty()) return not_found("flow run '" + id + "' does not exist");
      run_counts[id] = std::max<int64_t>(1, found[0].i64(0));
    }
    // An update names its run attempt, or is the run's current attempt's.
    for (const auto& u : updates)
      if (u.run_attempt && (*u.run_attempt < 1 || *u.run_attempt > run_counts[u.flow_run_id]))
        return invalid_argument("run_attempt " + std::to_string(*u.run_attempt) + ": flow run '" + u.flow_run_id +
                                "' is at attempt " + std::to_string(run_counts[u.flow_run_id]));
    auto run_attempt_of = [&](const TaskRunUpdate& u) -> int64_t {
      return u.run_attempt ? int64_t{*u.run_attempt} : run_counts[u.flow_run_id];
    };
    // The updates of each (run, task), in batch order.
    TaskGroups groups;
    for (size_t i = 0; i < updates.size(); ++i) groups[{updates[i].flow_run_id, updates[i].task}].push_back(i);
    std::map<Key, std::vector<StoredRange>> stored = stored_ranges(updates, groups);

    std::vector<std::string> ids(updates.size());
    // Unmapped task runs are rows of one that never split or merge: the batch's updates
    // of each are merged here, then with the stored row by the statement itself.
    std::vector<std::pair<const TaskRunUpdate*, StoredRange>> merges, writes;
    std::vector<std::vector<size_t>*> merge_members;
    for (auto& [key, members] : groups) {
      std::vector<RangeUpdate> batch;
      batch.reserve(members.size());
      bool mapped = false;
      for (size_t i : members) {
        const auto& u = updates[i];
        mapped = mapped || u.map_index >= 0;
        batch.push_back({u.map_index, int64_t{u.map_index} + u.map_count - 1, u.state, u.message, u.attempts,
                         to_unix_ms(u.timestamp),
                         u.start_time ? std::optional<int64_t>(to_unix_ms(*u.start_time)) : std::nullopt,
                         u.state == State::kRetrying && u.next_start_time
                             ? std::optional<int64_t>(to_unix_ms(*u.next_start_time))
                             : std::nullopt,
                         run_attempt_of(u)});
      }
      TaskRunIds id_of(key.first, key.second);
      if (!mapped) {
        RangeMerge m = merge_task_run_ranges(id_of, {}, batch);
        for (size_t i : members) ids[i] = m.ids[0];  // the derived id, unless one is stored
        merges.emplace_back(&updates[members[0]], std::move(m.write.at(0)));
        merge_members.push_back(&members);
        continue;
      }
      RangeMerge m = merge_task_run_ranges(id_of, stored[key], batch);
      for (size_t k = 0; k < members.size(); ++k) ids[members[k]] = std::move(m.ids[k]);
      for (int64_t lo : m.remove)
        db_->exec("DELETE FROM task_runs WHERE flow_run_id = ? AND task = ? AND map_index = ?",
                  {std::string(key.first), std::string(key.second), lo});
      for (auto& w : m.write) writes.emplace_back(&updates[members[0]], std::move(w));
    }
    write_ranges(writes, false);
    // Unmapped task runs whose row keeps a stored id (written before ids were derived)
    // answer with it.
    std::map<Key, std::optional<std::string>> stored_ids;
    for (const auto& r : write_ranges(merges, true)) stored_ids[{r.first->flow_run_id, r.first->task}] = r.second;
    for (size_t k = 0; k < merges.size(); ++k) {
      const TaskRunUpdate& u = *merges[k].first;
      auto it = stored_ids.find({u.flow_run_id, u.task});
      std::optional<std::string> id;
      if (it != stored_ids.end()) {
        id = it->second;
      } else {  // the update was older than the stored row: not applied
        auto rows = db_->query("SELECT id FROM task_runs WHERE flow_run_id = ? AND task = ? AND map_index = -1",
                               {u.flow_run_id, u.task});
        if (!rows.empty()) id = rows[0].opt(0);
      }
      if (id)
        for (size_t i : *merge_members[k]) ids[i] = *id;
    }
    // Every Retrying update goes into the history, applied to its row or not (a
    // Retrying state that arrives after the next attempt's states is still history).
    for (const auto& u : updates) {
      if (u.state != State::kRetrying) continue;
      const int64_t run_attempt = run_attempt_of(u);
      db_->exec("INSERT INTO task_run_history (flow_run_id, task, map_index, map_count, run_attempt, attempts, "
                "state, message, ts, next_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (flow_run_id, task, map_index, run_attempt, attempts, state) DO NOTHING",
                {u.flow_run_id, u.task, int64_t{u.map_index}, int64_t{u.map_count}, run_attempt,
                 int64_t{u.attempts.value_or(0)}, std::string(state_name(u.state)), u.message,
                 time_value(u.timestamp), opt_time_value(u.next_start_time)});
    }
    return ids;
  });
}

// Writes rows in multi-row statements of fixed sizes (few prepared statements). Each
// row overwrites the one that begins at the same map index, or, with `merge`, is
// merged with it as a later update (older than the stored row: ignored); then returns
// the rows written with their stored id.
std::vector<std::pair<const TaskRunUpdate*, std::optional<std::string>>> SqlStore::write_ranges(
              const std::vector<std::pair<const TaskRunUpdate*, StoredRange>>& rows, bool merge) {
  std::vector<std::pair<const TaskRunUpdate*, std::optional<std::string>>> written;
  size_t pos = 0;
  while (pos < rows.size()) {
    size_t left = rows.size() - pos;
    size_t n = left >= 256 ? 256 : left >= 64 ? 64 : left >= 16 ? 16 : left >= 4 ? 4 : 1;
    Params params;
    params.reserve(n * 14);
    std::map<Key, const TaskRunUpdate*> by_key;
    for (size_t k = pos; k < pos + n; ++k) {
      const TaskRunUpdate& u = *rows[k].first;
      const StoredRange& r = rows[k].second;
      by_key[{u.flow_run_id, u.task}] = &u;
      params.insert(params.end(),
                    {u.flow_run_id, u.task, r.lo, r.count, opt_value(r.id), std::string(state_name(r.f.state)),
                     r.f.message, r.f.attempts, r.f.created, r.f.updated,
                     r.f.start ? Value(*r.f.start) : null_value(), r.f.end ? Value(*r.f.end) : null_value(),
                     r.f.next_start ? Value(*r.f.next_start) : null_value(), r.f.run_attempt});
    }
    if (merge) {
      // Unmapped rows: one per (run, task), which names it.
      for (const auto& r : db_->query(upsert_sql(n, true), params)) {
        auto it = by_key.find({r.str(0), r.str(1)});
        if (it != by_key.end()) written.emplace_back(it->second, r.opt(2));
      }
    } else {
      db_->exec(upsert_sql(n, false), params);
    }
    pos += n;
  }
  return written;
}

// The stored rows that overlap the updates of each mapped group, sorted by map_index.
std::map<SqlStore::Key, std::vector<StoredRange>> SqlStore::stored_ranges(const std::vector<TaskRunUpdate>& updates,
                                                               const TaskGroups& groups) {
  std::map<Key, std::vector<StoredRange>> out;
  for (const auto& [key, members] : groups) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i : members) {
      lo = std::min<int64_t>(lo, updates[i].map_index);
      hi = std::max<int64_t>(hi, int64_t{updates[i].map_index} + updates[i].map_count - 1);
    }
    if (hi == -1) continue;  // unmapped: merged by the upsert statement itself
    // The row holding `lo`, then the rows that begin in (lo, hi].
    auto& rows = out[key];
    const std::string run(key.first), task(key.second);
    for (const auto& r : db_->query(std::string(kRangeColumns) +
                                        "WHERE flow_run_id = ? AND task = ? AND map_index <= ? "
                                        "ORDER BY map_index DESC LIMIT 1",
                                    {run, task, lo}))
      if (StoredRange s = to_range(r); s.hi() >= lo) rows.push_back(std::move(s));
    if (hi == lo) continue;
    for (const auto& r : db_->query(std::string(kRangeColumns) +
                                        "WHERE flow_run_id = ? AND task = ? AND map_index > ? AND map_index <= ? "
                                        "ORDER BY map_index",
                                    {run, task, lo, hi}))
      rows.push_back(to_range(r));
  }
  return out;
}

// The task run `i` of stored range `s` of `task`.
TaskRun SqlStore::expand(const TaskRunIds& ids, const std::string& flow_run_id, const std::string& task,
                         const StoredRange& s, int64_t i) {
  TaskRun t;
  t.id = ids.id(s, i);
  t.flow_run_id = flow_run_id;
  t.task = task;
  t.map_index = static_cast<int>(i);
  t.state = s.f.state;
  t.message = s.f.message;
  t.attempts = static_cast<int>(std::max<int64_t>(0, s.f.attempts));
  t.created = from_unix_ms(s.f.created);
  t.updated = from_unix_ms(s.f.updated);
  if (s.f.start) t.start_time = from_unix_ms(*s.f.start);
  if (s.f.end) t.end_time = from_unix_ms(*s.f.end);
  if (s.f.next_start) t.next_start_time = from_unix_ms(*s.f.next_start);
  t.run_attempt = static_cast<int>(s.f.run_attempt);
  return t;
}

Result<std::vector<TaskRun>> SqlStore::list_task_runs(const std::string& flow_run_id) {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<TaskRun>> {
    auto rows = db_->query(std::string(kRangeColumns) + "WHERE flow_run_id = ? ORDER BY task, map_index",
                           {flow_run_id});
    if (rows.empty() && !run_exists(flow_run_id))
      return not_found("flow run '" + flow_run_id + "' does not exist");
    std::vector<TaskRun> out;
    std::optional<TaskRunIds> ids;
    std::string ids_task;
    for (const auto& r : rows) {
      StoredRange s = to_range(r);
      const std::string& task = r.str(10);
      if (!ids || ids_task != task) {
        ids.emplace(flow_run_id, task);
        ids_task = task;
      }
      for (int64_t i = s.lo; i <= s.hi(); ++i) out.push_back(expand(*ids, flow_run_id, task, s, i));
    }
    return out;
  });
}

Result<TaskPage> SqlStore::list_tasks(const std::string& flow_run_id, const std::string& after_task, int limit) {
  if (limit < 1 || limit > 1000) return invalid_argument("limit must be between 1 and 1000");
  return transact(TxMode::kRead, [&]() -> Result<TaskPage> {
    // Per task and state: a task has at most one group per state, so (limit + 1) times
    // the number of states covers the page's tasks and tells whether another follows.
    constexpr int64_t kStates = static_cast<int64_t>(State::kCancelled) + 1;
    auto groups = db_->query(
        "SELECT task, state, MIN(map_index), SUM(map_count), MIN(start_time), MAX(end_time), "
        "SUM(CASE WHEN end_time IS NULL THEN map_count ELSE 0 END), MAX(updated), MAX(map_index + map_count - 1) "
        "FROM task_runs WHERE flow_run_id = ? AND task > ? AND map_index >= 0 GROUP BY task, state "
        "UNION ALL SELECT task, state, -1, 1, NULL, NULL, 0, 0, -1 FROM task_runs "
        "WHERE flow_run_id = ? AND task > ? AND map_index = -1 ORDER BY 1 LIMIT ?",
        {flow_run_id, after_task, flow_run_id, after_task, (int64_t{limit} + 1) * (kStates + 1)});
    if (groups.empty() && !run_exists(flow_run_id)) return not_found("flow run '" + flow_run_id + "' does not exist");
    TaskPage page;
    std::string last;  // the page's last task
    int tasks = 0;
    bool unmapped_in_page = false;
    std::map<std::string, MappedTaskSummary> mapped;
    struct Open {
      int64_t unended = 0;
    };
    std::map<std::string, Open> open;
    for (const auto& g : groups) {
      const std::string& task = g.str(0);
      if (task != last) {
        if (tasks == limit) {
          page.next_after = last;
          break;
        }
        ++tasks;
        last = task;
      }
      if (g.i64(2) < 0) {
        unmapped_in_page = true;
        continue;
      }
      auto& m = mapped[task];
      m.task = task;
      const State st = row_state(g, 1);
      const int64_t n = g.i64(3);
      m.count += n;
      m.states.push_back({st, n});
      if (!g.is_null(4)) {
        SysTime t = from_unix_ms(g.i64(4));
        if (!m.start_time || t < *m.start_time) m.start_time = t;
      }
      if (!g.is_null(5)) {
        SysTime t = from_unix_ms(g.i64(5));
        if (!m.end_time || t > *m.end_time) m.end_time = t;
      }
      open[task].unended += g.i64(6);
      m.updated = std::max(m.updated, from_unix_ms(g.i64(7)));
      m.max_map_index = std::max(m.max_map_index, g.i64(8));
    }
    for (auto& [task, m] : mapped) {
      if (open[task].unended > 0) m.end_time.reset();
      std::sort(m.states.begin(), m.states.end(),
                [](const StateCount& a, const StateCount& b) { return a.state < b.state; });
      page.mapped.push_back(std::move(m));
    }
    if (unmapped_in_page && !last.empty()) {
      for (const auto& r : db_->query(std::string(kRangeColumns) +
                                          "WHERE flow_run_id = ? AND task > ? AND task <= ? AND map_index = -1 "
                                          "ORDER BY task",
                                      {flow_run_id, after_task, last})) {
        const std::string& task = r.str(10);
        page.task_runs.push_back(expand(TaskRunIds(flow_run_id, task), flow_run_id, task, to_range(r), -1));
      }
    }
    return page;
  });
}

Result<std::vector<TaskRun>> SqlStore::list_task_run_elements(const std::string& flow_run_id, const std::string& task,
                                                              int64_t from_index, int limit,
                                                              std::optional<State> state) {
  if (limit < 1 || limit > 1000) return invalid_argument("limit must be between 1 and 1000");
  if (from_index < -1) return invalid_argument("map indexes start at -1");
  return transact(TxMode::kRead, [&]() -> Result<std::vector<TaskRun>> {
    std::string filter = state ? " AND state = ?" : "";
    Params head{flow_run_id, task, from_index}, tail{flow_run_id, task, from_index};
    if (state) {
      head.emplace_back(std::string(state_name(*state)));
      tail.emplace_back(std::string(state_name(*state)));
    }
    tail.emplace_back(int64_t{limit});
    // The row holding from_index (it may begin before it), then the rows after it; each
    // row holds at least one task run, so `limit` rows are enough.
    std::vector<StoredRange> rows;
    for (const auto& r : db_->query(std::string(kRangeColumns) + "WHERE flow_run_id = ? AND task = ? AND map_index < ?" +
                                        filter + " ORDER BY map_index DESC LIMIT 1",
                                    head))
      if (StoredRange s = to_range(r); s.hi() >= from_index) rows.push_back(std::move(s));
    for (const auto& r : db_->query(std::string(kRangeColumns) + "WHERE flow_run_id = ? AND task = ? AND map_index >= ?" +
                                        filter + " ORDER BY map_index LIMIT ?",
                                    tail))
      rows.push_back(to_range(r));
    if (rows.empty() && !run_exists(flow_run_id)) return not_found("flow run '" + flow_run_id + "' does not exist");
    std::vector<TaskRun> out;
    TaskRunIds ids(flow_run_id, task);
    for (const auto& s : rows)
      for (int64_t i = std::max(s.lo, from_index); i <= s.hi() && out.size() < static_cast<size_t>(limit); ++i)
        out.push_back(expand(ids, flow_run_id, task, s, i));
    return out;
  });
}

Result<std::vector<TaskRunHistoryEntry>> SqlStore::list_task_run_history(const std::string& flow_run_id,
                                                                          int64_t after, int limit) {
  if (limit < 1 || limit > 10000) return invalid_argument("limit must be between 1 and 10000");
  return transact(TxMode::kRead, [&]() -> Result<std::vector<TaskRunHistoryEntry>> {
    auto rows = db_->query(std::string(kHistoryColumns) + "WHERE flow_run_id = ? AND id > ? ORDER BY id LIMIT ?",
                           {flow_run_id, after, int64_t{limit}});
    if (rows.empty() && !run_exists(flow_run_id)) return not_found("flow run '" + flow_run_id + "' does not exist");
    std::vector<TaskRunHistoryEntry> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back(to_history(r));
    return out;
  });
}

// INSERT of n task-run ranges; a row that begins at the same map index is overwritten,
// or with `merge` updated as by a later update (see write_ranges).
std::string SqlStore::upsert_sql(size_t n, bool merge) {
  std::string sql =
      "INSERT INTO task_runs (flow_run_id, task, map_index, map_count, id, state, message, attempts, created, "
      "updated, start_time, end_time, next_start, run_attempt) VALUES ";
  for (size_t i = 0; i < n; ++i) {
    if (i) sql += ", ";
    sql += i == 0 ? "(?, ?, CAST(? AS INTEGER), CAST(? AS INTEGER), ?, ?, ?, CAST(? AS INTEGER), "
                    "CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), "
                    "CAST(? AS INTEGER))"
                  : "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  }
  if (merge)
    return sql +
           // A later run attempt starts the task run afresh; an earlier one's update, or
           // an older one of the same attempt, changes nothing.
           " ON CONFLICT (flow_run_id, task, map_index) DO UPDATE SET state = excluded.state, "
           "message = excluded.message, "
           "attempts = CASE WHEN excluded.attempts < 0 AND excluded.run_attempt = task_runs.run_attempt "
           "THEN task_runs.attempts ELSE excluded.attempts END, "
           "created = CASE WHEN excluded.run_attempt > task_runs.run_attempt THEN excluded.created "
           "ELSE task_runs.created END, "
           "updated = excluded.updated, "
           "start_time = CASE WHEN excluded.run_attempt > task_runs.run_attempt THEN excluded.start_time "
           "ELSE COALESCE(task_runs.start_time, excluded.start_time) END, "
           "end_time = excluded.end_time, next_start = excluded.next_start, run_attempt = excluded.run_attempt "
           "WHERE excluded.run_attempt > task_runs.run_attempt OR "
           "(excluded.run_attempt = task_runs.run_attempt AND excluded.updated >= task_runs.updated) "
           "RETURNING flow_run_id, task, id";
  return sql +
         " ON CONFLICT (flow_run_id, task, map_index) DO UPDATE SET map_count = excluded.map_count, "
         "id = excluded.id, state = excluded.state, message = excluded.message, attempts = excluded.attempts, "
         "created = excluded.created, updated = excluded.updated, start_time = excluded.start_time, "
         "end_time = excluded.end_time, next_start = excluded.next_start, run_attempt = excluded.run_attempt";
}

}  // namespace culvert::store::detail
