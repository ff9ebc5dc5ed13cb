// SqlStore (sql_store_impl.hpp): maintenance — retention (log pruning) and the counts
// behind metrics.
#include "store/sql_store_impl.hpp"

namespace culvert::store::detail {

Result<SqlStore::PruneResult> SqlStore::prune_logs(const PruneCursor& after, SysTime ended_before, int max_runs) {
  if (max_runs < 1) return invalid_argument("max_runs must be at least 1");
  return transact(TxMode::kWrite, [&]() -> Result<PruneResult> {
    PruneResult out;
    auto runs = db_->query(
        "SELECT id, end_time FROM flow_runs WHERE end_time IS NOT NULL AND (end_time, id) > (?, ?) "
        "AND end_time <= ? ORDER BY end_time, id LIMIT ?",
        {to_unix_ms(after.end), after.run_id, to_unix_ms(ended_before), int64_t{max_runs}});
    for (const auto& r : runs) out.lines += db_->exec("DELETE FROM logs WHERE flow_run_id = ?", {r.str(0)});
    if (!runs.empty()) out.next = PruneCursor{from_unix_ms(runs.back().i64(1)), runs.back().str(0)};
    return out;
  });
}

Result<std::vector<StateCount>> SqlStore::count_runs_by_state() {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<StateCount>> {
    std::vector<StateCount> out;
    for (const auto& r : db_->query("SELECT state, SUM(count) FROM run_state_counts GROUP BY state "
                                    "HAVING SUM(count) <> 0 ORDER BY state"))
      out.push_back({row_state(r, 0), r.i64(1)});
    return out;
  });
}

Result<int64_t> SqlStore::count_agents() {
  return transact(TxMode::kRead,
                  [&]() -> Result<int64_t> { return db_->query("SELECT COUNT(*) FROM agents").at(0).i64(0); });
}

}  // namespace culvert::store::detail
