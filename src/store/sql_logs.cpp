// SqlStore (sql_store_impl.hpp): log lines.
#include "store/sql_store_impl.hpp"

#include <map>

namespace culvert::store::detail {

namespace {

constexpr const char* kLogColumns =
    "SELECT id, flow_run_id, task_run_id, task, map_index, level, message, ts, run_attempt FROM logs ";

LogRecord to_log(const Row& r) {
  LogRecord l;
  l.id = r.i64(0);
  l.flow_run_id = r.str(1);
  l.task_run_id = r.opt(2);
  l.task = r.opt(3);
  l.map_index = static_cast<int>(r.i64(4));
  l.level = r.str(5);
  l.message = r.str(6);
  l.timestamp = r.time(7);
  l.run_attempt = static_cast<int>(r.i64(8));
  return l;
}

}  // namespace

Result<std::vector<int64_t>> SqlStore::append_logs(const std::vector<LogEntry>& entries, int64_t max_bytes_per_run) {
  for (const auto& e : entries)
    if (e.flow_run_id.empty()) return invalid_argument("log entry without flow_run_id");
  if (entries.empty()) return std::vector<int64_t>{};
  return transact(TxMode::kWrite, [&]() -> Result<std::vector<int64_t>> {
    std::map<std::string, int64_t> runs;  // run -> the batch's message bytes
    for (const auto& e : entries) runs[e.flow_run_id] += static_cast<int64_t>(e.message.size());
    // The run's current attempt (at least 1): the default, and the highest a line may name.
    std::map<std::string, int64_t> current;
    for (const auto& [id, bytes] : runs) {  // sorted order: no deadlock between batches
      db_->xact_lock("logs:" + id);
      auto stored = db_->query("SELECT log_bytes, run_count FROM flow_runs WHERE id = ?", {id});
      if (stored.empty()) return not_found("flow run '" + id + "' does not exist");
      current[id] = std::max<int64_t>(1, stored[0].i64(1));
      const int64_t before = stored[0].i64(0);
      if (max_bytes_per_run > 0 && before + bytes > max_bytes_per_run)
        return Status(StatusCode::kTooLarge,
                      "flow run " + id + " has reached its log quota of " + std::to_string(max_bytes_per_run) +
                          " bytes (the server's --max-log-bytes-per-run): it has " + std::to_string(before) +
                          " bytes of log messages, and this batch of " + std::to_string(bytes) +
                          " bytes is refused");
      db_->exec("UPDATE flow_runs SET log_bytes = log_bytes + ? WHERE id = ?", {bytes, id});
    }
    for (const auto& e : entries)
      if (e.run_attempt && (*e.run_attempt < 1 || *e.run_attempt > current[e.flow_run_id]))
        return invalid_argument("run_attempt " + std::to_string(*e.run_attempt) + ": flow run '" + e.flow_run_id +
                                "' is at attempt " + std::to_string(current[e.flow_run_id]));
    std::vector<int64_t> ids;
    ids.reserve(entries.size());
    for (const auto& e : entries) {
      auto rows = db_->query(
          "INSERT INTO logs (flow_run_id, task_run_id, task, map_index, level, message, ts, run_attempt) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
          {e.flow_run_id, opt_value(e.task_run_id), opt_value(e.task), int64_t{e.map_index}, e.level, e.message,
           time_value(e.timestamp), int64_t{e.run_attempt.value_or(static_cast<int>(current[e.flow_run_id]))}});
      ids.push_back(rows.at(0).i64(0));
    }
    return ids;
  });
}

Result<std::vector<LogRecord>> SqlStore::read_logs(const std::string& flow_run_id, int64_t after, int limit,
                                                   std::optional<int> run_attempt) {
  if (limit < 1 || limit > 10000) return invalid_argument("limit must be between 1 and 10000");
  return transact(TxMode::kRead, [&]() -> Result<std::vector<LogRecord>> {
    auto rows = run_attempt
                    ? db_->query(std::string(kLogColumns) +
                                     "WHERE flow_run_id = ? AND id > ? AND run_attempt = ? ORDER BY id LIMIT ?",
                                 {flow_run_id, after, int64_t{*run_attempt}, int64_t{limit}})
                    : db_->query(std::string(kLogColumns) + "WHERE flow_run_id = ? AND id > ? ORDER BY id LIMIT ?",
                                 {flow_run_id, after, int64_t{limit}});
    if (rows.empty() && !run_exists(flow_run_id))
      return not_found("flow run '" + flow_run_id + "' does not exist");
    std::vector<LogRecord> out;
    for (const auto& r : rows) out.push_back(to_log(r));
    return out;
  });
}

}  // namespace culvert::store::detail
