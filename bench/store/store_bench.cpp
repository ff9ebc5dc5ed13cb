// Store benchmark: the same workload against SQLite and PostgreSQL.
//
//   store_bench URL [--runs N] [--only tasks|listings|claims]
//
// URL is a store URL naming an EMPTY database (a new sqlite:///path.db file, or a
// fresh PostgreSQL database, e.g. from scripts/testenv/postgres.sh start DIR). Prints:
//   1. task-run state changes per second, in batches of 100 and 1000 (one transaction
//      per batch) and one change per transaction;
//   2. "latest 50 runs of a flow" (and a few other run listings) with N runs (default
//      1,000,000) in the database, and the database size;
//   3. claiming one due run while a backlog of due runs no agent covers waits, while a
//      backlog the agent covers waits, and while a backlog of runs the agent's labels
//      cover but of a run-config type it does not launch waits.
// Wall-clock timings (steady clock); medians and 99th percentiles over repeats.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/timefmt.hpp"
#include "store/schema.hpp"
#include "store/sql.hpp"
#include "store/store.hpp"

using namespace culvert;
using namespace culvert::store;
using Steady = std::chrono::steady_clock;

namespace {

double ms_since(Steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

struct Stats {
  double median, p99, max;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)], v.back()};
}

[[noreturn]] void die(const Status& s, const char* what) {
  std::fprintf(stderr, "store_bench: %s: %s\n", what, s.to_string().c_str());
  std::exit(1);
}

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r) die(r.status(), what);
  return std::move(r).value();
}

std::unique_ptr<detail::Db> raw_db(const std::string& url) {
  if (url.starts_with("sqlite://")) return detail::open_sqlite_db(url.substr(9), Millis(60000));
  return detail::open_postgres_db(url);
}

// One change per transaction from `writers` connections at once (group commit).
void bench_parallel_single(const std::string& url, const std::string& flow_id, int writers, int per_writer) {
  std::vector<std::unique_ptr<Store>> stores;
  std::vector<std::string> run_ids;
  for (int w = 0; w < writers; ++w) {
    stores.push_back(must(open_store(url), "open"));
    NewFlowRun nr;
    nr.flow_id = flow_id;
    run_ids.push_back(must(stores.back()->create_flow_run(nr), "create run").first.id);
  }
  auto t0 = Steady::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      SysTime ts = std::chrono::system_clock::now();
      for (int i = 0; i < per_writer; ++i)
        must(stores[w]->upsert_task_runs({{run_ids[w], "task", i, State::kRunning, "", 1,
                                           ts + std::chrono::milliseconds(i)}}),
             "upsert");
    });
  for (auto& t : threads) t.join();
  double ms = ms_since(t0);
  int changes = writers * per_writer;
  std::printf("batch    1, %d writers: %6d changes in %8.1f ms = %9.0f changes/s\n", writers, changes, ms,
              changes / (ms / 1000.0));
}

// Each task run of a mapped task goes Pending -> Running -> Success: three durable
// changes. Apart, every task run changes at a millisecond of its own, so each is a row
// of its own (the worst case); alike, the task runs of a batch change in the same
// millisecond and are stored as ranges (store/task_run_ranges.hpp).
void bench_task_runs(Store& s, const std::string& flow_id, bool postgres) {
  std::printf("\n== task-run state changes ==\n");
  for (bool alike : {false, true})
    for (int batch : {1000, 100, 1}) {
      if (alike && batch == 1) continue;
      NewFlowRun nr;
      nr.flow_id = flow_id;
      FlowRun run = must(s.create_flow_run(nr), "create run").first;
      int total = batch == 1 ? (postgres ? 1500 : 6000) : 60000;
      int tasks = total / 3;
      const State states[] = {State::kPending, State::kRunning, State::kSuccess};
      const SysTime base = std::chrono::system_clock::now();
      auto t0 = Steady::now();
      int changes = 0;
      for (int si = 0; si < 3; ++si) {
        for (int i = 0; i < tasks; i += batch) {
          std::vector<TaskRunUpdate> updates;
          for (int k = i; k < std::min(tasks, i + batch); ++k) {
            SysTime ts = base + std::chrono::milliseconds(alike ? si : si * tasks + k);
            updates.push_back({run.id, "task", k, states[si], "", 1, ts});
          }
          must(s.upsert_task_runs(updates), "upsert");
          changes += static_cast<int>(updates.size());
        }
      }
      double ms = ms_since(t0);
      std::printf("batch %4d, %s: %6d changes in %8.1f ms = %9.0f changes/s\n", batch, alike ? "alike" : "apart",
                  changes, ms, changes / (ms / 1000.0));
    }
}

