// The web UI's server-side benchmark: the API in process (routing, authentication,
// store, rendering; no sockets) over a real database.
//
//   ui_bench URL [--runs N] [--elements N] [--repeat N]
//
// URL names an EMPTY database (a new sqlite:///path.db file, or a fresh PostgreSQL
// database). Prints:
//   1. run page: each route the run page calls for a run whose mapped task has
//      --elements (10,000) task runs, and one page load (all of them), median and p99;
//      against the alternative the UI avoids: reading every task run (all pages).
//   2. dashboard: GET /api/v1/dashboard with --runs (1,000,000) runs created over 30
//      days, and again with every run created in the last 24 hours; against the
//      alternative: counting the last 24 hours' runs by listing them (all pages).
// Wall-clock timings (steady clock) of the whole request, answer rendered.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/waiters.hpp"
#include "server/work_pool.hpp"
#include "store/sql.hpp"
#include "store/store.hpp"

using namespace culvert;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "ui_bench: %s\n", what.c_str());
  std::exit(1);
}
template <typename T>
T must(Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.status().to_string());
  return std::move(r).value();
}

struct Stats {
  double median, p99;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)]};
}

class Bench {
 public:
  explicit Bench(const std::string& url) {
    store::StoreOptions so;
    store_ = must(store::open_store(url, so), "open store");
    auth_ = std::make_unique<server::Authenticator>(clock_, server::AuthOptions{});
    waiters_ = std::make_unique<server::Waiters>(clock_, std::chrono::milliseconds(250));
    events_ = server::make_run_events(*waiters_, *auth_);
    pool_ = std::make_unique<server::WorkPool>(1);
    api_ = std::make_unique<server::Api>(clock_, *pool_, [this](int) -> store::Store& { return *store_; }, *auth_,
                                         *waiters_, *events_, server::ApiOptions{});
    token_ = new_api_token();
    store::NewToken t;
    t.name = "bench";
    t.scope = "admin";
    t.hash = sha256_hex(token_);
    must(store_->create_token(t), "token");
  }
  ~Bench() {
    waiters_->fire_all();
    pool_->stop();
  }
  struct Reply {
    int status;
    std::string body;
  };
  Reply call(const std::string& method, const std::string& target, const std::string& body = "") {
    server::Request r;
    r.method = method;
    if (!server::parse_target(target, r)) die("bad target " + target);
    r.authorization = "Bearer " + token_;
    r.body = body;
    std::promise<Reply> p;
    auto f = p.get_future();
    api_->handle(std::move(r), [&p](server::Response resp) { p.set_value({resp.status, std::move(resp.body)}); });
    auto rep = f.get();
    if (rep.status >= 300) die(method + " " + target + ": " + std::to_string(rep.status) + " " + rep.body.substr(0, 300));
    return rep;
  }
  double timed(const std::string& target) {
    auto t0 = Steady::now();
    call("GET", target);
    return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
  }
  store::Store& store() { return *store_; }

 private:
  SystemClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<server::Authenticator> auth_;
  std::unique_ptr<server::Waiters> waiters_;
  std::unique_ptr<server::RunEvents> events_;
  std::unique_ptr<server::WorkPool> pool_;
  std::unique_ptr<server::Api> api_;
  std::string token_;
};