void bulk_load_runs(const std::string& url, const std::vector<Flow>& flows, int64_t label_set, int n) {
  auto db = raw_db(url);
  bool pg = db->dialect() == detail::Dialect::kPostgres;
  int per_flow = n / static_cast<int>(flows.size());
  int64_t base = to_unix_ms(std::chrono::system_clock::now()) - int64_t{n} * 1000;
  auto t0 = Steady::now();
  for (size_t fi = 0; fi < flows.size(); ++fi) {
    db->begin(detail::TxMode::kWrite);
    std::string series = pg ? "SELECT x FROM generate_series(0, ? - 1) AS g(x)"
                            : "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ? - 1) "
                              "SELECT x FROM c";
    std::string rid = pg ? "md5(random()::text || x::text)" : "lower(hex(randomblob(16)))";
    const std::string t = "CAST(? AS BIGINT) + x * CAST(? AS BIGINT) + CAST(? AS BIGINT)";
    db->exec("INSERT INTO flow_runs (id, flow_id, project_id, parameters_json, labels, label_set_id, "
             "auto_scheduled, state, state_message, version, run_count, created, state_changed_at, "
             "scheduled_start_time, start_time, end_time) "
             "SELECT " + rid + ", ?, ?, '{}', '[]', ?, 0, 'Success', '', 4, 1, " + t + ", " + t + ", " + t + ", " +
                 t + ", " + t + " FROM (" + series + ") AS s",
             {flows[fi].id, flows[fi].project_id, label_set,
              base, int64_t(flows.size()) * 1000, int64_t(fi),
              base, int64_t(flows.size()) * 1000, int64_t(fi) + 900,
              base, int64_t(flows.size()) * 1000, int64_t(fi),
              base, int64_t(flows.size()) * 1000, int64_t(fi) + 10,
              base, int64_t(flows.size()) * 1000, int64_t(fi) + 900,
              int64_t{per_flow}});
    db->commit();
  }
  // One history entry per run, as the real write path leaves (at least) behind.
  db->begin(detail::TxMode::kWrite);
  db->exec("INSERT INTO flow_run_states (flow_run_id, from_state, state, message, version, forced, ts) "
           "SELECT id, 'Running', 'Success', '', 4, 0, end_time FROM flow_runs WHERE state = 'Success'");
  db->commit();
  // The bulk load bypassed the store: recount the runs per state as migration 2 does.
  db->begin(detail::TxMode::kWrite);
  db->exec("DELETE FROM run_state_counts");
  db->exec("INSERT INTO run_state_counts (state, shard, count) SELECT state, 0, COUNT(*) FROM flow_runs "
           "GROUP BY state");
  db->commit();
  db->exec_script("ANALYZE");
  std::printf("loaded %d runs (+%d history rows) in %.1f s\n", per_flow * static_cast<int>(flows.size()),
              per_flow * static_cast<int>(flows.size()), ms_since(t0) / 1000.0);
}

std::string db_size(const std::string& url) {
  char buf[64];
  if (url.starts_with("sqlite://")) {
    std::string path = url.substr(9);
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    auto wal = std::filesystem::file_size(path + "-wal", ec);
    if (ec) wal = 0;
    std::snprintf(buf, sizeof buf, "%.0f MB (+%.0f MB WAL)", size / 1e6, wal / 1e6);
    return buf;
  }
  auto db = raw_db(url);
  db->begin(detail::TxMode::kRead);
  auto rows = db->query("SELECT pg_database_size(current_database())");
  db->commit();
  std::snprintf(buf, sizeof buf, "%.0f MB", rows.at(0).i64(0) / 1e6);
  return buf;
}

void time_query(Store& s, const char* label, const FlowRunQuery& q, int repeats = 200) {
  std::vector<double> v;
  size_t n = 0;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Steady::now();
    auto page = must(s.list_flow_runs(q), "list");
    v.push_back(ms_since(t0));
    n = page.runs.size();
  }
  Stats st = stats(v);
  std::printf("%-44s %3zu rows: median %6.2f ms, p99 %6.2f ms, max %6.2f ms\n", label, n, st.median, st.p99,
              st.max);
}

enum class Backlog { kUncovered, kCovered, kOtherType };

void bench_claims(Store& s, const std::string& url, const Flow& flow, Backlog backlog) {
  const int kBacklog = 10000;
  const bool covered_backlog = backlog != Backlog::kUncovered;
  // A backlog of due runs: either with labels no agent has (10 label sets), or with
  // the agent's own label (then each claim takes the oldest of them).
  std::vector<int64_t> sets;
  {
    // Create the label sets through the store (one run each), then bulk-copy runs.
    for (int i = 0; i < (covered_backlog ? 1 : 10); ++i) {
      NewFlowRun nr;
      nr.flow_id = flow.id;
      nr.labels = covered_backlog ? std::vector<std::string>{"bench"}
                                  : std::vector<std::string>{"gpu-" + std::to_string(i)};
      nr.scheduled_start_time = std::chrono::system_clock::now() - std::chrono::hours(1);
      must(s.create_flow_run(nr), "create run");
    }
    auto db = raw_db(url);
    bool pg = db->dialect() == detail::Dialect::kPostgres;
    std::string series = pg ? "SELECT x FROM generate_series(0, ? - 1) AS g(x)"
                            : "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ? - 1) "
                              "SELECT x FROM c";
    std::string rid = pg ? "md5(random()::text || x::text)" : "lower(hex(randomblob(16)))";
    db->begin(detail::TxMode::kWrite);
    // Copy each template run (the ones just created) kBacklog / sets times.
    auto templates = db->query(
        "SELECT label_set_id, labels, scheduled_start_time FROM flow_runs WHERE state = 'Scheduled'");
    for (const auto& t : templates) {
      db->exec("INSERT INTO flow_runs (id, flow_id, project_id, parameters_json, labels, label_set_id, "
               "auto_scheduled, state, state_message, version, run_count, created, state_changed_at, "
               "scheduled_start_time, run_config_type) SELECT " + rid + ", ?, ?, '{}', ?, ?, 0, 'Scheduled', '', 1, 0, ?, ?, "
               "CAST(? AS BIGINT) + x, ? FROM (" + series + ") AS s",
               {flow.id, flow.project_id, t.str(1), t.i64(0), t.i64(2), t.i64(2), t.i64(2),
                std::string(backlog == Backlog::kOtherType ? "docker" : ""),
                int64_t{kBacklog / static_cast<int>(templates.size())}});
    }
    if (backlog == Backlog::kOtherType) {
      // The templates too: the backlog is all of a type the agent does not launch.
      db->exec("UPDATE flow_runs SET run_config_type = 'docker' WHERE state = 'Scheduled'", {});
    }
    db->commit();
    db->exec_script("ANALYZE");
  }
  std::vector<double> v;
  for (int i = 0; i < 200; ++i) {
    if (backlog != Backlog::kCovered) {
      NewFlowRun nr;  // one claimable run among the backlog the agent does not take
      nr.flow_id = flow.id;
      nr.labels = backlog == Backlog::kOtherType ? std::vector<std::string>{"bench"} : std::vector<std::string>{};
      must(s.create_flow_run(nr), "create run");
    }
    ClaimRequest req{"bench-agent", {"bench"}, 1, std::chrono::system_clock::now() + std::chrono::hours(2), {}};
    if (backlog == Backlog::kOtherType) req.run_config_types = std::vector<std::string>{"local"};
    auto t0 = Steady::now();
    auto got = must(s.claim_runs(req), "claim");
    v.push_back(ms_since(t0));
    if (got.size() != 1) {
      std::fprintf(stderr, "store_bench: claim returned %zu runs\n", got.size());
      std::exit(1);
    }
  }
  Stats st = stats(v);
  std::printf("claim 1 run, %5d due runs the agent %s: median %6.2f ms, p99 %6.2f ms\n", kBacklog,
              backlog == Backlog::kCovered     ? "covers                      "
              : backlog == Backlog::kUncovered ? "cannot take (labels)        "
                                               : "cannot take (run-config type)",
              st.median, st.p99);
  // Leave nothing due for the next round.
  auto db = raw_db(url);
  db->begin(detail::TxMode::kWrite);
  db->exec("UPDATE flow_runs SET state = 'Cancelled' WHERE state IN ('Scheduled', 'Pending', 'Retrying')");
  db->commit();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: store_bench URL [--runs N]\n");
    return 2;
  }
  std::string url = argv[1];
  int runs = 1000000;
  std::string only;  // tasks | listings | claims; empty: all
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--runs") runs = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--only") only = argv[i + 1];
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto store = must(open_store(url), "open");
  bool pg = store->backend() == "postgresql";
  std::printf("store_bench: backend %s\n", std::string(store->backend()).c_str());

  std::vector<Flow> flows;
  for (int i = 0; i < 20; ++i) {
    NewFlowVersion v;
    v.project = "bench";
    v.name = "flow-" + std::to_string(i);
    v.artifact_uri = "file:///bench";
    flows.push_back(must(store->register_flow(v), "register"));
  }
  if (only.empty() || only == "tasks") {
    bench_task_runs(*store, flows[0].id, pg);
    bench_parallel_single(url, flows[0].id, 8, pg ? 300 : 1000);
  }
  if (only == "tasks") return 0;

  if (only.empty() || only == "listings") {
  std::printf("\n== run listings ==\n");
  NewFlowRun nr;
  nr.flow_id = flows[0].id;
  nr.labels = std::vector<std::string>{};
  must(store->create_flow_run(nr), "create run");  // creates the label set "[]"
  auto raw = raw_db(url);
  raw->begin(detail::TxMode::kRead);
  int64_t empty_set = raw->query("SELECT id FROM label_sets WHERE labels = '[]'").at(0).i64(0);
  raw->commit();
  raw.reset();
  bulk_load_runs(url, flows, empty_set, runs);
  std::printf("database size with %d runs: %s\n", runs, db_size(url).c_str());
  FlowRunQuery q;
  q.flow_id = flows[7].id;
  time_query(*store, "latest 50 runs of a flow", q);
  auto page = must(store->list_flow_runs(q), "list");
  FlowRunQuery deep = q;
  for (int i = 0; i < 200 && !page.next_cursor.empty(); ++i) {
    deep.cursor = page.next_cursor;
    page = must(store->list_flow_runs(deep), "list");
  }
  time_query(*store, "page 201 of a flow's runs (cursor)", deep);
  FlowRunQuery by_state = q;
  by_state.states = {State::kSuccess};
  time_query(*store, "latest 50 Success runs of a flow", by_state);
  FlowRunQuery newest;
  time_query(*store, "latest 50 runs of all flows", newest);
  {
    std::vector<double> v;
    for (int i = 0; i < 10; ++i) {
      auto t0 = Steady::now();
      must(store->count_runs_by_state(), "count");
      v.push_back(ms_since(t0));
    }
    Stats st = stats(v);
    std::printf("%-44s          median %6.2f ms, max %6.2f ms\n", "count_runs_by_state (metrics)", st.median, st.max);
  }
  }

  std::printf("\n== claims ==\n");
  bench_claims(*store, url, flows[1], Backlog::kUncovered);
  bench_claims(*store, url, flows[2], Backlog::kCovered);
  bench_claims(*store, url, flows[3], Backlog::kOtherType);
  return 0;
}