void run_page(Bench& b, int elements, int repeat) {
  json flow = {{"project", "bench"},
               {"name", "wide"},
               {"artifact", {{"uri", "file:///flows/wide"}, {"sha256", sha256_hex("wide")}}},
               {"tasks", {{{"name", "prepare"}}, {{"name", "each"}, {"mapped", true}}, {{"name", "total"}}}},
               {"edges", {{{"from", "prepare"}, {"to", "each"}}, {{"from", "each"}, {"to", "total"}}}}};
  auto f = json::parse(b.call("POST", "/api/v1/flows", flow.dump()).body);
  auto run = json::parse(b.call("POST", "/api/v1/flow-runs", json({{"flow_id", f["id"]}}).dump()).body);
  std::string id = run["id"];
  // Task runs that differ one from the next (state, attempts, message), so that none
  // are stored as one range of alike task runs: the slowest case for the store.
  const char* states[] = {"Success", "Failed", "Running", "Retrying"};
  for (int i = 0; i < elements; i += 1000) {
    json batch = json::array();
    for (int k = i; k < std::min(elements, i + 1000); ++k) {
      json item = {{"flow_run_id", id}, {"task", "each"}, {"map_index", k}, {"state", states[k % 4]},
                   {"attempts", 1 + k % 3}, {"message", "element " + std::to_string(k)}};
      if (k % 4 == 3) item["next_start_time"] = "2030-01-01T00:00:00Z";
      batch.push_back(item);
    }
    b.call("POST", "/api/v1/task-runs/states", batch.dump());
  }
  json logs = json::array();
  for (int k = 0; k < 1000; ++k) logs.push_back({{"flow_run_id", id}, {"level", "INFO"}, {"message", "line " + std::to_string(k)}});
  b.call("POST", "/api/v1/logs", logs.dump());
  std::string r = "/api/v1/flow-runs/" + id;
  std::string fl = "/api/v1/flows/" + f["id"].get<std::string>();
  std::vector<std::pair<std::string, std::string>> routes = {
      {"GET run", r},
      {"GET history", r + "/history?limit=1000"},
      {"GET task-runs (tasks, mapped summed up)", r + "/task-runs?limit=1000"},
      {"GET task-runs?task=each, first 200", r + "/task-runs?task=each&limit=200"},
      {"GET task-runs?task=each, last 200", r + "/task-runs?task=each&cursor=" + std::to_string(elements - 200) + "&limit=200"},
      {"GET flow version (graph)", fl},
      {"GET logs, first 1000 lines", r + "/logs?limit=1000"},
  };
  std::printf("run page of a run with %d task runs in one mapped task (%d repeats)\n", elements, repeat);
  std::vector<double> page;
  std::vector<std::vector<double>> each(routes.size());
  for (int k = 0; k < repeat; ++k) {
    double total = 0;
    for (size_t i = 0; i < routes.size(); ++i) {
      double ms = b.timed(routes[i].second);
      each[i].push_back(ms);
      total += ms;
    }
    page.push_back(total);
  }
  for (size_t i = 0; i < routes.size(); ++i) {
    auto s = stats(each[i]);
    std::printf("  %-44s median %7.2f ms   p99 %7.2f ms\n", routes[i].first.c_str(), s.median, s.p99);
  }
  auto ps = stats(page);
  std::printf("  %-44s median %7.2f ms   p99 %7.2f ms   (target <= 50 ms)\n", "one page load (all of the above)", ps.median,
              ps.p99);
  // The alternative: every task run of the map, page by page.
  std::vector<double> all;
  for (int k = 0; k < std::max(3, repeat / 10); ++k) {
    auto t0 = Steady::now();
    std::string cursor;
    do {
      auto rep = json::parse(b.call("GET", r + "/task-runs?task=each&limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor)).body);
      cursor = rep["next_cursor"].is_null() ? "" : rep["next_cursor"].dump();
      if (!cursor.empty() && cursor.front() == '"') cursor = rep["next_cursor"].get<std::string>();
    } while (!cursor.empty());
    all.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
  }
  auto as = stats(all);
  std::printf("  %-44s median %7.2f ms   (%.1fx one windowed page load)\n", "alternative: read all task runs", as.median,
              as.median / ps.median);
}

void seed_runs(const std::string& url, Bench& b, int64_t n, int64_t spread_ms) {
  json flow = {{"project", "bench"},
               {"name", "many"},
               {"artifact", {{"uri", "file:///flows/many"}, {"sha256", sha256_hex("many")}}},
               {"tasks", json::array()}};
  auto f = json::parse(b.call("POST", "/api/v1/flows", flow.dump()).body);
  auto tmpl = json::parse(b.call("POST", "/api/v1/flow-runs", json({{"flow_id", f["id"]}}).dump()).body);
  std::unique_ptr<store::detail::Db> db = url.starts_with("sqlite://")
                                              ? store::detail::open_sqlite_db(url.substr(9), Millis(60000))
                                              : store::detail::open_postgres_db(url);
  bool pg = db->dialect() == store::detail::Dialect::kPostgres;
  std::string series = pg ? "SELECT x FROM generate_series(0, ? - 1) AS g(x)"
                          : "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ? - 1) SELECT x FROM c";
  std::string rid = pg ? "md5(random()::text || x::text)" : "lower(hex(randomblob(16)))";
  // States by x: mostly Success, some Failed, Crashed, Running, Scheduled (due long ago).
  std::string state =
      "CASE WHEN x % 100 = 0 THEN 'Failed' WHEN x % 250 = 1 THEN 'Crashed' WHEN x % 500 = 2 THEN 'Running' "
      "WHEN x % 1000 = 3 THEN 'Scheduled' ELSE 'Success' END";
  int64_t now = to_unix_ms(std::chrono::system_clock::now());
  const std::string t = "CAST(? AS BIGINT) - (x * CAST(? AS BIGINT)) / CAST(? AS BIGINT)";
  auto t0 = Steady::now();
  db->begin(store::detail::TxMode::kWrite);
  db->exec("INSERT INTO flow_runs (id, flow_id, project_id, parameters_json, labels, label_set_id, auto_scheduled, state, "
           "state_message, version, run_count, created, state_changed_at, scheduled_start_time, run_config_type) "
           "SELECT " + rid + ", flow_id, project_id, '{}', labels, label_set_id, 0, " + state +
               ", 'seeded', 1, 0, " + t + ", " + t + ", " + t + ", run_config_type FROM (" + series +
               ") AS s, (SELECT flow_id, project_id, labels, label_set_id, run_config_type FROM flow_runs WHERE id = ?) AS tm",
           {now, spread_ms, n, now, spread_ms, n, now, spread_ms, n, n, tmpl["id"].get<std::string>()});
  db->commit();
  if (!pg) db->exec("ANALYZE");
  else db->exec("ANALYZE flow_runs");
  std::printf("  seeded %lld runs in %.1f s\n", static_cast<long long>(n),
              std::chrono::duration<double>(Steady::now() - t0).count());
}

void dashboard(Bench& b, int repeat, const char* what) {
  std::vector<double> v;
  b.timed("/api/v1/dashboard");  // warm
  for (int k = 0; k < repeat; ++k) v.push_back(b.timed("/api/v1/dashboard"));
  auto s = stats(v);
  auto d = json::parse(b.call("GET", "/api/v1/dashboard").body);
  std::printf("  GET /api/v1/dashboard, %-30s median %7.2f ms   p99 %7.2f ms   (target <= 100 ms; %lld runs in the last 24 h)\n",
              what, s.median, s.p99, static_cast<long long>(d["runs_total"].get<int64_t>()));
  // The alternative: list the last 24 hours' runs and count them.
  std::string since = format_rfc3339(std::chrono::system_clock::now() - std::chrono::hours(24));
  auto t0 = Steady::now();
  std::string cursor;
  int64_t listed = 0;
  do {
    auto rep = json::parse(b.call("GET", "/api/v1/flow-runs?limit=1000&created_after=" + since +
                                             (cursor.empty() ? "" : "&cursor=" + cursor)).body);
    listed += static_cast<int64_t>(rep["runs"].size());
    cursor = rep["next_cursor"].is_string() ? rep["next_cursor"].get<std::string>() : "";
  } while (!cursor.empty());
  double alt = std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
  std::printf("  alternative: list and count the %lld runs        %9.2f ms   (%.0fx the dashboard)\n",
              static_cast<long long>(listed), alt, alt / s.median);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: ui_bench URL [--runs N] [--elements N] [--repeat N]");
  std::string url = argv[1];
  int64_t runs = 1000000;
  int elements = 10000, repeat = 50;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--runs") runs = std::atoll(argv[i + 1]);
    else if (k == "--elements") elements = std::atoi(argv[i + 1]);
    else if (k == "--repeat") repeat = std::atoi(argv[i + 1]);
    else die("unknown option " + k);
  }
  if (elements < 200 || runs < 1 || repeat < 1) die("--elements >= 200, --runs >= 1, --repeat >= 1");
  Bench b(url);
  std::printf("database: %s\n", b.store().backend().data());
  run_page(b, elements, repeat);
  std::printf("dashboard over %lld runs\n", static_cast<long long>(runs));
  int64_t day = 24LL * 3600 * 1000;
  seed_runs(url, b, runs, 30 * day);
  dashboard(b, repeat, "runs over 30 days:");
  seed_runs(url, b, runs, day - 60000);
  dashboard(b, repeat, "+ as many in 24 h:");
  return 0;
}
