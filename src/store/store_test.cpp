// The Store test suite, run unchanged against every backend: store_sqlite_test (fast
// tier) instantiates it for SQLite, store_postgres_test (e2e tier, a real PostgreSQL
// started by scripts/testenv/postgres.sh) for PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "store/schema.hpp"
#include "store/sql.hpp"
#include "store/store.hpp"
#include "store/testing.hpp"

#ifndef CULVERT_STORE_TEST_BACKEND
#error "CULVERT_STORE_TEST_BACKEND must name the backend under test"
#endif

namespace culvert::store {
namespace {

using ::testing::HasSubstr;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr State kAllStates[] = {
    State::kScheduled, State::kPending, State::kSubmitted, State::kRunning, State::kRetrying,
    State::kCancelling, State::kSuccess, State::kCached, State::kSkipped, State::kFailed,
    State::kTimedOut, State::kTriggerFailed, State::kCrashed, State::kCancelled,
};

// The schema version this build migrates to.
int latest_schema_version() { return detail::migrations(detail::Dialect::kSqlite).back().version; }

// JSON text in one spelling (PostgreSQL's jsonb renders it with spaces).
std::string json_compact(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? "not JSON: " + text : j.dump();
}

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto db = TestDatabase::create(GetParam());
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    db_ = std::make_unique<TestDatabase>(std::move(db).value());
    store_ = open();
    ASSERT_NE(store_, nullptr);
  }

  // A plain connection to the test database, beside the store.
  std::unique_ptr<detail::Db> raw_db() {
    return GetParam() == "sqlite" ? detail::open_sqlite_db(db_->url().substr(std::string("sqlite://").size()),
                                                           std::chrono::milliseconds(5000))
                                  : detail::open_postgres_db(db_->url());
  }

  int64_t count_rows(const std::string& sql, const std::string& arg) {
    auto db = raw_db();
    db->begin(detail::TxMode::kRead);
    int64_t n = db->query(sql, {arg}).at(0).i64(0);
    db->commit();
    return n;
  }

  std::unique_ptr<Store> open() {
    StoreOptions o;
    o.clock = &clock_;
    auto s = open_store(db_->url(), o);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    if (!s) return nullptr;
    return std::move(s).value();
  }

  Flow register_flow(const std::string& name, std::vector<std::string> labels = {},
                     const std::string& project = "default") {
    NewFlowVersion v;
    v.project = project;
    v.name = name;
    v.artifact_uri = "file:///flows/" + name;
    v.artifact_sha256 = sha256_hex(name);
    v.description_json = R"({"name":")" + name + R"(","tasks":[]})";
    v.labels = std::move(labels);
    auto f = store_->register_flow(v);
    EXPECT_TRUE(f.is_ok()) << f.status().to_string();
    return f.is_ok() ? *f : Flow{};
  }

  FlowRun create_run(const std::string& flow_id, std::optional<std::vector<std::string>> labels = std::nullopt,
                     std::optional<SysTime> due = std::nullopt, State initial = State::kScheduled) {
    NewFlowRun r;
    r.flow_id = flow_id;
    r.labels = std::move(labels);
    r.scheduled_start_time = due;
    r.initial_state = initial;
    auto c = store_->create_flow_run(r);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() ? c->first : FlowRun{};
  }

  Result<FlowRun> set_state(const std::string& run_id, State s, std::optional<int64_t> expected = std::nullopt,
                            bool forced = false) {
    SetFlowRunState c;
    c.run_id = run_id;
    c.state = s;
    c.message = std::string("to ") + state_name(s);
    c.expected_version = expected;
    c.forced = forced;
    c.now = clock_.now();
    return store_->set_flow_run_state(c);
  }

  // Drives a new run from Scheduled to `target` through legal transitions.
  FlowRun run_in_state(const std::string& flow_id, State target) {
    FlowRun run = create_run(flow_id);
    std::vector<State> path;
    switch (target) {
      case State::kScheduled: break;
      case State::kPending: path = {State::kPending}; break;
      case State::kSubmitted: path = {State::kSubmitted}; break;
      case State::kRunning: path = {State::kSubmitted, State::kRunning}; break;
      case State::kRetrying: path = {State::kSubmitted, State::kRunning, State::kRetrying}; break;
      case State::kCancelling: path = {State::kSubmitted, State::kRunning, State::kCancelling}; break;
      case State::kCancelled: path = {State::kCancelled}; break;
      default: path = {State::kSubmitted, State::kRunning, target}; break;
    }
    for (State s : path) {
      auto r = set_state(run.id, s);
      EXPECT_TRUE(r.is_ok()) << r.status().to_string();
      if (r) run = *r;
    }
    return run;
  }

  std::string tool_path() const { return CULVERT_STORE_TEST_TOOL; }

  ManualClock clock_;
  std::unique_ptr<TestDatabase> db_;
  std::unique_ptr<Store> store_;
};

// Reads a child's stdout line by line.
struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
};

Child spawn(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  return {pid, fdopen(fds[0], "r")};
}

bool read_line(FILE* f, std::string* line) {
  char buf[256];
  if (!fgets(buf, sizeof buf, f)) return false;
  *line = buf;
  while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) line->pop_back();
  return true;
}

int wait_child(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// ---------------------------------------------------------------------------------

TEST_P(StoreTest, OpensWithTheCurrentSchemaAndReopensIdempotently) {
  auto v = store_->schema_version();
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(*v, latest_schema_version());
  EXPECT_EQ(store_->backend(), GetParam() == "sqlite" ? "sqlite" : "postgresql");
  ASSERT_TRUE(store_->create_project("p", "d").is_ok());
  // Re-opening applies nothing and keeps the data.
  for (int i = 0; i < 2; ++i) {
    auto again = open();
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(*again->schema_version(), latest_schema_version());
    EXPECT_TRUE(again->find_project("p").is_ok());
  }
}

TEST_P(StoreTest, RefusesADatabaseWithANewerSchema) {
  // As if a later Culvert had migrated the database and the server was then rolled back.
  std::unique_ptr<detail::Db> raw = raw_db();
  raw->begin(detail::TxMode::kWrite);
  raw->exec("INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'from the future', 0)",
            {});
  raw->commit();
  StoreOptions o;
  o.clock = &clock_;
  auto s = open_store(db_->url(), o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("schema version 99, newer than this culvert knows (" +
                                      std::to_string(latest_schema_version()) + ")"),
            std::string::npos)
      << s.status().message();
}

TEST_P(StoreTest, PruneLogsDeletesTheLogsOfRunsThatEndedBeforeTheCutoff) {
  auto flow = register_flow("etl");
  auto add_logs = [&](const std::string& run_id, int n) {
    std::vector<LogEntry> batch;
    for (int i = 0; i < n; ++i) {
      LogEntry e;
      e.flow_run_id = run_id;
      e.message = "line " + std::to_string(i);
      e.timestamp = clock_.now();
      batch.push_back(e);
    }
    ASSERT_TRUE(store_->append_logs(batch).is_ok());
  };
  auto lines_of = [&](const std::string& run_id) { return store_->read_logs(run_id, 0, 10000)->size(); };
  const SysTime t0 = clock_.now();
  // Four runs end: a at t0+1s, b and c in the same millisecond at t0+2s, d at t0+10s;
  // e is still running.
  std::vector<std::string> ended;
  for (int i = 0; i < 4; ++i) {
    auto r = run_in_state(flow.id, State::kRunning);
    add_logs(r.id, 3);
    ended.push_back(r.id);
  }
  auto running = run_in_state(flow.id, State::kRunning);
  add_logs(running.id, 2);
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(ended[0], State::kSuccess).is_ok());
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(ended[1], State::kFailed).is_ok());
  ASSERT_TRUE(set_state(ended[2], State::kCrashed).is_ok());
  clock_.advance(seconds(8));
  ASSERT_TRUE(set_state(ended[3], State::kSuccess).is_ok());

  // Cutoff t0+5s, one run per call: a, then b and c (which ended in the same
  // millisecond: the cursor holds the id too), then none left.
  Store::PruneCursor cursor;
  int64_t lines = 0;
  int calls = 0;
  for (;; ++calls) {
    ASSERT_LT(calls, 10);
    auto r = store_->prune_logs(cursor, t0 + seconds(5), 1);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    lines += r->lines;
    if (!r->next) break;
    cursor = *r->next;
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(lines, 9);
  EXPECT_EQ(lines_of(ended[0]), 0u);
  EXPECT_EQ(lines_of(ended[1]), 0u);
  EXPECT_EQ(lines_of(ended[2]), 0u);
  EXPECT_EQ(lines_of(ended[3]), 3u);   // ended after the cutoff
  EXPECT_EQ(lines_of(running.id), 2u);  // not ended
  EXPECT_TRUE(store_->get_flow_run(ended[0]).is_ok());  // the runs themselves stay
  // A later cutoff continues from the cursor.
  auto r = store_->prune_logs(cursor, t0 + seconds(60), 500);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->lines, 3);
  EXPECT_EQ(lines_of(ended[3]), 0u);
  EXPECT_EQ(store_->prune_logs(cursor, t0, 0).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, ConcurrentOpenersMigrateOnce) {
  // A fresh database opened by four connections at once (as by server replicas).
  auto fresh = TestDatabase::create(GetParam());
  ASSERT_TRUE(fresh.is_ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      auto s = open_store(fresh->url());
      if (s && *(*s)->schema_version() == latest_schema_version()) ok++;
      else if (!s) ADD_FAILURE() << s.status().to_string();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 4);
}

TEST_P(StoreTest, RejectsBadUrls) {
  EXPECT_EQ(open_store("mysql://x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_store("sqlite://relative.db").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_store("sqlite:///proc/no/such/dir/x.db").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(open_store("sqlite:///tmp/x.db?journal=off").status().code(), StatusCode::kInvalidArgument);
  if (GetParam() == "sqlite") {
    auto full = open_store(db_->url() + "?synchronous=full");
    ASSERT_TRUE(full.is_ok()) << full.status().to_string();
    EXPECT_TRUE((*full)->create_project("durable", "").is_ok());
    EXPECT_TRUE(store_->find_project("durable").is_ok());
  }
}

TEST_P(StoreTest, ReconnectsAfterTheConnectionWasLostWhileIdle) {
  ASSERT_TRUE(store_->create_project("before", "").is_ok());
  auto killed = db_->terminate_connections();
  ASSERT_TRUE(killed.is_ok()) << killed.status().to_string();
  if (GetParam() == "postgres") {
    EXPECT_GE(*killed, 1);
  }
  // The next call re-establishes the connection and succeeds.
  EXPECT_TRUE(store_->create_project("after", "").is_ok());
  EXPECT_EQ(store_->list_projects()->size(), 2u);
}

TEST_P(StoreTest, Projects) {
  auto a = store_->create_project("analytics", "team A");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->name, "analytics");
  EXPECT_EQ(a->created, clock_.now());
  auto dup = store_->create_project("analytics", "again");
  EXPECT_EQ(dup.status().code(), StatusCode::kConflict);
  EXPECT_THAT(dup.status().message(), HasSubstr("analytics"));
  auto skip = store_->create_project("analytics", "again", /*skip_if_exists=*/true);
  ASSERT_TRUE(skip.is_ok());
  EXPECT_EQ(skip->id, a->id);
  EXPECT_EQ(skip->description, "team A");
  ASSERT_TRUE(store_->create_project("billing", "").is_ok());
  auto all = store_->list_projects();
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "analytics");
  EXPECT_EQ((*all)[1].name, "billing");
  EXPECT_EQ(store_->get_project(a->id)->name, "analytics");
  EXPECT_EQ(store_->find_project("billing")->name, "billing");
  EXPECT_EQ(store_->find_project("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->get_project("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->create_project("", "").status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, RegisteringAgainCreatesTheNextVersionAndArchivesOlderOnes) {
  Flow v1 = register_flow("etl", {"b", "a", "a"});
  EXPECT_EQ(v1.version, 1);
  EXPECT_FALSE(v1.archived);
  EXPECT_EQ(v1.labels, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(v1.project_name, "default");
  clock_.advance(seconds(1));
  Flow v2 = register_flow("etl");
  Flow v3 = register_flow("etl", {"c"});
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v3.version, 3);
  EXPECT_NE(v1.id, v3.id);
  EXPECT_TRUE(store_->get_flow(v1.id)->archived);
  EXPECT_TRUE(store_->get_flow(v2.id)->archived);
  EXPECT_FALSE(store_->get_flow(v3.id)->archived);
  EXPECT_EQ(store_->get_flow(v1.id)->description_json, R"({"name":"etl","tasks":[]})");
  Flow other = register_flow("etl", {}, "other-project");
  EXPECT_EQ(other.version, 1);  // versions count per project
  Flow report = register_flow("report");

  auto latest = store_->list_flows(v1.project_id, /*latest_only=*/true);
  ASSERT_TRUE(latest.is_ok());
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ((*latest)[0].id, v3.id);
  EXPECT_EQ((*latest)[1].id, report.id);
  auto every = store_->list_flows(v1.project_id, /*latest_only=*/false);
  ASSERT_EQ(every->size(), 4u);
  EXPECT_EQ((*every)[0].version, 3);
  EXPECT_EQ((*every)[2].version, 1);
  EXPECT_EQ(store_->list_flows(std::nullopt, true)->size(), 3u);

  // Pages: one name; after a flow, in the listing's order (project, name, version desc).
  auto named = store_->list_flows(v1.project_id, false, {.name = "etl"});
  ASSERT_EQ(named->size(), 3u);
  EXPECT_EQ((*named)[0].id, v3.id);
  for (bool latest_only : {false, true}) {
    auto whole = store_->list_flows(std::nullopt, latest_only);
    std::vector<std::string> paged;
    std::optional<std::string> after;
    for (int i = 0; i < 10; ++i) {
      auto page = store_->list_flows(std::nullopt, latest_only, {.after_id = after, .limit = 2});
      ASSERT_TRUE(page.is_ok()) << page.status().to_string();
      for (const auto& f : *page) paged.push_back(f.id);
      if (page->size() < 2) break;
      after = page->back().id;
    }
    std::vector<std::string> ids;
    for (const auto& f : *whole) ids.push_back(f.id);
    EXPECT_EQ(paged, ids) << "latest_only " << latest_only;
  }
  EXPECT_EQ(store_->list_flows(std::nullopt, true, {.after_id = "nope"}).status().code(), StatusCode::kNotFound);

  auto found = store_->find_latest_flow("default", "etl");
  ASSERT_TRUE(found.is_ok());
  EXPECT_EQ(found->id, v3.id);
  EXPECT_EQ(store_->find_latest_flow("default", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->get_flow("nope").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreTest, FlowIdempotencyKeyReturnsTheExistingVersion) {
  NewFlowVersion v;
  v.project = "p";
  v.name = "etl";
  v.artifact_uri = "file:///a";
  v.idempotency_key = "k1";
  auto first = store_->register_flow(v);
  ASSERT_TRUE(first.is_ok());
  v.artifact_uri = "file:///b";
  auto again = store_->register_flow(v);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->version, 1);
  EXPECT_EQ(again->artifact_uri, "file:///a");
  EXPECT_TRUE(again->reused);
  v.idempotency_key = "k2";
  EXPECT_EQ(store_->register_flow(v)->version, 2);
  EXPECT_EQ(store_->list_flows(first->project_id, false)->size(), 2u);
}

// Registering the latest version's bytes and metadata again returns that version; any
// difference (hash, URI, description, labels, schedule, its activity, retries) makes a
// new one, and an older version's content is not matched.
TEST_P(StoreTest, RegisteringIdenticalBytesAndMetadataReturnsTheLatestVersion) {
  NewFlowVersion v;
  v.project = "p";
  v.name = "etl";
  v.artifact_uri = "file:///flows/etl";
  v.artifact_sha256 = sha256_hex("bytes 1");
  v.description_json = R"({"name":"etl","tasks":[]})";
  v.labels = {"b", "a"};
  v.schedule_json = R"({"cron":"0 * * * *"})";
  v.max_run_retries = 1;
  auto first = store_->register_flow(v);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_FALSE(first->reused);
  clock_.advance(seconds(1));
  v.labels = {"a", "b", "a"};  // the same set of labels
  v.idempotency_key = "another key";
  auto again = store_->register_flow(v);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_TRUE(again->reused);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->version, 1);
  EXPECT_EQ(again->created, first->created);
  EXPECT_EQ(store_->list_flows(first->project_id, false)->size(), 1u);
  EXPECT_FALSE(store_->get_flow(first->id)->reused);

  int expected_version = 1;
  auto expect_new_version = [&](const NewFlowVersion& changed, const char* what) {
    auto r = store_->register_flow(changed);
    ASSERT_TRUE(r.is_ok()) << what << ": " << r.status().to_string();
    EXPECT_FALSE(r->reused) << what;
    EXPECT_EQ(r->version, ++expected_version) << what;
  };
  NewFlowVersion w = v;
  w.idempotency_key.reset();
  w.artifact_sha256 = sha256_hex("bytes 2");
  expect_new_version(w, "hash");
  w.artifact_uri = "file:///flows/etl-2";
  expect_new_version(w, "uri");
  w.description_json = R"({"name":"etl","tasks":[{"name":"t"}]})";
  expect_new_version(w, "description");
  w.labels = {"a"};
  expect_new_version(w, "labels");
  w.schedule_json = R"({"cron":"5 * * * *"})";
  expect_new_version(w, "schedule");
  w.schedule_active = false;
  expect_new_version(w, "schedule activity");
  w.max_run_retries = 2;
  expect_new_version(w, "max_run_retries");
  w.artifact_kind = "yaml";
  expect_new_version(w, "artifact kind");
  // Identical to the latest now: no new version.
  auto same = store_->register_flow(w);
  ASSERT_TRUE(same.is_ok());
  EXPECT_TRUE(same->reused);
  EXPECT_EQ(same->version, expected_version);
  // The first version's content again: not the latest, so a new version.
  v.idempotency_key.reset();
  expect_new_version(v, "an older version's content");
}

// Each version keeps the kind of its artifact; a registration that names none is a
// flow binary's.
TEST_P(StoreTest, FlowVersionsKeepTheirArtifactKind) {
  Flow binary = register_flow("etl");
  EXPECT_EQ(binary.artifact_kind, "binary");
  NewFlowVersion v;
  v.project = "default";
  v.name = "nightly";
  v.artifact_uri = "file:///flows/nightly.yaml";
  v.artifact_sha256 = sha256_hex("nightly");
  v.artifact_kind = "yaml";
  auto yaml = store_->register_flow(v);
  ASSERT_TRUE(yaml.is_ok()) << yaml.status().to_string();
  EXPECT_EQ(yaml->artifact_kind, "yaml");
  EXPECT_EQ(store_->get_flow(yaml->id)->artifact_kind, "yaml");
  EXPECT_EQ(store_->get_flow(binary.id)->artifact_kind, "binary");
  auto listed = store_->list_flows(yaml->project_id, true);
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 2u);
  for (const auto& f : *listed) EXPECT_EQ(f.artifact_kind, f.name == "nightly" ? "yaml" : "binary") << f.name;
}

// A Submitted run its agent reported starting is left out of the stale submissions while
// that agent heartbeats (and is not stopped); without the cutoff every stale one is listed.
TEST_P(StoreTest, StaleSubmissionsLeaveOutRunsTheirLiveAgentReportedStarting) {
  Flow f = register_flow("etl");
  auto agent = store_->register_agent({"a1", "ecs", {}});
  ASSERT_TRUE(agent.is_ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    NewFlowRun n;
    n.flow_id = f.id;
    ids.push_back(store_->create_flow_run(n)->first.id);
  }
  ClaimRequest c;
  c.agent_id = agent->id;
  c.now = clock_.now();
  c.max = 10;
  ASSERT_EQ(store_->claim_runs(c)->size(), 2u);
  ASSERT_TRUE(store_->set_flow_run_infrastructure(ids[0], agent->id, "ecs-task", "arn:1", clock_.now()).is_ok());
  clock_.advance(seconds(100));
  ASSERT_TRUE(store_->heartbeat_agent(agent->id, clock_.now()).is_ok());
  auto ids_of = [](const Result<std::vector<FlowRun>>& runs) {
    std::set<std::string> out;
    for (const auto& r : *runs) out.insert(r.id);
    return out;
  };
  auto all = store_->find_stale_submitted_runs(clock_.now() - seconds(60));
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  EXPECT_EQ(ids_of(all), (std::set<std::string>{ids[0], ids[1]}));
  auto alive = store_->find_stale_submitted_runs(clock_.now() - seconds(60), 1000, clock_.now() - seconds(30));
  ASSERT_TRUE(alive.is_ok()) << alive.status().to_string();
  EXPECT_EQ(ids_of(alive), (std::set<std::string>{ids[1]}));
  auto silent = store_->find_stale_submitted_runs(clock_.now() - seconds(60), 1000, clock_.now() + seconds(1));
  EXPECT_EQ(ids_of(silent), (std::set<std::string>{ids[0], ids[1]}));
  ASSERT_TRUE(store_->deregister_agent(agent->id, clock_.now()).is_ok());
  auto stopped = store_->find_stale_submitted_runs(clock_.now() - seconds(60), 1000, clock_.now() - seconds(30));
  EXPECT_EQ(ids_of(stopped), (std::set<std::string>{ids[0], ids[1]}));
}

TEST_P(StoreTest, RegisterIntoAMissingProjectCanBeRefused) {
  NewFlowVersion v;
  v.project = "missing";
  v.name = "etl";
  v.create_project_if_missing = false;
  EXPECT_EQ(store_->register_flow(v).status().code(), StatusCode::kNotFound);
  v.name = "";
  EXPECT_EQ(store_->register_flow(v).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, Schedules) {
  NewFlowVersion v;
  v.project = "p";
  v.name = "nightly";
  v.schedule_json = R"({"type":"cron","cron":"0 6 * * *","timezone":"UTC"})";
  auto v1 = store_->register_flow(v);
  ASSERT_TRUE(v1.is_ok());
  EXPECT_TRUE(v1->schedule_active);
  EXPECT_EQ(v1->schedule_json, v.schedule_json);
  Flow plain = register_flow("plain", {}, "p");
  EXPECT_FALSE(plain.schedule_active);
  EXPECT_EQ(store_->set_schedule_active(plain.id, true).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->set_schedule_active("nope", true).code(), StatusCode::kNotFound);

  auto scheduled = store_->list_scheduled_flows();
  ASSERT_EQ(scheduled->size(), 1u);
  EXPECT_EQ((*scheduled)[0].id, v1->id);
  ASSERT_TRUE(store_->set_schedule_active(v1->id, false).is_ok());
  EXPECT_TRUE(store_->list_scheduled_flows()->empty());
  ASSERT_TRUE(store_->set_schedule_active(v1->id, true).is_ok());
  // A new version takes over the schedule; the archived one is no longer listed.
  auto v2 = store_->register_flow(v);
  scheduled = store_->list_scheduled_flows();
  ASSERT_EQ(scheduled->size(), 1u);
  EXPECT_EQ((*scheduled)[0].id, v2->id);
}

TEST_P(StoreTest, CreateRunDefaultsLabelsAndHistory) {
  Flow f = register_flow("etl", {"gpu"});
  FlowRun inherit = create_run(f.id);
  EXPECT_EQ(inherit.labels, (std::vector<std::string>{"gpu"}));
  EXPECT_EQ(inherit.state, State::kScheduled);
  EXPECT_EQ(inherit.version, 1);
  EXPECT_EQ(inherit.flow_name, "etl");
  EXPECT_EQ(inherit.flow_version, 1);
  EXPECT_EQ(inherit.project_id, f.project_id);
  EXPECT_EQ(inherit.scheduled_start_time, clock_.now());
  EXPECT_EQ(inherit.parameters_json, "{}");
  EXPECT_EQ(create_run(f.id, std::vector<std::string>{}).labels, std::vector<std::string>{});
  EXPECT_EQ(create_run(f.id, std::vector<std::string>{"z", "x"}).labels, (std::vector<std::string>{"x", "z"}));
  FlowRun pending = create_run(f.id, std::nullopt, std::nullopt, State::kPending);
  EXPECT_EQ(pending.state, State::kPending);

  NewFlowRun bad;
  bad.flow_id = f.id;
  bad.initial_state = State::kRunning;
  EXPECT_EQ(store_->create_flow_run(bad).status().code(), StatusCode::kInvalidArgument);
  bad.initial_state = State::kScheduled;
  bad.flow_id = "nope";
  EXPECT_EQ(store_->create_flow_run(bad).status().code(), StatusCode::kNotFound);

  auto history = store_->get_flow_run_history(inherit.id);
  ASSERT_TRUE(history.is_ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_FALSE((*history)[0].from_state.has_value());
  EXPECT_EQ((*history)[0].state, State::kScheduled);
  EXPECT_EQ((*history)[0].version, 1);
  EXPECT_EQ(store_->get_flow_run("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->get_flow_run_history("nope").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreTest, RunIdempotencyKeyIsUniquePerFlow) {
  Flow f = register_flow("etl");
  Flow g = register_flow("other");
  NewFlowRun r;
  r.flow_id = f.id;
  r.idempotency_key = f.id + ":2026-01-01T06:00:00Z";
  r.parameters_json = R"({"rows":1})";
  auto first = store_->create_flow_run(r);
  ASSERT_TRUE(first.is_ok());
  EXPECT_TRUE(first->second);
  r.parameters_json = R"({"rows":2})";
  auto again = store_->create_flow_run(r);
  ASSERT_TRUE(again.is_ok());
  EXPECT_FALSE(again->second);
  EXPECT_EQ(again->first.id, first->first.id);
  EXPECT_EQ(again->first.parameters_json, R"({"rows":1})");
  r.flow_id = g.id;
  auto other = store_->create_flow_run(r);
  ASSERT_TRUE(other.is_ok());
  EXPECT_TRUE(other->second);
  EXPECT_NE(other->first.id, first->first.id);
}

TEST_P(StoreTest, ConcurrentCreatesWithOneIdempotencyKeyMakeOneRun) {
  Flow f = register_flow("etl");
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> ids;
  int created = 0;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      auto s = open();
      if (!s) return;
      NewFlowRun r;
      r.flow_id = f.id;
      r.idempotency_key = "same";
      for (int k = 0; k < 5; ++k) {
        auto c = s->create_flow_run(r);
        ASSERT_TRUE(c.is_ok()) << c.status().to_string();
        std::lock_guard<std::mutex> l(mu);
        ids.insert(c->first.id);
        created += c->second ? 1 : 0;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(created, 1);
}

// Every (from, to) pair: the store applies exactly the rule of check_flow_run_transition.
TEST_P(StoreTest, EveryTransitionFollowsTheRules) {
  Flow f = register_flow("etl");
  int legal = 0, illegal = 0;
  for (State from : kAllStates) {
    if (from == State::kCached || from == State::kSkipped || from == State::kTriggerFailed) continue;
    for (State to : kAllStates) {
      FlowRun run = run_in_state(f.id, from);
      ASSERT_EQ(run.state, from);
      auto r = set_state(run.id, to);
      Status expected = check_flow_run_transition(from, to);
      if (expected.is_ok()) {
        ++legal;
        ASSERT_TRUE(r.is_ok()) << state_name(from) << " -> " << state_name(to) << ": " << r.status().to_string();
        EXPECT_EQ(r->state, to);
        EXPECT_EQ(r->version, run.version + 1);
        EXPECT_EQ(store_->get_flow_run(run.id)->state, to);
      } else {
        ++illegal;
        ASSERT_FALSE(r.is_ok()) << state_name(from) << " -> " << state_name(to);
        EXPECT_EQ(r.status().code(), StatusCode::kConflict);
        EXPECT_THAT(r.status().message(), HasSubstr(state_name(from)));
        EXPECT_THAT(r.status().message(), HasSubstr(state_name(to)));
        auto now = store_->get_flow_run(run.id);
        EXPECT_EQ(now->state, from);  // unchanged
        EXPECT_EQ(now->version, run.version);
      }
    }
  }
  EXPECT_GT(legal, 30);
  EXPECT_GT(illegal, 60);
  // The per-state counts (metrics) followed every change, and no refused one.
  std::map<State, int64_t> actual, counted;
  FlowRunQuery q;
  q.limit = 1000;
  auto page = store_->list_flow_runs(q);
  ASSERT_TRUE(page.is_ok());
  ASSERT_TRUE(page->next_cursor.empty());
  for (const auto& r : page->runs) actual[r.state]++;
  auto counts = store_->count_runs_by_state();
  ASSERT_TRUE(counts.is_ok());
  for (const auto& c : *counts) counted[c.state] = c.count;
  EXPECT_EQ(counted, actual);
}

TEST_P(StoreTest, KnownTransitionsAndTheirMessages) {
  Flow f = register_flow("etl");
  FlowRun done = run_in_state(f.id, State::kSuccess);
  auto back = set_state(done.id, State::kRunning);
  ASSERT_EQ(back.status().code(), StatusCode::kConflict);
  EXPECT_THAT(back.status().message(), HasSubstr("from Success to Running"));
  FlowRun running = run_in_state(f.id, State::kRunning);
  EXPECT_EQ(set_state(running.id, State::kScheduled).status().code(), StatusCode::kConflict);
  EXPECT_EQ(set_state(running.id, State::kCached).status().code(), StatusCode::kConflict);
  EXPECT_TRUE(set_state(running.id, State::kCancelling).is_ok());
  EXPECT_TRUE(set_state(running.id, State::kCancelled).is_ok());
  EXPECT_EQ(set_state("nope", State::kRunning).status().code(), StatusCode::kNotFound);
}

TEST_P(StoreTest, StateChangeSideEffectsAndHistory) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  SysTime t0 = clock_.now();
  ASSERT_TRUE(store_->claim_runs({"agent-1", {}, 1, t0, {}}).is_ok());
  clock_.advance(seconds(5));
  auto running = set_state(run.id, State::kRunning);
  ASSERT_TRUE(running.is_ok());
  EXPECT_EQ(running->run_count, 1);
  EXPECT_EQ(running->start_time, clock_.now());
  EXPECT_EQ(running->heartbeat_at, clock_.now());
  EXPECT_EQ(running->agent_id, "agent-1");
  EXPECT_EQ(running->submitted_at, t0);
  EXPECT_EQ(running->version, 3);
  EXPECT_FALSE(running->end_time.has_value());
  clock_.advance(seconds(5));
  auto failed = set_state(run.id, State::kFailed);
  EXPECT_EQ(failed->end_time, clock_.now());
  // Not without force; with force back to Scheduled (a retry), clearing the claim.
  EXPECT_EQ(set_state(run.id, State::kScheduled).status().code(), StatusCode::kConflict);
  clock_.advance(seconds(5));
  auto retried = set_state(run.id, State::kScheduled, std::nullopt, /*forced=*/true);
  ASSERT_TRUE(retried.is_ok());
  EXPECT_FALSE(retried->agent_id.has_value());
  EXPECT_FALSE(retried->end_time.has_value());
  EXPECT_FALSE(retried->submitted_at.has_value());
  // Each attempt has its own start and end: the retry clears the first attempt's (its
  // FlowRunAttempt keeps them), the second attempt's Running sets its own.
  EXPECT_FALSE(retried->start_time.has_value());
  EXPECT_EQ(retried->run_count, 1);
  ASSERT_TRUE(store_->claim_runs({"agent-2", {}, 1, clock_.now(), {}}).is_ok());
  clock_.advance(seconds(5));
  auto again = set_state(run.id, State::kRunning);
  EXPECT_EQ(again->run_count, 2);
  EXPECT_EQ(again->agent_id, "agent-2");
  EXPECT_EQ(again->start_time, clock_.now());
  EXPECT_FALSE(again->end_time.has_value());
  EXPECT_EQ(store_->get_flow_run(run.id)->start_time, clock_.now());
  auto attempts = store_->list_flow_run_attempts(run.id);
  ASSERT_TRUE(attempts.is_ok()) << attempts.status().to_string();
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].start_time, t0 + seconds(5));
  EXPECT_EQ((*attempts)[0].end_time, t0 + seconds(10));
  EXPECT_EQ((*attempts)[1].start_time, t0 + seconds(20));
  EXPECT_EQ((*attempts)[1].end_time, std::nullopt);

  auto h = store_->get_flow_run_history(run.id);
  ASSERT_TRUE(h.is_ok());
  std::vector<State> states;
  for (const auto& c : *h) states.push_back(c.state);
  EXPECT_EQ(states, (std::vector<State>{State::kScheduled, State::kSubmitted, State::kRunning, State::kFailed,
                                        State::kScheduled, State::kSubmitted, State::kRunning}));
  EXPECT_EQ((*h)[1].from_state, State::kScheduled);
  EXPECT_EQ((*h)[1].agent_id, "agent-1");
  EXPECT_TRUE((*h)[4].forced);
  for (size_t i = 0; i < h->size(); ++i) EXPECT_EQ((*h)[i].version, static_cast<int64_t>(i) + 1);
  EXPECT_EQ((*h)[3].message, "to Failed");
}

TEST_P(StoreTest, StaleExpectedVersionIsAConflict) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  auto ok = set_state(run.id, State::kPending, /*expected=*/1);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->version, 2);
  auto stale = set_state(run.id, State::kSubmitted, /*expected=*/1);
  ASSERT_EQ(stale.status().code(), StatusCode::kConflict);
  EXPECT_THAT(stale.status().message(), HasSubstr("stale version"));
  EXPECT_THAT(stale.status().message(), HasSubstr("Pending"));
  EXPECT_EQ(store_->get_flow_run(run.id)->state, State::kPending);
  EXPECT_TRUE(set_state(run.id, State::kSubmitted, 2).is_ok());
}

TEST_P(StoreTest, ConcurrentWritersWithOneExpectedVersionOneWins) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  std::atomic<int> won{0}, conflicts{0};
  std::vector<std::thread> threads;
  const State targets[] = {State::kSuccess, State::kFailed, State::kCrashed, State::kCancelled,
                           State::kTimedOut, State::kRetrying};
  for (State target : targets)
    threads.emplace_back([&, target] {
      auto s = open();
      if (!s) return;
      SetFlowRunState c;
      c.run_id = run.id;
      c.state = target;
      c.expected_version = run.version;
      c.now = clock_.now();
      auto r = s->set_flow_run_state(c);
      if (r) won++;
      else if (r.status().code() == StatusCode::kConflict) conflicts++;
      else ADD_FAILURE() << r.status().to_string();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(won, 1);
  EXPECT_EQ(conflicts, 5);
  EXPECT_EQ(store_->get_flow_run(run.id)->version, run.version + 1);
  EXPECT_EQ(store_->get_flow_run_history(run.id)->size(), static_cast<size_t>(run.version + 1));
}

TEST_P(StoreTest, HeartbeatAndLiveness) {
  Flow f = register_flow("etl");
  FlowRun a = run_in_state(f.id, State::kRunning);
  FlowRun b = run_in_state(f.id, State::kRunning);
  FlowRun sub = run_in_state(f.id, State::kSubmitted);
  FlowRun cancelling = run_in_state(f.id, State::kCancelling);
  clock_.advance(seconds(30));
  auto hb = store_->heartbeat_flow_run(a.id, clock_.now());
  ASSERT_TRUE(hb.is_ok());
  EXPECT_EQ(hb->heartbeat_at, clock_.now());
  EXPECT_EQ(hb->state, State::kRunning);
  EXPECT_EQ(store_->heartbeat_flow_run("nope", clock_.now()).status().code(), StatusCode::kNotFound);
  clock_.advance(seconds(1));
  auto stale = store_->find_stale_running_runs(clock_.now() - seconds(20));
  ASSERT_TRUE(stale.is_ok());
  std::set<std::string> ids;
  for (const auto& r : *stale) ids.insert(r.id);
  EXPECT_EQ(ids, (std::set<std::string>{b.id, cancelling.id}));
  auto subs = store_->find_stale_submitted_runs(clock_.now() - seconds(20));
  ASSERT_EQ(subs->size(), 1u);
  EXPECT_EQ((*subs)[0].id, sub.id);
  EXPECT_TRUE(store_->find_stale_submitted_runs(clock_.now() - seconds(60))->empty());
  EXPECT_EQ(store_->find_stale_running_runs(clock_.now(), 1)->size(), 1u);
}

TEST_P(StoreTest, ClaimTakesDueRunsOldestFirstAndSubmitsThem) {
  Flow f = register_flow("etl");
  SysTime now = clock_.now();
  FlowRun later = create_run(f.id, std::nullopt, now + seconds(60));
  FlowRun second = create_run(f.id, std::nullopt, now - seconds(10));
  FlowRun first = create_run(f.id, std::nullopt, now - seconds(20));
  FlowRun pending = create_run(f.id, std::nullopt, now - seconds(5), State::kPending);
  FlowRun running = run_in_state(f.id, State::kRunning);
  auto got = store_->claim_runs({"agent-1", {}, 2, now, {}});
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].id, first.id);
  EXPECT_EQ((*got)[1].id, second.id);
  for (const auto& r : *got) {
    EXPECT_EQ(r.state, State::kSubmitted);
    EXPECT_EQ(r.agent_id, "agent-1");
    EXPECT_EQ(r.submitted_at, now);
    EXPECT_EQ(r.version, 2);
  }
  auto rest = store_->claim_runs({"agent-1", {}, 10, now, {}});
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].id, pending.id);
  EXPECT_TRUE(store_->claim_runs({"agent-1", {}, 10, now, {}})->empty());
  // Once due, the later run is taken.
  auto due = store_->claim_runs({"agent-2", {}, 10, now + seconds(60), {}});
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].id, later.id);
  auto h = store_->get_flow_run_history(first.id);
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[1].state, State::kSubmitted);
  EXPECT_EQ((*h)[1].agent_id, "agent-1");
  EXPECT_EQ(store_->get_flow_run(running.id)->state, State::kRunning);
  EXPECT_EQ(store_->claim_runs({"agent-1", {}, 0, now, {}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->claim_runs({"", {}, 1, now, {}}).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, ClaimFollowsTheLabelRule) {
  Flow f = register_flow("etl");
  SysTime now = clock_.now();
  FlowRun gpu = create_run(f.id, std::vector<std::string>{"gpu"});
  FlowRun gpu_eu = create_run(f.id, std::vector<std::string>{"eu", "gpu"});
  FlowRun none = create_run(f.id, std::vector<std::string>{});
  auto claim_ids = [&](std::vector<std::string> labels) {
    std::set<std::string> ids;
    auto r = store_->claim_runs({"a", std::move(labels), 10, now, {}});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (r)
      for (const auto& run : *r) ids.insert(run.id);
    return ids;
  };
  EXPECT_EQ(claim_ids({"cpu"}), (std::set<std::string>{none.id}));  // only the unlabelled run
  EXPECT_EQ(claim_ids({"cpu"}), std::set<std::string>{});
  EXPECT_EQ(claim_ids({"gpu", "cpu"}), (std::set<std::string>{gpu.id}));  // not gpu+eu
  EXPECT_EQ(claim_ids({"gpu", "eu", "x"}), (std::set<std::string>{gpu_eu.id}));
  // A run with no labels goes to an agent with none, too.
  FlowRun none2 = create_run(f.id, std::vector<std::string>{});
  create_run(f.id, std::vector<std::string>{"gpu"});
  EXPECT_EQ(claim_ids({}), (std::set<std::string>{none2.id}));
}

TEST_P(StoreTest, ABacklogNoAgentCoversDoesNotHideClaimableRuns) {
  Flow f = register_flow("etl");
  SysTime now = clock_.now();
  for (int i = 0; i < 300; ++i)
    create_run(f.id, std::vector<std::string>{"uncovered-" + std::to_string(i % 30)}, now - seconds(1000 - i));
  std::set<std::string> want;
  for (int i = 0; i < 3; ++i) want.insert(create_run(f.id, std::vector<std::string>{"ok"}).id);
  auto got = store_->claim_runs({"a", {"ok"}, 10, now, {}});
  ASSERT_TRUE(got.is_ok());
  std::set<std::string> ids;
  for (const auto& r : *got) ids.insert(r.id);
  EXPECT_EQ(ids, want);
}

TEST_P(StoreTest, ClaimAcrossManyCoveredLabelSetsTakesTheOldestDue) {
  // More covered label sets than the per-set path handles: one IN (...) query.
  Flow f = register_flow("etl");
  SysTime now = clock_.now();
  std::vector<std::string> agent_labels;
  std::vector<std::string> oldest;
  for (int i = 0; i < 40; ++i) {
    std::string label = "l" + std::to_string(i);
    agent_labels.push_back(label);
    FlowRun r = create_run(f.id, std::vector<std::string>{label}, now - seconds(100 - i));
    if (i < 5) oldest.push_back(r.id);
  }
  create_run(f.id, std::vector<std::string>{"other"}, now - seconds(1000));
  auto got = store_->claim_runs({"a", agent_labels, 5, now, {}});
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  std::vector<std::string> ids;
  for (const auto& r : *got) ids.push_back(r.id);
  EXPECT_EQ(ids, oldest);
  EXPECT_EQ(store_->claim_runs({"a", agent_labels, 100, now, {}})->size(), 35u);
}

TEST_P(StoreTest, ClaimIssuesRunTokensInTheSameTransaction) {
  Flow f = register_flow("etl");
  create_run(f.id);
  create_run(f.id);
  ClaimRequest req{"agent-1", {}, 5, clock_.now(), {}};
  std::vector<std::string> secrets;
  req.run_token = [&](const FlowRun& run) {
    secrets.push_back("secret-" + run.id);
    NewToken t;
    t.name = "run " + run.id;
    t.scope = "run";
    t.flow_run_id = run.id;
    t.hash = sha256_hex(secrets.back());
    return t;
  };
  auto got = store_->claim_runs(req);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), 2u);
  for (size_t i = 0; i < got->size(); ++i) {
    auto t = store_->find_token_by_hash(sha256_hex("secret-" + (*got)[i].id));
    ASSERT_TRUE(t.is_ok());
    EXPECT_EQ(t->scope, "run");
    EXPECT_EQ(t->flow_run_id, (*got)[i].id);
  }
  // A failing token (unknown scope) fails the whole claim: nothing is claimed.
  create_run(f.id);
  req.run_token = [](const FlowRun&) { return NewToken{"", "x", "bogus", "h", std::nullopt, std::nullopt}; };
  EXPECT_EQ(store_->claim_runs(req).status().code(), StatusCode::kInvalidArgument);
  req.run_token = nullptr;
  EXPECT_EQ(store_->claim_runs(req)->size(), 1u);
}

TEST_P(StoreTest, ConcurrentClaimersTakeEveryRunExactlyOnce) {
  Flow f = register_flow("etl");
  constexpr int kRuns = 2000;
  for (int i = 0; i < kRuns; ++i) create_run(f.id, std::nullopt, clock_.now() - milliseconds(i));
  SysTime now = clock_.now();
  std::mutex mu;
  std::map<std::string, int> claimed;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      auto s = open();
      if (!s) return;
      SeededRandom rnd(t);
      for (;;) {
        int max = 1 + static_cast<int>(rnd.next_u64() % 5);
        auto got = s->claim_runs({"agent-" + std::to_string(t), {}, max, now, {}});
        ASSERT_TRUE(got.is_ok()) << got.status().to_string();
        if (got->empty()) break;
        std::lock_guard<std::mutex> l(mu);
        for (const auto& r : *got) claimed[r.id]++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kRuns));
  for (const auto& [id, n] : claimed) ASSERT_EQ(n, 1) << id;
  auto counts = store_->count_runs_by_state();
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].state, State::kSubmitted);
  EXPECT_EQ((*counts)[0].count, kRuns);
}

TEST_P(StoreTest, TwoProcessesClaimEveryRunExactlyOnce) {
  Flow f = register_flow("etl");
  constexpr int kRuns = 2000;
  std::set<std::string> all;
  for (int i = 0; i < kRuns; ++i) all.insert(create_run(f.id).id);
  std::string now = std::to_string(to_unix_ms(clock_.now()));
  Child a = spawn({tool_path(), "claim", db_->url(), "agent-a", now});
  Child b = spawn({tool_path(), "claim", db_->url(), "agent-b", now});
  ASSERT_NE(a.out, nullptr);
  ASSERT_NE(b.out, nullptr);
  std::map<std::string, int> claimed;
  std::map<std::string, int> per_process;
  // Drain both pipes (alternating is not needed: each child writes little and the
  // pipe buffers hold it, but read b on a thread to be safe).
  std::vector<std::string> lines_b;
  std::thread tb([&] {
    std::string line;
    while (read_line(b.out, &line)) lines_b.push_back(line);
  });
  std::string line;
  while (read_line(a.out, &line)) {
    claimed[line]++;
    per_process["a"]++;
  }
  tb.join();
  for (const auto& l : lines_b) {
    claimed[l]++;
    per_process["b"]++;
  }
  fclose(a.out);
  fclose(b.out);
  int sa = wait_child(a.pid), sb = wait_child(b.pid);
  EXPECT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
  EXPECT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);
  EXPECT_EQ(claimed.size(), all.size());
  for (const auto& [id, n] : claimed) {
    ASSERT_EQ(n, 1) << id;
    ASSERT_TRUE(all.count(id)) << id;
  }
  auto counts = store_->count_runs_by_state();
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].count, kRuns);
}

// Many runs created in one (simulated) millisecond: listing pages through all of them
// newest first in creation order (the id breaks the tie on `created`, and ids of one
// process increase), with no duplicates or gaps, past the largest page and with small
// pages, and a run created while paging does not disturb the pages after the cursor.
TEST_P(StoreTest, RunsCreatedInOneMillisecondPageInCreationOrderPastAnyCount) {
  Flow f = register_flow("etl");
  Flow g = register_flow("other");
  constexpr int kRuns = 2100;  // more than two pages of the largest page size (1000)
  std::vector<std::string> of_f, all;  // in creation order
  for (int i = 0; i < kRuns; ++i) {
    of_f.push_back(create_run(f.id).id);
    all.push_back(of_f.back());
    if (i % 10 == 0) all.push_back(create_run(g.id).id);
  }
  for (const auto& id : all) ASSERT_EQ(store_->get_flow_run(id)->created, store_->get_flow_run(all[0])->created);
  auto page_through = [&](FlowRunQuery q, std::vector<size_t>* sizes = nullptr) {
    std::vector<std::string> got;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = store_->list_flow_runs(q);
      EXPECT_TRUE(page.is_ok()) << page.status().to_string();
      if (!page) break;
      if (sizes) sizes->push_back(page->runs.size());
      for (const auto& r : page->runs) got.push_back(r.id);
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
    }
    return got;
  };
  auto newest_first = [](std::vector<std::string> ids) {
    std::reverse(ids.begin(), ids.end());
    return ids;
  };

  FlowRunQuery by_flow;
  by_flow.flow_id = f.id;
  by_flow.limit = 1000;
  std::vector<size_t> sizes;
  EXPECT_EQ(page_through(by_flow, &sizes), newest_first(of_f));
  EXPECT_EQ(sizes, (std::vector<size_t>{1000, 1000, 100}));
  // The same order again (deterministic), and with pages of 7 over every run.
  EXPECT_EQ(page_through(by_flow), newest_first(of_f));
  FlowRunQuery small;
  small.limit = 7;
  std::vector<std::string> got = page_through(small);
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size()) << "duplicates";
  EXPECT_EQ(got, newest_first(all));
  small.project_id = f.project_id;
  EXPECT_EQ(page_through(small), newest_first(all));

  // A run created between two pages (a millisecond later) is newer than the cursor: the
  // next pages are still exactly the rest.
  FlowRunQuery q;
  q.flow_id = f.id;
  q.limit = 1000;
  auto first = store_->list_flow_runs(q);
  ASSERT_TRUE(first.is_ok());
  clock_.advance(milliseconds(1));
  std::string newer = create_run(f.id).id;
  q.cursor = first->next_cursor;
  std::vector<std::string> rest = page_through(q);
  std::vector<std::string> expected = newest_first(of_f);
  expected.erase(expected.begin(), expected.begin() + 1000);
  EXPECT_EQ(rest, expected);
  EXPECT_EQ(store_->list_flow_runs(by_flow)->runs.at(0).id, newer);
}

TEST_P(StoreTest, KeysetPaginationNewestFirst) {
  Flow f = register_flow("etl");
  Flow g = register_flow("other");
  std::vector<std::string> expected;  // runs of f, newest first
  for (int i = 0; i < 110; ++i) {
    if (i % 3 == 0) clock_.advance(milliseconds(1));  // ties on `created` are broken by id
    expected.push_back(create_run(f.id).id);
    if (i % 10 == 0) create_run(g.id);
  }
  // Sort by (created desc, id desc) as the store promises.
  std::vector<FlowRun> runs;
  for (const auto& id : expected) runs.push_back(*store_->get_flow_run(id));
  std::sort(runs.begin(), runs.end(), [](const FlowRun& a, const FlowRun& b) {
    return std::tie(a.created, a.id) > std::tie(b.created, b.id);
  });
  std::vector<std::string> got;
  FlowRunQuery q;
  q.flow_id = f.id;
  q.limit = 50;
  std::vector<size_t> sizes;
  for (;;) {
    auto page = store_->list_flow_runs(q);
    ASSERT_TRUE(page.is_ok()) << page.status().to_string();
    sizes.push_back(page->runs.size());
    for (const auto& r : page->runs) got.push_back(r.id);
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{50, 50, 10}));
  ASSERT_EQ(got.size(), runs.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], runs[i].id) << i;

  FlowRunQuery all;
  all.limit = 1000;
  EXPECT_EQ(store_->list_flow_runs(all)->runs.size(), 121u);
  all.project_id = f.project_id;
  EXPECT_EQ(store_->list_flow_runs(all)->runs.size(), 121u);
  all.project_id = "none";
  EXPECT_TRUE(store_->list_flow_runs(all)->runs.empty());

  ASSERT_TRUE(set_state(runs[5].id, State::kPending).is_ok());
  ASSERT_TRUE(set_state(runs[7].id, State::kPending).is_ok());
  FlowRunQuery pending;
  pending.flow_id = f.id;
  pending.states = {State::kPending};
  pending.limit = 1;
  auto p1 = store_->list_flow_runs(pending);
  ASSERT_EQ(p1->runs.size(), 1u);
  EXPECT_EQ(p1->runs[0].id, runs[5].id);
  pending.cursor = p1->next_cursor;
  auto p2 = store_->list_flow_runs(pending);
  ASSERT_EQ(p2->runs.size(), 1u);
  EXPECT_EQ(p2->runs[0].id, runs[7].id);
  EXPECT_TRUE(p2->next_cursor.empty());

  FlowRunQuery bad;
  bad.cursor = "garbage";
  EXPECT_EQ(store_->list_flow_runs(bad).status().code(), StatusCode::kInvalidArgument);
  bad.cursor.clear();
  bad.limit = 0;
  EXPECT_EQ(store_->list_flow_runs(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, AutoScheduledRuns) {
  Flow f = register_flow("etl");
  EXPECT_FALSE(store_->latest_auto_scheduled_start(f.id)->has_value());
  SysTime t = clock_.now();
  for (int h = 1; h <= 3; ++h) {
    NewFlowRun r;
    r.flow_id = f.id;
    r.auto_scheduled = true;
    r.scheduled_start_time = t + std::chrono::hours(h);
    r.idempotency_key = f.id + ":" + format_rfc3339(*r.scheduled_start_time);
    ASSERT_TRUE(store_->create_flow_run(r).is_ok());
  }
  create_run(f.id, std::nullopt, t + std::chrono::hours(10));  // manual: not counted
  auto latest = store_->latest_auto_scheduled_start(f.id);
  ASSERT_TRUE(latest.is_ok());
  EXPECT_EQ(*latest, t + std::chrono::hours(3));
  int auto_runs = 0;
  auto page = store_->list_flow_runs({f.id, {}, {}, 50, ""});
  ASSERT_TRUE(page.is_ok());
  for (const auto& r : page->runs) auto_runs += r.auto_scheduled;
  EXPECT_EQ(auto_runs, 3);
}

TEST_P(StoreTest, TaskRunBatchesUpsert) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  SysTime t = clock_.now();
  std::vector<TaskRunUpdate> batch;
  batch.push_back({run.id, "extract", -1, State::kRunning, "", 1, t});
  for (int i = 0; i < 3; ++i) batch.push_back({run.id, "load", i, State::kPending, "", std::nullopt, t});
  auto ids = store_->upsert_task_runs(batch);
  ASSERT_TRUE(ids.is_ok()) << ids.status().to_string();
  ASSERT_EQ(ids->size(), 4u);
  EXPECT_EQ(std::set<std::string>(ids->begin(), ids->end()).size(), 4u);

  auto later = t + seconds(2);
  auto again = store_->upsert_task_runs({{run.id, "extract", -1, State::kSuccess, "done", std::nullopt, later},
                                         {run.id, "load", 1, State::kRunning, "", 2, later}});
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ((*again)[0], (*ids)[0]);
  EXPECT_EQ((*again)[1], (*ids)[2]);
  // An older update is ignored but still answers with the id.
  auto old = store_->upsert_task_runs({{run.id, "extract", -1, State::kRunning, "late", 5, t}});
  ASSERT_TRUE(old.is_ok());
  EXPECT_EQ((*old)[0], (*ids)[0]);

  auto list = store_->list_task_runs(run.id);
  ASSERT_TRUE(list.is_ok());
  ASSERT_EQ(list->size(), 4u);
  const TaskRun& extract = (*list)[0];
  EXPECT_EQ(extract.task, "extract");
  EXPECT_EQ(extract.state, State::kSuccess);
  EXPECT_EQ(extract.message, "done");
  EXPECT_EQ(extract.attempts, 1);  // kept: the update carried none
  EXPECT_EQ(extract.start_time, t);
  EXPECT_EQ(extract.end_time, later);
  EXPECT_EQ(extract.updated, later);
  EXPECT_EQ((*list)[1].task, "load");
  EXPECT_EQ((*list)[1].map_index, 0);
  EXPECT_EQ((*list)[2].state, State::kRunning);
  EXPECT_EQ((*list)[2].attempts, 2);
  EXPECT_FALSE((*list)[2].end_time.has_value());
}

TEST_P(StoreTest, TaskRunBatchWithRepeatedKeysAppliesInOrder) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  SysTime t = clock_.now();
  std::vector<TaskRunUpdate> batch;
  // 300 mapped task runs (more than one multi-row statement), each going through three
  // states in the same batch, plus an out-of-order older update that must be ignored.
  for (State s : {State::kPending, State::kRunning, State::kSuccess}) {
    t += milliseconds(10);
    for (int i = 0; i < 300; ++i) batch.push_back({run.id, "map", i, s, state_name(s), std::nullopt, t});
  }
  batch.push_back({run.id, "map", 7, State::kFailed, "late", 9, t - milliseconds(15)});
  auto ids = store_->upsert_task_runs(batch);
  ASSERT_TRUE(ids.is_ok()) << ids.status().to_string();
  ASSERT_EQ(ids->size(), batch.size());
  EXPECT_EQ((*ids)[0], (*ids)[300]);
  EXPECT_EQ((*ids)[7], ids->back());
  auto list = store_->list_task_runs(run.id);
  ASSERT_EQ(list->size(), 300u);
  for (const auto& tr : *list) {
    EXPECT_EQ(tr.state, State::kSuccess);
    EXPECT_EQ(tr.message, "Success");
    EXPECT_EQ(tr.attempts, 0);
    EXPECT_EQ(tr.start_time, t - milliseconds(10));
    EXPECT_EQ(tr.end_time, t);
  }
}

TEST_P(StoreTest, TaskRunBatchIsAllOrNothing) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  auto r = store_->upsert_task_runs({{run.id, "a", -1, State::kRunning, "", 1, clock_.now()},
                                     {"missing-run", "b", -1, State::kRunning, "", 1, clock_.now()}});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("missing-run"));
  EXPECT_TRUE(store_->list_task_runs(run.id)->empty());
  EXPECT_EQ(store_->upsert_task_runs({{run.id, "", -1, State::kRunning, "", 1, clock_.now()}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->list_task_runs("missing-run").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->upsert_task_runs({})->empty());
}

TEST_P(StoreTest, AlikeMappedTaskRunsAreStoredAsRangesAndReadOneByOne) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  SysTime t = clock_.now();
  TaskRunUpdate first{run.id, "map", 0, State::kSuccess, "", 1, t};
  first.map_count = 5000;
  first.start_time = t - milliseconds(5);
  TaskRunUpdate second = first;
  second.map_index = 5000;
  second.timestamp = t + milliseconds(1);
  auto ids = store_->upsert_task_runs({first, second, {run.id, "extract", -1, State::kSuccess, "", 1, t}});
  ASSERT_TRUE(ids.is_ok()) << ids.status().to_string();
  ASSERT_EQ(ids->size(), 3u);
  EXPECT_EQ(count_rows("SELECT COUNT(*) FROM task_runs WHERE flow_run_id = ?", run.id), 3);

  auto list = store_->list_task_runs(run.id);
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 10001u);
  EXPECT_EQ((*list)[0].task, "extract");
  EXPECT_EQ((*list)[0].id, (*ids)[2]);
  std::set<std::string> distinct;
  std::vector<std::string> before;
  for (size_t i = 1; i < list->size(); ++i) {
    const TaskRun& tr = (*list)[i];
    EXPECT_EQ(tr.map_index, static_cast<int>(i - 1));
    EXPECT_EQ(tr.state, State::kSuccess);
    EXPECT_EQ(tr.attempts, 1);
    EXPECT_EQ(tr.start_time, t - milliseconds(5));
    EXPECT_EQ(tr.end_time, i <= 5000 ? t : t + milliseconds(1));
    distinct.insert(tr.id);
  }
  for (const auto& tr : *list) before.push_back(tr.id);
  EXPECT_EQ(distinct.size(), 10000u);
  EXPECT_EQ((*list)[1].id, (*ids)[0]);
  EXPECT_EQ((*list)[5001].id, (*ids)[1]);

  // One task run in the middle of a range changes: the range splits, no id changes.
  auto one = store_->upsert_task_runs({{run.id, "map", 4321, State::kFailed, "boom", 2, t + seconds(1)}});
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  EXPECT_EQ((*one)[0], before[4322]);
  EXPECT_EQ(count_rows("SELECT COUNT(*) FROM task_runs WHERE flow_run_id = ?", run.id), 5);
  list = store_->list_task_runs(run.id);
  ASSERT_EQ(list->size(), 10001u);
  for (size_t i = 0; i < list->size(); ++i) EXPECT_EQ((*list)[i].id, before[i]);
  EXPECT_EQ((*list)[4322].state, State::kFailed);
  EXPECT_EQ((*list)[4322].message, "boom");
  EXPECT_EQ((*list)[4322].attempts, 2);
  EXPECT_EQ((*list)[4322].start_time, t - milliseconds(5));
  EXPECT_EQ((*list)[4321].state, State::kSuccess);
  EXPECT_EQ((*list)[4323].state, State::kSuccess);

  // Bad ranges are refused.
  TaskRunUpdate bad{run.id, "extract", -1, State::kSuccess, "", 1, t};
  bad.map_count = 2;
  EXPECT_EQ(store_->upsert_task_runs({bad}).status().code(), StatusCode::kInvalidArgument);
  bad.map_index = 0;
  bad.map_count = 0;
  EXPECT_EQ(store_->upsert_task_runs({bad}).status().code(), StatusCode::kInvalidArgument);
  bad.map_index = kMaxMapIndex;
  bad.map_count = 2;
  EXPECT_EQ(store_->upsert_task_runs({bad}).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, OneBatchForTwoRunsWithTheSameTaskNames) {
  // As when the server commits the batches of several runs together.
  Flow f = register_flow("etl");
  FlowRun a = run_in_state(f.id, State::kRunning), b = run_in_state(f.id, State::kRunning);
  SysTime t = clock_.now();
  auto ids = store_->upsert_task_runs({{a.id, "extract", -1, State::kRunning, "", 1, t},
                                       {b.id, "extract", -1, State::kFailed, "b", 1, t},
                                       {a.id, "extract", -1, State::kSuccess, "a", 1, t + seconds(1)}});
  ASSERT_TRUE(ids.is_ok()) << ids.status().to_string();
  EXPECT_EQ((*ids)[0], (*ids)[2]);
  EXPECT_NE((*ids)[0], (*ids)[1]);
  auto la = store_->list_task_runs(a.id), lb = store_->list_task_runs(b.id);
  ASSERT_EQ(la->size(), 1u);
  ASSERT_EQ(lb->size(), 1u);
  EXPECT_EQ((*la)[0].id, (*ids)[0]);
  EXPECT_EQ((*la)[0].state, State::kSuccess);
  EXPECT_EQ((*la)[0].start_time, t);
  EXPECT_EQ((*lb)[0].id, (*ids)[1]);
  EXPECT_EQ((*lb)[0].message, "b");
}

TEST_P(StoreTest, TaskRunsWrittenBeforeRangesKeepTheirIds) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  // Put the database back to schema version 3, with the task runs table of that
  // version and two rows in it.
  {
    auto raw = raw_db();
    std::string v1 = detail::migrations(raw->dialect()).at(0).sql;
    size_t from = v1.find("CREATE TABLE task_runs");
    size_t to = v1.find(");", from);
    ASSERT_NE(from, std::string::npos);
    raw->begin(detail::TxMode::kWrite);
    raw->exec_script("DROP TABLE task_runs");
    raw->exec_script(v1.substr(from, to + 1 - from));
    for (auto [id, task, index] : {std::tuple{"old-a", "extract", -1}, std::tuple{"old-b", "map", 0}})
      raw->exec("INSERT INTO task_runs (id, flow_run_id, task, map_index, state, message, attempts, created, "
                "updated, start_time, end_time) VALUES (?, ?, ?, ?, 'Running', '', 1, 1000, 1000, 1000, NULL)",
                {std::string(id), run.id, std::string(task), int64_t{index}});
    // What the later versions added beside the task runs table.
    raw->exec_script("DROP TABLE task_run_history");
    raw->exec_script("DROP TABLE flow_run_attempts");
    raw->exec_script("ALTER TABLE logs DROP COLUMN run_attempt");
    raw->exec("DELETE FROM schema_migrations WHERE version IN (4, 5, 8)", {});
    raw->commit();
  }
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(*store_->schema_version(), latest_schema_version());
  auto list = store_->list_task_runs(run.id);
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "old-a");
  EXPECT_EQ((*list)[1].id, "old-b");
  EXPECT_EQ((*list)[1].start_time, from_unix_ms(1000));

  SysTime t = from_unix_ms(2000);
  TaskRunUpdate three{run.id, "map", 0, State::kSuccess, "", std::nullopt, t};
  three.map_count = 3;
  auto ids = store_->upsert_task_runs({{run.id, "extract", -1, State::kSuccess, "", std::nullopt, t}, three});
  ASSERT_TRUE(ids.is_ok()) << ids.status().to_string();
  EXPECT_EQ((*ids)[0], "old-a");
  EXPECT_EQ((*ids)[1], "old-b");
  list = store_->list_task_runs(run.id);
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0].state, State::kSuccess);
  EXPECT_EQ((*list)[1].id, "old-b");
  EXPECT_EQ((*list)[1].start_time, from_unix_ms(1000));
  EXPECT_EQ((*list)[1].state, State::kSuccess);
  EXPECT_NE((*list)[2].id, "old-b");
  EXPECT_EQ((*list)[2].start_time, std::nullopt);
  EXPECT_EQ((*list)[3].end_time, t);
}

// A Retrying task run shows why and when its next attempt starts; the task runs'
// history keeps every Retrying update after later states replaced it, once each.
TEST_P(StoreTest, RetryingTaskRunsShowTheirNextStartAndTheHistoryKeepsEveryRetry) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  const SysTime t0 = clock_.now();
  const std::string why = "503 from sensor API (retry 1/3 in 1s)";
  auto retrying = [&](const std::string& task, int map_index, int count, int attempt, SysTime at) {
    TaskRunUpdate u{run.id, task, map_index, State::kRetrying, why, attempt, at};
    u.map_count = count;
    u.next_start_time = at + seconds(1);
    return u;
  };
  ASSERT_TRUE(store_->upsert_task_runs({{run.id, "fetch", -1, State::kRunning, "", 1, t0},
                                        retrying("fetch", -1, 1, 1, t0 + milliseconds(10)),
                                        retrying("m", 0, 4, 1, t0 + milliseconds(10))})
                  .is_ok());
  auto list = store_->list_task_runs(run.id);
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 5u);
  EXPECT_EQ((*list)[0].task, "fetch");
  EXPECT_EQ((*list)[0].state, State::kRetrying);
  EXPECT_EQ((*list)[0].message, why);
  EXPECT_EQ((*list)[0].next_start_time, t0 + milliseconds(1010));
  for (size_t i = 1; i < 5; ++i) EXPECT_EQ((*list)[i].next_start_time, t0 + milliseconds(1010)) << i;

  // The next attempt runs and succeeds: the task run no longer names a next start.
  const SysTime t1 = t0 + milliseconds(1010);
  TaskRunUpdate m_done{run.id, "m", 0, State::kSuccess, "", 2, t1 + milliseconds(5)};
  m_done.map_count = 4;
  ASSERT_TRUE(store_->upsert_task_runs({{run.id, "fetch", -1, State::kRunning, "", 2, t1},
                                        {run.id, "fetch", -1, State::kSuccess, "", 2, t1 + milliseconds(5)},
                                        m_done})
                  .is_ok());
  // Sent again (a request that timed out but was applied): nothing is added. A Retrying
  // update older than the task run's latest state is kept in the history all the same.
  ASSERT_TRUE(store_->upsert_task_runs({retrying("fetch", -1, 1, 1, t0 + milliseconds(10)),
                                        retrying("other", -1, 1, 1, t0)})
                  .is_ok());
  ASSERT_TRUE(store_->upsert_task_runs({{run.id, "other", -1, State::kSuccess, "", 2, t1}}).is_ok());
  ASSERT_TRUE(store_->upsert_task_runs({retrying("other", -1, 1, 2, t0 + milliseconds(1))}).is_ok());
  list = store_->list_task_runs(run.id);
  ASSERT_TRUE(list.is_ok());
  ASSERT_EQ(list->size(), 6u);
  EXPECT_EQ((*list)[0].state, State::kSuccess);
  EXPECT_EQ((*list)[0].attempts, 2);
  EXPECT_EQ((*list)[0].start_time, t0);  // the first attempt's
  EXPECT_EQ((*list)[0].next_start_time, std::nullopt);
  EXPECT_EQ((*list)[1].state, State::kSuccess);
  EXPECT_EQ((*list)[1].next_start_time, std::nullopt);
  EXPECT_EQ((*list)[5].task, "other");
  EXPECT_EQ((*list)[5].state, State::kSuccess);

  auto history = store_->list_task_run_history(run.id, 0, 100);
  ASSERT_TRUE(history.is_ok()) << history.status().to_string();
  ASSERT_EQ(history->size(), 4u);
  const TaskRunHistoryEntry& h = (*history)[0];
  EXPECT_EQ(h.flow_run_id, run.id);
  EXPECT_EQ(h.task, "fetch");
  EXPECT_EQ(h.map_index, -1);
  EXPECT_EQ(h.map_count, 1);
  EXPECT_EQ(h.state, State::kRetrying);
  EXPECT_EQ(h.message, why);
  EXPECT_EQ(h.attempts, 1);
  EXPECT_EQ(h.run_attempt, 1);
  EXPECT_EQ(h.timestamp, t0 + milliseconds(10));
  EXPECT_EQ(h.next_start_time, t0 + milliseconds(1010));
  EXPECT_EQ((*history)[1].task, "m");
  EXPECT_EQ((*history)[1].map_index, 0);
  EXPECT_EQ((*history)[1].map_count, 4);
  EXPECT_EQ((*history)[2].task, "other");
  EXPECT_EQ((*history)[3].task, "other");
  EXPECT_EQ((*history)[3].attempts, 2);
  for (size_t i = 1; i < history->size(); ++i) EXPECT_GT((*history)[i].id, (*history)[i - 1].id);
  // Pages by id.
  auto page = store_->list_task_run_history(run.id, (*history)[1].id, 1);
  ASSERT_TRUE(page.is_ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].id, (*history)[2].id);
  EXPECT_EQ(store_->list_task_run_history("missing", 0, 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->list_task_run_history(run.id, 0, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->list_task_run_history(create_run(f.id).id, 0, 10)->empty());
}

// Every attempt of a run keeps its own start and end, the state it ended in with that
// state's message, and the agent that ran it; an attempt that ended is never changed.
TEST_P(StoreTest, EachAttemptOfARunKeepsItsOwnTimesStateAndAgent) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  auto none = store_->list_flow_run_attempts(run.id);
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_TRUE(none->empty());  // it has not run yet
  EXPECT_EQ(store_->list_flow_run_attempts("no-such-run").status().code(), StatusCode::kNotFound);

  const SysTime t0 = clock_.now();
  ASSERT_TRUE(store_->claim_runs({"agent-1", {}, 1, t0, {}}).is_ok());
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kRunning).is_ok());  // attempt 1 at t0+1
  auto going = store_->list_flow_run_attempts(run.id);
  ASSERT_EQ(going->size(), 1u);
  EXPECT_EQ((*going)[0].attempt, 1);
  EXPECT_EQ((*going)[0].state, State::kRunning);
  EXPECT_EQ((*going)[0].agent_id, "agent-1");
  EXPECT_EQ((*going)[0].start_time, t0 + seconds(1));
  EXPECT_EQ((*going)[0].end_time, std::nullopt);
  clock_.advance(seconds(2));
  ASSERT_TRUE(set_state(run.id, State::kCrashed).is_ok());  // ends at t0+3
  // Crashed, rescheduled by the server (forced back to the queue): attempt 2 by another
  // agent, cancelled.
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kScheduled, std::nullopt, /*forced=*/true).is_ok());
  ASSERT_TRUE(store_->claim_runs({"agent-2", {}, 1, clock_.now(), {}}).is_ok());
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kRunning).is_ok());  // attempt 2 at t0+5
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kCancelling).is_ok());
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kCancelled).is_ok());  // ends at t0+7
  // Attempt 3 goes from Running to Retrying: the way back to the queue ends it too.
  ASSERT_TRUE(set_state(run.id, State::kScheduled, std::nullopt, /*forced=*/true).is_ok());
  ASSERT_TRUE(store_->claim_runs({"agent-1", {}, 1, clock_.now(), {}}).is_ok());
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kRunning).is_ok());  // attempt 3 at t0+8
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kRetrying).is_ok());  // ends at t0+9

  auto all = store_->list_flow_run_attempts(run.id);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), 3u);
  struct Want {
    State state;
    const char* agent;
    int start, end;
  };
  const Want want[] = {{State::kCrashed, "agent-1", 1, 3}, {State::kCancelled, "agent-2", 5, 7},
                       {State::kRetrying, "agent-1", 8, 9}};
  for (size_t i = 0; i < 3; ++i) {
    const FlowRunAttempt& a = (*all)[i];
    EXPECT_EQ(a.flow_run_id, run.id);
    EXPECT_EQ(a.attempt, static_cast<int>(i) + 1);
    EXPECT_EQ(a.state, want[i].state) << i;
    EXPECT_EQ(a.message, std::string("to ") + state_name(want[i].state)) << i;
    EXPECT_EQ(a.agent_id, want[i].agent) << i;
    EXPECT_EQ(a.start_time, t0 + seconds(want[i].start)) << i;
    EXPECT_EQ(a.end_time, t0 + seconds(want[i].end)) << i;
  }
  // The run itself shows none of them while it waits for its next attempt.
  auto now = store_->get_flow_run(run.id);
  EXPECT_EQ(now->run_count, 3);
  EXPECT_EQ(now->start_time, std::nullopt);
  EXPECT_EQ(now->end_time, std::nullopt);
}

// A retried run's attempts stay apart: every log line and task run carries the run
// attempt that wrote it (the run's current one unless the writer says), a later
// attempt's task-run update replaces the earlier attempt's task run whatever its time,
// and logs can be read one attempt at a time.
TEST_P(StoreTest, AttemptsOfARetriedRunKeepTheirLogsAndTaskRunsApart) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  ASSERT_EQ(run.run_count, 1);
  auto line = [&](const std::string& message, std::optional<int> attempt = std::nullopt) {
    LogEntry e;
    e.flow_run_id = run.id;
    e.message = message;
    e.timestamp = clock_.now();
    e.run_attempt = attempt;
    return e;
  };
  const SysTime t0 = clock_.now();
  ASSERT_TRUE(store_->append_logs({line("one"), line("one too", 1)}).is_ok());
  TaskRunUpdate mapped{run.id, "m", 0, State::kSuccess, "", 1, t0 + seconds(1)};
  mapped.map_count = 10;
  ASSERT_TRUE(store_->upsert_task_runs({{run.id, "fetch", -1, State::kFailed, "boom", 1, t0 + seconds(1)},
                                        {run.id, "other", -1, State::kSuccess, "", 1, t0 + seconds(1)}, mapped})
                  .is_ok());
  // An attempt the run has not reached: refused, naming the field; nothing written.
  auto ahead = store_->append_logs({line("fine"), line("ahead", 2)});
  EXPECT_EQ(ahead.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(ahead.status().message(), HasSubstr("run_attempt 2"));
  EXPECT_EQ(store_->append_logs({line("zero", 0)}).status().code(), StatusCode::kInvalidArgument);
  TaskRunUpdate early{run.id, "fetch", -1, State::kRunning, "", 1, t0};
  early.run_attempt = 2;
  EXPECT_EQ(store_->upsert_task_runs({early}).status().code(), StatusCode::kInvalidArgument);

  // Attempt 2: failed, retried, running again.
  ASSERT_TRUE(set_state(run.id, State::kFailed).is_ok());
  ASSERT_TRUE(set_state(run.id, State::kScheduled, std::nullopt, /*forced=*/true).is_ok());
  ASSERT_TRUE(set_state(run.id, State::kSubmitted).is_ok());
  auto second = set_state(run.id, State::kRunning);
  ASSERT_TRUE(second.is_ok());
  ASSERT_EQ(second->run_count, 2);
  ASSERT_TRUE(store_->append_logs({line("two"), line("one, late", 1), line("two too", 2)}).is_ok());
  // Its clock is behind the first attempt's last update, yet it replaces it.
  TaskRunUpdate m_again{run.id, "m", 0, State::kRunning, "", 1, t0};
  m_again.map_count = 5;
  ASSERT_TRUE(store_->upsert_task_runs({early, m_again}).is_ok());
  // A late update of attempt 1 changes nothing.
  TaskRunUpdate late{run.id, "fetch", -1, State::kSuccess, "late", 4, t0 + seconds(9)};
  late.run_attempt = 1;
  TaskRunUpdate late_mapped{run.id, "m", 2, State::kFailed, "late", 4, t0 + seconds(9)};
  late_mapped.run_attempt = 1;
  ASSERT_TRUE(store_->upsert_task_runs({late, late_mapped}).is_ok());

  auto all = store_->read_logs(run.id, 0, 100);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  std::vector<std::pair<std::string, int>> got;
  for (const auto& l : *all) got.emplace_back(l.message, l.run_attempt);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, int>>{
                     {"one", 1}, {"one too", 1}, {"two", 2}, {"one, late", 1}, {"two too", 2}}));
  auto only2 = store_->read_logs(run.id, 0, 100, 2);
  ASSERT_TRUE(only2.is_ok());
  ASSERT_EQ(only2->size(), 2u);
  EXPECT_EQ((*only2)[0].message, "two");
  EXPECT_EQ((*only2)[1].message, "two too");
  auto only1 = store_->read_logs(run.id, (*all)[0].id, 100, 1);
  ASSERT_EQ(only1->size(), 2u);
  EXPECT_EQ((*only1)[0].message, "one too");
  EXPECT_EQ((*only1)[1].message, "one, late");
  EXPECT_TRUE(store_->read_logs(run.id, 0, 100, 3)->empty());

  auto tasks = store_->list_task_runs(run.id);
  ASSERT_TRUE(tasks.is_ok()) << tasks.status().to_string();
  ASSERT_EQ(tasks->size(), 12u);
  const TaskRun& fetch = (*tasks)[0];
  EXPECT_EQ(fetch.task, "fetch");
  EXPECT_EQ(fetch.state, State::kRunning);
  EXPECT_EQ(fetch.run_attempt, 2);
  EXPECT_EQ(fetch.start_time, t0);
  EXPECT_EQ(fetch.end_time, std::nullopt);
  EXPECT_EQ(fetch.message, "");
  for (int i = 0; i < 10; ++i) {
    const TaskRun& m = (*tasks)[1 + static_cast<size_t>(i)];
    EXPECT_EQ(m.map_index, i);
    EXPECT_EQ(m.run_attempt, i < 5 ? 2 : 1) << i;
    EXPECT_EQ(m.state, i < 5 ? State::kRunning : State::kSuccess) << i;
  }
  EXPECT_EQ((*tasks)[11].task, "other");
  EXPECT_EQ((*tasks)[11].run_attempt, 1);
}

// A database from before attempts were stored: its log lines and task runs are the
// first attempt's, and a run that ran has its latest attempt, read from its history.
TEST_P(StoreTest, RowsFromBeforeRunAttemptsAreReadFromTheHistory) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  const SysTime t0 = clock_.now();
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kFailed).is_ok());
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kScheduled, std::nullopt, /*forced=*/true).is_ok());
  ASSERT_TRUE(store_->claim_runs({"agent-9", {}, 1, clock_.now(), {}}).is_ok());
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kRunning).is_ok());  // attempt 2 at t0+3
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(run.id, State::kSuccess).is_ok());  // ends at t0+4
  FlowRun waiting = run_in_state(f.id, State::kRunning);    // ran once, then back in the queue
  clock_.advance(seconds(1));
  ASSERT_TRUE(set_state(waiting.id, State::kRetrying).is_ok());
  FlowRun fresh = create_run(f.id);  // never ran
  {
    auto raw = raw_db();
    raw->begin(detail::TxMode::kWrite);
    raw->exec_script("DROP TABLE flow_run_attempts");
    raw->exec_script("ALTER TABLE logs DROP COLUMN run_attempt");
    raw->exec_script("ALTER TABLE task_runs DROP COLUMN run_attempt");
    raw->exec("DELETE FROM schema_migrations WHERE version = 8", {});
    raw->exec("INSERT INTO logs (flow_run_id, task_run_id, task, map_index, level, message, ts) "
              "VALUES (?, NULL, NULL, -1, 'INFO', 'before', 1000)",
              {run.id});
    raw->exec("INSERT INTO task_runs (flow_run_id, task, map_index, map_count, id, state, message, attempts, created, "
              "updated, start_time, end_time, next_start) VALUES (?, 't', -1, 1, NULL, 'Success', '', 1, 1000, 1000, "
              "1000, 1000, NULL)",
              {run.id});
    raw->commit();
  }
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(*store_->schema_version(), latest_schema_version());
  auto logs = store_->read_logs(run.id, 0, 10, 1);
  ASSERT_TRUE(logs.is_ok()) << logs.status().to_string();
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].message, "before");
  EXPECT_EQ((*logs)[0].run_attempt, 1);
  auto tasks = store_->list_task_runs(run.id);
  ASSERT_TRUE(tasks.is_ok());
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].run_attempt, 1);

  auto attempts = store_->list_flow_run_attempts(run.id);
  ASSERT_TRUE(attempts.is_ok()) << attempts.status().to_string();
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].attempt, 2);
  EXPECT_EQ((*attempts)[0].state, State::kSuccess);
  EXPECT_EQ((*attempts)[0].message, "to Success");
  EXPECT_EQ((*attempts)[0].agent_id, "agent-9");
  EXPECT_EQ((*attempts)[0].start_time, t0 + seconds(3));
  EXPECT_EQ((*attempts)[0].end_time, t0 + seconds(4));
  auto ended = store_->list_flow_run_attempts(waiting.id);
  ASSERT_EQ(ended->size(), 1u);
  EXPECT_EQ((*ended)[0].state, State::kRetrying);
  EXPECT_EQ((*ended)[0].end_time, clock_.now());
  EXPECT_TRUE(store_->list_flow_run_attempts(fresh.id)->empty());
  // Attempts go on from there.
  ASSERT_TRUE(set_state(waiting.id, State::kSubmitted).is_ok());
  ASSERT_TRUE(set_state(waiting.id, State::kRunning).is_ok());
  ended = store_->list_flow_run_attempts(waiting.id);
  ASSERT_EQ(ended->size(), 2u);
  EXPECT_EQ((*ended)[1].attempt, 2);
  EXPECT_EQ((*ended)[1].state, State::kRunning);
}

TEST_P(StoreTest, LogsAndCursors) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  FlowRun other = create_run(f.id);
  std::vector<LogEntry> batch;
  for (int i = 0; i < 25; ++i) {
    LogEntry e;
    e.flow_run_id = i % 5 == 4 ? other.id : run.id;
    e.task = "extract";
    e.map_index = i;
    e.level = i % 2 ? "INFO" : "ERROR";
    e.message = "line " + std::to_string(i);
    e.timestamp = clock_.now() + milliseconds(i);
    batch.push_back(e);
  }
  auto ids = store_->append_logs(batch);
  ASSERT_TRUE(ids.is_ok()) << ids.status().to_string();
  ASSERT_EQ(ids->size(), 25u);
  EXPECT_TRUE(std::is_sorted(ids->begin(), ids->end()));
  EXPECT_EQ(std::set<int64_t>(ids->begin(), ids->end()).size(), 25u);

  std::vector<std::string> messages;
  int64_t cursor = 0;
  for (;;) {
    auto page = store_->read_logs(run.id, cursor, 7);
    ASSERT_TRUE(page.is_ok());
    if (page->empty()) break;
    for (const auto& l : *page) {
      EXPECT_GT(l.id, cursor);
      messages.push_back(l.message);
      EXPECT_EQ(l.flow_run_id, run.id);
    }
    cursor = page->back().id;
  }
  ASSERT_EQ(messages.size(), 20u);
  EXPECT_EQ(messages[0], "line 0");
  EXPECT_EQ(messages[4], "line 5");
  auto first = store_->read_logs(run.id, 0, 1);
  EXPECT_EQ((*first)[0].level, "ERROR");
  EXPECT_EQ((*first)[0].task, "extract");
  EXPECT_EQ((*first)[0].timestamp, clock_.now());
  EXPECT_FALSE((*first)[0].task_run_id.has_value());
  // New lines come after the cursor.
  LogEntry more;
  more.flow_run_id = run.id;
  more.message = "late";
  ASSERT_TRUE(store_->append_logs({more}).is_ok());
  auto tail = store_->read_logs(run.id, cursor, 100);
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].message, "late");
  EXPECT_GT((*tail)[0].id, ids->back());
  more.flow_run_id = "missing";
  EXPECT_EQ(store_->append_logs({more}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->read_logs("missing", 0, 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->read_logs(run.id, 0, 0).status().code(), StatusCode::kInvalidArgument);
}

// The per-run log quota: a batch that would take a run past it is refused whole (the
// other runs' lines are not held back), counting every line the run stored before.
TEST_P(StoreTest, LogQuotaRefusesABatchPastItWhole) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  FlowRun other = create_run(f.id);
  auto line = [&](const std::string& id, size_t bytes) {
    LogEntry e;
    e.flow_run_id = id;
    e.message = std::string(bytes, 'x');
    return e;
  };
  ASSERT_TRUE(store_->append_logs({line(run.id, 600), line(run.id, 300)}, 1000).is_ok());
  auto past = store_->append_logs({line(other.id, 10), line(run.id, 101)}, 1000);
  EXPECT_EQ(past.status().code(), StatusCode::kTooLarge);
  EXPECT_THAT(past.status().message(), HasSubstr("log quota of 1000 bytes"));
  EXPECT_THAT(past.status().message(), HasSubstr(run.id));
  EXPECT_THAT(past.status().message(), HasSubstr("it has 900 bytes"));
  EXPECT_TRUE(store_->read_logs(other.id, 0, 10)->empty());  // all or nothing
  EXPECT_EQ(store_->read_logs(run.id, 0, 10)->size(), 2u);
  // Up to the quota exactly is fine; without a quota, anything.
  ASSERT_TRUE(store_->append_logs({line(run.id, 100)}, 1000).is_ok());
  EXPECT_EQ(store_->append_logs({line(run.id, 1)}, 1000).status().code(), StatusCode::kTooLarge);
  ASSERT_TRUE(store_->append_logs({line(run.id, 5000)}).is_ok());
  ASSERT_TRUE(store_->append_logs({line(other.id, 1000)}, 1000).is_ok());
}

// Version 7 counts the log bytes that runs stored before it, so the quota covers them.
TEST_P(StoreTest, TheLogQuotaCountsLinesStoredBeforeTheUpgrade) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  LogEntry e;
  e.flow_run_id = run.id;
  e.message = std::string(300, 'x') + "\u00e9";  // 302 bytes
  ASSERT_TRUE(store_->append_logs({e}).is_ok());
  {
    auto raw = raw_db();
    raw->begin(detail::TxMode::kWrite);
    raw->exec_script("ALTER TABLE flow_runs DROP COLUMN log_bytes");
    raw->exec("DELETE FROM schema_migrations WHERE version = 7", {});
    raw->commit();
  }
  store_ = open();
  ASSERT_NE(store_, nullptr);
  e.message = "12345678";
  auto past = store_->append_logs({e}, 309);
  EXPECT_EQ(past.status().code(), StatusCode::kTooLarge);
  EXPECT_THAT(past.status().message(), HasSubstr("it has 302 bytes"));
  EXPECT_TRUE(store_->append_logs({e}, 310).is_ok());
}

// The API's listing: a page of tasks (an unmapped task's task run, a mapped task's
// counts by state), and one task's task runs by map index from a given index.
TEST_P(StoreTest, TasksArePagedAndMappedTasksSummed) {
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  SysTime t = clock_.now();
  std::vector<TaskRunUpdate> batch;
  batch.push_back({run.id, "a", -1, State::kSuccess, "done", 1, t});
  TaskRunUpdate ok{run.id, "m", 0, State::kSuccess, "", 1, t};
  ok.map_count = 3000;
  ok.start_time = t - milliseconds(20);
  batch.push_back(ok);
  batch.push_back({run.id, "m", 17, State::kFailed, "boom", 2, t + milliseconds(5)});
  batch.push_back({run.id, "m", 2990, State::kRunning, "", 1, t + milliseconds(6)});
  for (int i = 0; i < 5; ++i) batch.push_back({run.id, "t" + std::to_string(i), -1, State::kPending, "", 0, t});
  ASSERT_TRUE(store_->upsert_task_runs(batch).is_ok());

  auto page = store_->list_tasks(run.id, "", 3);  // a, m, t0
  ASSERT_TRUE(page.is_ok()) << page.status().to_string();
  ASSERT_EQ(page->task_runs.size(), 2u);
  EXPECT_EQ(page->task_runs[0].task, "a");
  EXPECT_EQ(page->task_runs[0].message, "done");
  EXPECT_EQ(page->task_runs[1].task, "t0");
  ASSERT_EQ(page->mapped.size(), 1u);
  const MappedTaskSummary& m = page->mapped[0];
  EXPECT_EQ(m.task, "m");
  EXPECT_EQ(m.count, 3000);
  EXPECT_EQ(m.max_map_index, 2999);
  ASSERT_EQ(m.states.size(), 3u);
  EXPECT_EQ(m.states[0].state, State::kRunning);
  EXPECT_EQ(m.states[0].count, 1);
  EXPECT_EQ(m.states[1].state, State::kSuccess);
  EXPECT_EQ(m.states[1].count, 2998);
  EXPECT_EQ(m.states[2].state, State::kFailed);
  EXPECT_EQ(m.states[2].count, 1);
  EXPECT_EQ(m.start_time, t - milliseconds(20));
  EXPECT_FALSE(m.end_time.has_value());  // one is still Running
  EXPECT_EQ(m.updated, t + milliseconds(6));
  EXPECT_EQ(page->next_after, "t0");
  auto rest = store_->list_tasks(run.id, page->next_after, 3);
  ASSERT_TRUE(rest.is_ok());
  ASSERT_EQ(rest->task_runs.size(), 3u);
  EXPECT_EQ(rest->task_runs[2].task, "t3");
  EXPECT_EQ(rest->next_after, "t3");
  auto last = store_->list_tasks(run.id, rest->next_after, 3);
  ASSERT_EQ(last->task_runs.size(), 1u);
  EXPECT_TRUE(last->next_after.empty());
  EXPECT_TRUE(store_->list_tasks(run.id, "t4", 3)->task_runs.empty());

  // One task's task runs, from an index inside a stored range, across ranges.
  auto from = store_->list_task_run_elements(run.id, "m", 15, 4);
  ASSERT_TRUE(from.is_ok()) << from.status().to_string();
  ASSERT_EQ(from->size(), 4u);
  EXPECT_EQ((*from)[0].map_index, 15);
  EXPECT_EQ((*from)[2].map_index, 17);
  EXPECT_EQ((*from)[2].state, State::kFailed);
  EXPECT_EQ((*from)[2].message, "boom");
  EXPECT_EQ((*from)[3].map_index, 18);
  auto failed = store_->list_task_run_elements(run.id, "m", 0, 10, State::kFailed);
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].map_index, 17);
  auto tail = store_->list_task_run_elements(run.id, "m", 2998, 10);
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ((*tail)[1].map_index, 2999);
  auto all = store_->list_task_runs(run.id);
  EXPECT_EQ((*from)[0].id, (*all)[1 + 15].id);  // the ids of the full listing
  auto unmapped = store_->list_task_run_elements(run.id, "a", -1, 10);
  ASSERT_EQ(unmapped->size(), 1u);
  EXPECT_EQ((*unmapped)[0].map_index, -1);
  EXPECT_EQ(store_->list_tasks("missing", "", 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->list_task_run_elements("missing", "m", 0, 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->list_tasks(run.id, "", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->list_task_run_elements(run.id, "m", 0, 1001).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, Agents) {
  auto a = store_->register_agent({"laptop", "local", {"dev", "cpu"}});
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->labels, (std::vector<std::string>{"cpu", "dev"}));
  EXPECT_FALSE(a->last_heartbeat.has_value());
  auto again = store_->register_agent({"laptop", "docker", {"gpu"}});
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->id, a->id);
  EXPECT_EQ(again->type, "docker");
  EXPECT_EQ(again->labels, std::vector<std::string>{"gpu"});
  ASSERT_TRUE(store_->register_agent({"cluster", "slurm", {}}).is_ok());
  clock_.advance(seconds(3));
  ASSERT_TRUE(store_->heartbeat_agent(a->id, clock_.now()).is_ok());
  EXPECT_EQ(store_->heartbeat_agent("nope", clock_.now()).code(), StatusCode::kNotFound);
  auto list = store_->list_agents();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "cluster");
  EXPECT_EQ((*list)[1].last_heartbeat, clock_.now());
  EXPECT_EQ(*store_->count_agents(), 2);
  EXPECT_EQ(store_->get_agent(a->id)->name, "laptop");
  EXPECT_EQ(store_->get_agent("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->register_agent({"", "local", {}}).status().code(), StatusCode::kInvalidArgument);
}

// Agents are bound to the token that registered them: another token cannot take the
// name over while that token is live.
TEST_P(StoreTest, OneTokenRegistersABoundedNumberOfAgents) {
  NewToken t{"tok-many", "many agents", "runner", sha256_hex("s"), std::nullopt, std::nullopt};
  ASSERT_TRUE(store_->create_token(t).is_ok());
  for (int i = 0; i < kMaxAgentsPerToken; ++i)
    ASSERT_TRUE(store_->register_agent({"a" + std::to_string(i), "local", {}, std::string("tok-many")}).is_ok()) << i;
  auto one_more = store_->register_agent({"a-too-many", "local", {}, std::string("tok-many")});
  EXPECT_EQ(one_more.status().code(), StatusCode::kConflict);
  EXPECT_NE(one_more.status().message().find("1000 agents"), std::string::npos) << one_more.status().to_string();
  // Its agents still re-register; nothing was added.
  EXPECT_TRUE(store_->register_agent({"a7", "docker", {}, std::string("tok-many")}).is_ok());
  EXPECT_EQ(store_->list_agents()->size(), static_cast<size_t>(kMaxAgentsPerToken));
}

TEST_P(StoreTest, AnAgentNameIsBoundToTheTokenThatRegisteredIt) {
  NewToken t1{"tok-1", "agent one", "runner", sha256_hex("s1"), std::nullopt, std::nullopt};
  NewToken t2{"tok-2", "agent two", "runner", sha256_hex("s2"), clock_.now() + seconds(60), std::nullopt};
  ASSERT_TRUE(store_->create_token(t1).is_ok());
  ASSERT_TRUE(store_->create_token(t2).is_ok());
  auto a = store_->register_agent({"a1", "local", {"dev"}, std::string("tok-1")});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->token_id, "tok-1");
  // The same token re-registers (a restarted agent): the same agent, updated.
  auto again = store_->register_agent({"a1", "docker", {"gpu"}, std::string("tok-1")});
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->id, a->id);
  EXPECT_EQ(again->labels, std::vector<std::string>{"gpu"});
  // Another token, or none, is refused and changes nothing.
  auto other = store_->register_agent({"a1", "local", {"dev", "prod"}, std::string("tok-2")});
  EXPECT_EQ(other.status().code(), StatusCode::kConflict);
  EXPECT_THAT(other.status().message(), HasSubstr("registered by another token"));
  EXPECT_EQ(store_->register_agent({"a1", "local", {}}).status().code(), StatusCode::kConflict);
  EXPECT_EQ(store_->get_agent(a->id)->labels, std::vector<std::string>{"gpu"});
  EXPECT_EQ(store_->get_agent(a->id)->token_id, "tok-1");
  // Once the bound token is revoked, the name may be registered by another.
  ASSERT_TRUE(store_->revoke_token("tok-1", clock_.now()).is_ok());
  auto taken = store_->register_agent({"a1", "local", {"dev"}, std::string("tok-2")});
  ASSERT_TRUE(taken.is_ok()) << taken.status().to_string();
  EXPECT_EQ(taken->id, a->id);
  EXPECT_EQ(taken->token_id, "tok-2");
  // ...and once it expired.
  ASSERT_TRUE(store_->create_token({"tok-3", "agent three", "runner", sha256_hex("s3"), std::nullopt,
                                    std::nullopt}).is_ok());
  EXPECT_EQ(store_->register_agent({"a1", "local", {}, std::string("tok-3")}).status().code(),
            StatusCode::kConflict);
  clock_.advance(seconds(61));
  EXPECT_EQ(store_->register_agent({"a1", "local", {}, std::string("tok-3")})->token_id, "tok-3");
  // An agent registered unbound is bound by the next registration with a token.
  ASSERT_TRUE(store_->register_agent({"old", "local", {}}).is_ok());
  EXPECT_EQ(store_->register_agent({"old", "local", {}, std::string("tok-3")})->token_id, "tok-3");
}

TEST_P(StoreTest, ADeregisteredAgentIsStoppedClaimsNothingAndRegistersAgain) {
  Flow f = register_flow("etl");
  auto a = store_->register_agent({"a1", "local", {}, std::string("tok-1")});
  ASSERT_TRUE(a.is_ok());
  EXPECT_FALSE(a->stopped_at.has_value());
  EXPECT_EQ(a->run_config_types, std::vector<std::string>{"local"});
  create_run(f.id);
  clock_.advance(seconds(1));
  SysTime stopped = clock_.now();
  ASSERT_TRUE(store_->deregister_agent(a->id, stopped).is_ok());
  ASSERT_TRUE(store_->deregister_agent(a->id, stopped + seconds(5)).is_ok());  // idempotent: the first time stays
  EXPECT_EQ(store_->get_agent(a->id)->stopped_at, stopped);
  EXPECT_EQ(store_->list_agents()->at(0).stopped_at, stopped);
  EXPECT_EQ(store_->deregister_agent("nope", stopped).code(), StatusCode::kNotFound);
  auto refused = store_->claim_runs({a->id, {}, 10, clock_.now(), {}});
  EXPECT_EQ(refused.status().code(), StatusCode::kConflict);
  EXPECT_THAT(refused.status().message(), HasSubstr("stopped"));
  auto live = store_->register_agent({"a1", "local", {}, std::string("tok-1")});
  ASSERT_TRUE(live.is_ok());
  EXPECT_EQ(live->id, a->id);
  EXPECT_FALSE(live->stopped_at.has_value());
  EXPECT_EQ(store_->claim_runs({a->id, {}, 10, clock_.now(), {}})->size(), 1u);
  ASSERT_TRUE(store_->set_agent_types(a->id, {"local", "docker"}).is_ok());
  EXPECT_EQ(store_->get_agent(a->id)->run_config_types, (std::vector<std::string>{"docker", "local"}));
  EXPECT_EQ(store_->set_agent_types("nope", {"local"}).code(), StatusCode::kNotFound);
}

// An agent's max concurrent runs are as its latest registration said: an agent that does
// not say (one older than the field) registers with none, and re-registering replaces it.
TEST_P(StoreTest, AnAgentsMaxConcurrentIsAsItsLatestRegistrationSaid) {
  NewAgent eight{"a1", "local", {}, std::string("tok-1"), 8};
  auto a = store_->register_agent(eight);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->max_concurrent, 8);
  EXPECT_EQ(store_->get_agent(a->id)->max_concurrent, 8);
  auto older = store_->register_agent({"old", "docker", {}, std::string("tok-1")});
  ASSERT_TRUE(older.is_ok()) << older.status().to_string();
  EXPECT_FALSE(older->max_concurrent.has_value());
  auto listed = store_->list_agents();
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ(listed->at(0).name, "a1");
  EXPECT_EQ(listed->at(0).max_concurrent, 8);
  EXPECT_FALSE(listed->at(1).max_concurrent.has_value());
  // Registering the name again replaces it, with a number or without one.
  eight.max_concurrent = 3;
  EXPECT_EQ(store_->register_agent(eight)->max_concurrent, 3);
  eight.max_concurrent.reset();
  EXPECT_FALSE(store_->register_agent(eight)->max_concurrent.has_value());
  EXPECT_FALSE(store_->get_agent(a->id)->max_concurrent.has_value());
  eight.max_concurrent = 0;
  EXPECT_EQ(store_->register_agent(eight).status().code(), StatusCode::kInvalidArgument);
}

// Agents registered before schema version 10 have no max concurrent runs until they
// register again; what else the store holds is unchanged.
TEST_P(StoreTest, MigratingToVersion10KeepsAgentsWithoutMaxConcurrent) {
  auto a = store_->register_agent({"a1", "local", {"gpu"}, std::string("tok-1"), 5});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  Flow f = register_flow("etl");
  FlowRun run = run_in_state(f.id, State::kRunning);
  TaskRunUpdate ok{run.id, "m", 0, State::kSuccess, "", 1, clock_.now()};
  ok.map_count = 10;
  ASSERT_TRUE(store_->upsert_task_runs({ok, {run.id, "m", 3, State::kFailed, "boom", 1, clock_.now() + milliseconds(1)}})
                  .is_ok());
  {
    auto raw = raw_db();
    raw->begin(detail::TxMode::kWrite);
    raw->exec_script("ALTER TABLE agents DROP COLUMN max_concurrent");
    raw->exec("DELETE FROM schema_migrations WHERE version = 10", {});
    raw->commit();
  }
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(*store_->schema_version(), latest_schema_version());
  auto got = store_->get_agent(a->id);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_FALSE(got->max_concurrent.has_value());
  EXPECT_EQ(got->labels, std::vector<std::string>{"gpu"});
  EXPECT_EQ(store_->register_agent({"a1", "local", {"gpu"}, std::string("tok-1"), 5})->max_concurrent, 5);
  auto tasks = store_->list_tasks(run.id, "", 10);
  ASSERT_TRUE(tasks.is_ok()) << tasks.status().to_string();
  ASSERT_EQ(tasks->mapped.size(), 1u);
  EXPECT_EQ(tasks->mapped[0].count, 10);
  ASSERT_EQ(tasks->mapped[0].states.size(), 2u);
  EXPECT_EQ(tasks->mapped[0].states[0].state, State::kSuccess);
  EXPECT_EQ(tasks->mapped[0].states[0].count, 9);
  EXPECT_EQ(tasks->mapped[0].states[1].state, State::kFailed);
  EXPECT_EQ(tasks->mapped[0].states[1].count, 1);
}

// A flow version with a run config of `type` ("" for a run config without one).
Flow register_typed_flow(Store& store, const std::string& name, const std::string& type) {
  NewFlowVersion v;
  v.project = "default";
  v.name = name;
  v.artifact_uri = "file:///flows/" + name;
  v.artifact_sha256 = sha256_hex(name);
  std::string rc = type.empty() ? R"({"env":{}})" : R"({"type":")" + type + R"("})";
  v.description_json = R"({"name":")" + name + R"(","tasks":[],"run_config":)" + rc + "}";
  v.run_config_json = rc;
  v.run_config_type = type;
  auto f = store.register_flow(v);
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  return f.is_ok() ? *f : Flow{};
}

TEST_P(StoreTest, ClaimTakesOnlyTheRunConfigTypesTheAgentLaunches) {
  Flow local = register_typed_flow(*store_, "l", "local");
  Flow docker = register_typed_flow(*store_, "d", "docker");
  Flow any = register_typed_flow(*store_, "a", "");
  SysTime now = clock_.now();
  FlowRun d1 = create_run(docker.id, std::nullopt, now - seconds(30));  // the oldest: not for a local agent
  FlowRun l1 = create_run(local.id, std::nullopt, now - seconds(20));
  FlowRun a1 = create_run(any.id, std::nullopt, now - seconds(10));
  FlowRun l2 = create_run(local.id, std::nullopt, now - seconds(5));
  EXPECT_EQ(d1.run_config_type, "docker");
  EXPECT_EQ(a1.run_config_type, "");
  EXPECT_EQ(json_compact(l1.run_config_json), R"({"type":"local"})");
  auto claim = [&](const std::string& agent, std::vector<std::string> types, int max) {
    ClaimRequest r{agent, {}, max, now, {}};
    r.run_config_types = std::move(types);
    std::vector<std::string> ids;
    auto got = store_->claim_runs(r);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    if (got)
      for (const auto& run : *got) ids.push_back(run.id);
    return ids;
  };
  // Oldest due first among the runs of its types and those without a type.
  EXPECT_EQ(claim("local-agent", {"local"}, 2), (std::vector<std::string>{l1.id, a1.id}));
  EXPECT_EQ(claim("local-agent", {"local"}, 10), std::vector<std::string>{l2.id});
  EXPECT_TRUE(claim("local-agent", {"local"}, 10).empty());  // the docker run stays
  EXPECT_EQ(store_->get_flow_run(d1.id)->state, State::kScheduled);
  EXPECT_EQ(claim("docker-agent", {"docker", "ecs"}, 10), std::vector<std::string>{d1.id});
  // Many label sets (the other query form) filter the same way.
  std::set<std::string> docker_runs, local_runs;
  for (int i = 0; i < 20; ++i) {
    docker_runs.insert(create_run(docker.id, std::vector<std::string>{"l" + std::to_string(i)}).id);
    local_runs.insert(create_run(local.id, std::vector<std::string>{"l" + std::to_string(i)}).id);
  }
  std::vector<std::string> labels;
  for (int i = 0; i < 20; ++i) labels.push_back("l" + std::to_string(i));
  ClaimRequest many{"local-agent", labels, 100, now, {}};
  many.run_config_types = std::vector<std::string>{"local"};
  auto got = store_->claim_runs(many);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  std::set<std::string> ids;
  for (const auto& r : *got) ids.insert(r.id);
  EXPECT_EQ(ids, local_runs);
  // Without a list of types, every type is taken.
  EXPECT_EQ(store_->claim_runs({"any-agent", labels, 100, now, {}})->size(), 20u);
}

TEST_P(StoreTest, InfrastructureIsRecordedForTheRunsAgentAndClearedWhenTheRunWaitsAgain) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  EXPECT_FALSE(run.infrastructure.has_value());
  // Not on an agent yet.
  EXPECT_EQ(store_->set_flow_run_infrastructure(run.id, "a1", "container", "c-1", clock_.now()).status().code(),
            StatusCode::kConflict);
  ASSERT_EQ(store_->claim_runs({"a1", {}, 1, clock_.now(), {}})->size(), 1u);
  clock_.advance(seconds(1));
  auto r = store_->set_flow_run_infrastructure(run.id, "a1", "container", "c-1", clock_.now());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(r->infrastructure.has_value());
  EXPECT_EQ(r->infrastructure->kind, "container");
  EXPECT_EQ(r->infrastructure->id, "c-1");
  EXPECT_EQ(r->infrastructure->agent_id, "a1");
  EXPECT_EQ(r->infrastructure->reported_at, clock_.now());
  // Another agent may not; a missing run is NotFound; empty values are refused.
  auto other = store_->set_flow_run_infrastructure(run.id, "a2", "container", "c-2", clock_.now());
  EXPECT_EQ(other.status().code(), StatusCode::kConflict);
  EXPECT_THAT(other.status().message(), HasSubstr("it is on agent a1"));
  EXPECT_EQ(store_->set_flow_run_infrastructure("nope", "a1", "process", "1", clock_.now()).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->set_flow_run_infrastructure(run.id, "a1", "", "1", clock_.now()).status().code(),
            StatusCode::kInvalidArgument);
  // It stays through Running and into a final state, and is read by every listing.
  ASSERT_TRUE(set_state(run.id, State::kRunning).is_ok());
  EXPECT_EQ(store_->get_flow_run(run.id)->infrastructure->id, "c-1");
  FlowRunQuery q;
  q.flow_id = f.id;
  EXPECT_EQ(store_->list_flow_runs(q)->runs.at(0).infrastructure->id, "c-1");
  ASSERT_TRUE(set_state(run.id, State::kCrashed).is_ok());
  EXPECT_EQ(store_->get_flow_run(run.id)->infrastructure->id, "c-1");
  // A new attempt starts without it.
  auto again = set_state(run.id, State::kScheduled, std::nullopt, /*forced=*/true);
  ASSERT_TRUE(again.is_ok());
  EXPECT_FALSE(again->infrastructure.has_value());
  EXPECT_FALSE(store_->get_flow_run(run.id)->infrastructure.has_value());
}

TEST_P(StoreTest, RunsAreListedByAgentAndByAnyOfSeveralStates) {
  Flow f = register_flow("etl");
  FlowRun waiting = create_run(f.id);
  FlowRun a_sub = create_run(f.id);
  ASSERT_EQ(store_->claim_runs({"a1", {}, 1, clock_.now(), {}})->at(0).id, waiting.id);
  ASSERT_EQ(store_->claim_runs({"a1", {}, 1, clock_.now(), {}})->at(0).id, a_sub.id);
  FlowRun b_run = create_run(f.id);
  ASSERT_EQ(store_->claim_runs({"b1", {}, 1, clock_.now(), {}})->at(0).id, b_run.id);
  ASSERT_TRUE(set_state(waiting.id, State::kRunning).is_ok());
  ASSERT_TRUE(set_state(b_run.id, State::kRunning).is_ok());
  FlowRun done = run_in_state(f.id, State::kSuccess);  // no agent claimed it
  clock_.advance(seconds(1));
  FlowRun fresh = create_run(f.id);
  auto ids = [&](FlowRunQuery q) {
    std::set<std::string> out;
    auto page = store_->list_flow_runs(q);
    EXPECT_TRUE(page.is_ok()) << page.status().to_string();
    if (page)
      for (const auto& r : page->runs) out.insert(r.id);
    return out;
  };
  FlowRunQuery q;
  q.agent_id = "a1";
  EXPECT_EQ(ids(q), (std::set<std::string>{waiting.id, a_sub.id}));
  q.states = {State::kSubmitted, State::kRunning, State::kCancelling};
  EXPECT_EQ(ids(q), (std::set<std::string>{waiting.id, a_sub.id}));
  q.states = {State::kRunning};
  EXPECT_EQ(ids(q), (std::set<std::string>{waiting.id}));
  q.agent_id.reset();
  EXPECT_EQ(ids(q), (std::set<std::string>{waiting.id, b_run.id}));
  q.states = {State::kScheduled, State::kSuccess};
  EXPECT_EQ(ids(q), (std::set<std::string>{done.id, fresh.id}));
  q.agent_id = "nobody";
  EXPECT_TRUE(ids(q).empty());
  // Paging through one agent's runs, one a page.
  FlowRunQuery one;
  one.agent_id = "a1";
  one.limit = 1;
  auto p1 = store_->list_flow_runs(one);
  ASSERT_EQ(p1->runs.size(), 1u);
  one.cursor = p1->next_cursor;
  auto p2 = store_->list_flow_runs(one);
  ASSERT_EQ(p2->runs.size(), 1u);
  EXPECT_NE(p1->runs[0].id, p2->runs[0].id);
  EXPECT_TRUE(p2->next_cursor.empty());
}

// Flow versions and runs of an older schema get their run config from the stored
// description when the store migrates; agents their type as their run-config types.
TEST_P(StoreTest, MigratingFillsTheRunConfigsOfExistingFlowsAndRuns) {
  Flow docker = register_typed_flow(*store_, "d", "docker");
  Flow any = register_typed_flow(*store_, "a", "");
  Flow none = register_flow("n");
  FlowRun d = create_run(docker.id);
  FlowRun a = create_run(any.id);
  FlowRun n = create_run(none.id);
  ASSERT_TRUE(store_->register_agent({"a1", "docker", {}}).is_ok());
  // Back to schema version 5: without the columns versions 6 and 7 added.
  {
    auto raw = raw_db();
    raw->begin(detail::TxMode::kWrite);
    raw->exec_script("DROP INDEX flow_runs_due");
    raw->exec_script("DROP INDEX flow_runs_by_agent");
    for (const char* col : {"run_config_json", "run_config_type"})
      raw->exec_script(std::string("ALTER TABLE flows DROP COLUMN ") + col);
    for (const char* col : {"run_config_type", "infra_kind", "infra_id", "infra_agent_id", "infra_reported_at",
                            "log_bytes"})
      raw->exec_script(std::string("ALTER TABLE flow_runs DROP COLUMN ") + col);
    for (const char* col : {"token_id", "stopped_at", "run_config_types"})
      raw->exec_script(std::string("ALTER TABLE agents DROP COLUMN ") + col);
    raw->exec_script(
        "CREATE INDEX flow_runs_due ON flow_runs (label_set_id, scheduled_start_time, id) "
        "WHERE state IN ('Scheduled', 'Pending', 'Retrying')");
    raw->exec("DELETE FROM schema_migrations WHERE version = 6", {});
    raw->commit();
  }
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(*store_->schema_version(), latest_schema_version());
  auto got_d = store_->get_flow_run(d.id);
  ASSERT_TRUE(got_d.is_ok()) << got_d.status().to_string();
  EXPECT_EQ(got_d->run_config_type, "docker");
  EXPECT_EQ(json_compact(got_d->run_config_json), R"({"type":"docker"})");
  EXPECT_EQ(store_->get_flow_run(a.id)->run_config_type, "");
  EXPECT_EQ(json_compact(store_->get_flow_run(a.id)->run_config_json), R"({"env":{}})");
  EXPECT_EQ(store_->get_flow_run(n.id)->run_config_json, "");
  EXPECT_FALSE(got_d->infrastructure.has_value());
  // The claim filters the migrated runs by type.
  ClaimRequest r{"local-agent", {}, 10, clock_.now(), {}};
  r.run_config_types = std::vector<std::string>{"local"};
  auto claimed = store_->claim_runs(r);
  ASSERT_TRUE(claimed.is_ok()) << claimed.status().to_string();
  std::set<std::string> ids;
  for (const auto& run : *claimed) ids.insert(run.id);
  EXPECT_EQ(ids, (std::set<std::string>{a.id, n.id}));
  auto agent = store_->list_agents()->at(0);
  EXPECT_EQ(agent.run_config_types, std::vector<std::string>{"docker"});
  EXPECT_FALSE(agent.token_id.has_value());
  EXPECT_FALSE(agent.stopped_at.has_value());
}

TEST_P(StoreTest, Tokens) {
  EXPECT_EQ(*store_->count_tokens(), 0);
  NewToken admin{"", "bootstrap", "admin", sha256_hex("cvt_secret"), std::nullopt, std::nullopt};
  auto t = store_->create_token(admin);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_FALSE(t->id.empty());
  EXPECT_EQ(t->created, clock_.now());
  EXPECT_EQ(*store_->count_tokens(), 1);
  auto found = store_->find_token_by_hash(sha256_hex("cvt_secret"));
  ASSERT_TRUE(found.is_ok());
  EXPECT_EQ(found->id, t->id);
  EXPECT_EQ(found->scope, "admin");
  EXPECT_EQ(store_->find_token_by_hash(sha256_hex("other")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->create_token(admin).status().code(), StatusCode::kConflict);

  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  SysTime exp = clock_.now() + std::chrono::hours(24);
  NewToken rt{"tok-run", "run", "run", sha256_hex("r"), exp, run.id};
  auto r = store_->create_token(rt);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->id, "tok-run");
  EXPECT_EQ(r->expires, exp);
  EXPECT_EQ(r->flow_run_id, run.id);
  EXPECT_EQ(store_->create_token({"", "x", "root", "h1", std::nullopt, std::nullopt}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->create_token({"", "x", "run", "h2", std::nullopt, std::nullopt}).status().code(),
            StatusCode::kInvalidArgument);

  auto list = store_->list_tokens();
  ASSERT_EQ(list->size(), 2u);
  clock_.advance(seconds(1));
  ASSERT_TRUE(store_->revoke_token("tok-run", clock_.now()).is_ok());
  EXPECT_EQ(store_->find_token_by_hash(sha256_hex("r"))->revoked_at, clock_.now());
  EXPECT_EQ(store_->revoke_token("nope", clock_.now()).code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->count_tokens(), 2);
}

TEST_P(StoreTest, TheLastLiveAdminTokenCannotBeRevoked) {
  ASSERT_TRUE(store_->create_token({"a1", "first", "admin", sha256_hex("a1"), std::nullopt, std::nullopt}).is_ok());
  auto last = store_->revoke_token("a1", clock_.now());
  EXPECT_EQ(last.code(), StatusCode::kConflict);
  EXPECT_THAT(last.message(), ::testing::HasSubstr("last unexpired admin token"));
  EXPECT_FALSE(store_->find_token_by_hash(sha256_hex("a1"))->revoked_at.has_value());
  // An expired admin token does not count as one left; a second live one does.
  SysTime soon = clock_.now() + seconds(10);
  ASSERT_TRUE(store_->create_token({"a2", "expiring", "admin", sha256_hex("a2"), soon, std::nullopt}).is_ok());
  ASSERT_TRUE(store_->create_token({"u1", "user", "user", sha256_hex("u1"), std::nullopt, std::nullopt}).is_ok());
  EXPECT_TRUE(store_->revoke_token("u1", clock_.now()).is_ok());
  clock_.advance(seconds(11));
  EXPECT_EQ(store_->revoke_token("a1", clock_.now()).code(), StatusCode::kConflict);
  EXPECT_TRUE(store_->revoke_token("a2", clock_.now()).is_ok());  // expired already: not a live one
  ASSERT_TRUE(store_->create_token({"a3", "second", "admin", sha256_hex("a3"), std::nullopt, std::nullopt}).is_ok());
  EXPECT_TRUE(store_->revoke_token("a1", clock_.now()).is_ok());
  EXPECT_EQ(store_->revoke_token("a3", clock_.now()).code(), StatusCode::kConflict);
  EXPECT_TRUE(store_->revoke_token("a1", clock_.now()).is_ok());  // revoking again is a no-op
}

TEST_P(StoreTest, CountRunsByState) {
  Flow f = register_flow("etl");
  run_in_state(f.id, State::kRunning);
  run_in_state(f.id, State::kRunning);
  run_in_state(f.id, State::kSuccess);
  create_run(f.id);
  auto counts = store_->count_runs_by_state();
  ASSERT_TRUE(counts.is_ok());
  std::map<State, int64_t> m;
  for (const auto& c : *counts) m[c.state] = c.count;
  EXPECT_EQ(m, (std::map<State, int64_t>{{State::kRunning, 2}, {State::kSuccess, 1}, {State::kScheduled, 1}}));
}

// A writer process is killed with SIGKILL; every write it saw acknowledged survives.
TEST_P(StoreTest, AcknowledgedWritesSurviveAKilledWriter) {
  Flow f = register_flow("etl");
  FlowRun run = create_run(f.id);
  Child w = spawn({tool_path(), "write", db_->url(), run.id});
  ASSERT_NE(w.out, nullptr);
  int acked = -1;
  std::string line;
  while (acked < 300 && read_line(w.out, &line)) acked = std::stoi(line);
  kill(w.pid, SIGKILL);
  int status = wait_child(w.pid);
  fclose(w.out);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_GE(acked, 300);

  store_.reset();
  auto reopened = open();
  ASSERT_NE(reopened, nullptr);
  auto tasks = reopened->list_task_runs(run.id);
  ASSERT_TRUE(tasks.is_ok());
  std::set<std::string> names;
  for (const auto& t : *tasks) names.insert(t.task);
  for (int i = 0; i <= acked; ++i) ASSERT_TRUE(names.count("t" + std::to_string(i))) << i;
  auto logs = reopened->read_logs(run.id, 0, 10000);
  ASSERT_TRUE(logs.is_ok());
  ASSERT_GE(logs->size(), static_cast<size_t>(acked + 1));
  for (int i = 0; i <= acked; ++i) ASSERT_EQ((*logs)[i].message, "line " + std::to_string(i));
}

// The web UI's dashboard: runs created since a time by state, waiting runs past their
// due time (earliest first, bounded), and the unfinished runs on each agent.
TEST_P(StoreTest, DashboardCountsRunsSinceByStateLateRunsAndRunsInFlight) {
  Flow f = register_flow("etl");
  SysTime t0 = clock_.now();
  FlowRun old_success = run_in_state(f.id, State::kSuccess);
  clock_.advance(std::chrono::hours(2));
  SysTime since = clock_.now();
  FlowRun ok = run_in_state(f.id, State::kSuccess);
  FlowRun failed = run_in_state(f.id, State::kFailed);
  FlowRun late2 = create_run(f.id, std::nullopt, since - std::chrono::minutes(5));
  FlowRun late1 = create_run(f.id, std::nullopt, since - std::chrono::minutes(10), State::kPending);
  FlowRun due_later = create_run(f.id, std::nullopt, since + std::chrono::hours(1));
  FlowRun just_due = create_run(f.id, std::nullopt, since);  // due now: not late yet
  ASSERT_TRUE(store_->claim_runs({"agent-b", {}, 1, since, {}}).is_ok());  // claims late1, the earliest due
  auto d = store_->dashboard(since, since - std::chrono::seconds(30), 10);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  std::map<State, int64_t> by;
  for (const auto& c : d->created_since_by_state) by[c.state] = c.count;
  // late1 went Submitted with the claim; the run created before `since` is not counted.
  EXPECT_EQ(by, (std::map<State, int64_t>{{State::kSuccess, 1}, {State::kFailed, 1}, {State::kScheduled, 3},
                                          {State::kSubmitted, 1}}));
  EXPECT_EQ(d->late_count, 1);
  ASSERT_EQ(d->late_runs.size(), 1u);
  EXPECT_EQ(d->late_runs[0].id, late2.id);
  EXPECT_EQ(d->in_flight_by_agent, (std::vector<std::pair<std::string, int64_t>>{{"agent-b", 1}}));
  // The bound on the listed late runs, and every run since t0.
  auto all = store_->dashboard(t0, since + std::chrono::hours(2), 1);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->late_count, 3);  // late2, due_later and just_due (late1 is Submitted)
  ASSERT_EQ(all->late_runs.size(), 1u);
  EXPECT_EQ(all->late_runs[0].id, late2.id);
  int64_t total = 0;
  for (const auto& c : all->created_since_by_state) total += c.count;
  EXPECT_EQ(total, 7);
  (void)old_success; (void)ok; (void)failed;
}

TEST_P(StoreTest, RunListingFiltersByLabelAndCreationTime) {
  Flow f = register_flow("etl");
  FlowRun gpu = create_run(f.id, std::vector<std::string>{"gpu", "eu"});
  clock_.advance(std::chrono::minutes(1));
  SysTime mid = clock_.now();
  FlowRun gpu2 = create_run(f.id, std::vector<std::string>{"gpu2"});
  FlowRun quote = create_run(f.id, std::vector<std::string>{"a\"b"});
  auto ids = [&](FlowRunQuery q) {
    q.limit = 100;
    std::vector<std::string> out;
    auto p = store_->list_flow_runs(q);
    EXPECT_TRUE(p.is_ok()) << p.status().to_string();
    if (p) for (const auto& r : p->runs) out.push_back(r.id);
    return out;
  };
  FlowRunQuery q;
  q.label = "gpu";  // a whole label, not a prefix of "gpu2"
  EXPECT_EQ(ids(q), std::vector<std::string>{gpu.id});
  q.label = "GPU";  // case-sensitive on both databases
  EXPECT_TRUE(ids(q).empty());
  q.label = "a\"b";
  EXPECT_EQ(ids(q), std::vector<std::string>{quote.id});
  q.label = "%";
  EXPECT_TRUE(ids(q).empty());
  FlowRunQuery t;
  t.created_after = mid;
  EXPECT_EQ(ids(t), (std::vector<std::string>{quote.id, gpu2.id}));
  t.created_after.reset();
  t.created_before = mid;
  EXPECT_EQ(ids(t), std::vector<std::string>{gpu.id});
  t.created_after = mid;
  t.label = "gpu2";
  EXPECT_TRUE(ids(t).empty());
}

// ---------------------------------------------------------------------------------
// Child runs (one per chunk of a distributed mapped task)

NewChildRuns child_spec(const std::string& parent, std::vector<ChildChunk> chunks, const std::string& task = "score") {
  NewChildRuns n;
  n.parent_run_id = parent;
  n.task = task;
  n.chunks = std::move(chunks);
  n.state_message = "created by the parent";
  return n;
}

TEST_P(StoreTest, ChildRunsAreCreatedOncePerChunkOfARunningParentsAttempt) {
  NewFlowVersion v;
  v.project = "default";
  v.name = "fan";
  v.artifact_uri = "file:///flows/fan";
  v.artifact_sha256 = sha256_hex("fan");
  v.labels = {"gpu"};
  v.run_config_json = R"({"type":"docker","image":"big"})";
  v.run_config_type = "docker";
  auto f = store_->register_flow(v);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  NewFlowRun nr;
  nr.flow_id = f->id;
  nr.parameters_json = R"({"n":200})";
  nr.labels = std::vector<std::string>{"gpu", "eu"};
  auto created = store_->create_flow_run(nr);
  ASSERT_TRUE(created.is_ok());
  FlowRun parent = created->first;

  // Only a running parent creates children.
  auto early = store_->create_child_runs(child_spec(parent.id, {{0, 0, 10}}));
  EXPECT_EQ(early.status().code(), StatusCode::kConflict);
  EXPECT_THAT(early.status().message(), HasSubstr("Scheduled, not Running"));
  EXPECT_EQ(store_->create_child_runs(child_spec("no-such-run", {{0, 0, 10}})).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(set_state(parent.id, State::kSubmitted).is_ok());
  ASSERT_TRUE(set_state(parent.id, State::kRunning).is_ok());

  auto kids = store_->create_child_runs(child_spec(parent.id, {{1, 10, 20}, {0, 0, 10}, {2, 20, 25}}));
  ASSERT_TRUE(kids.is_ok()) << kids.status().to_string();
  ASSERT_EQ(kids->size(), 3u);
  std::vector<int> order;
  for (const auto& [kid, fresh] : *kids) {
    EXPECT_TRUE(fresh);
    order.push_back(kid.child->chunk);
    EXPECT_NE(kid.id, parent.id);
    EXPECT_EQ(kid.state, State::kScheduled);
    EXPECT_EQ(kid.flow_id, f->id);
    EXPECT_EQ(json_compact(kid.parameters_json), R"({"n":200})");
    EXPECT_EQ(kid.labels, (std::vector<std::string>{"eu", "gpu"}));
    EXPECT_EQ(kid.run_config_type, "docker");
    EXPECT_EQ(json_compact(kid.run_config_json), R"({"image":"big","type":"docker"})");
    ASSERT_TRUE(kid.child.has_value());
    EXPECT_EQ(kid.child->parent_run_id, parent.id);
    EXPECT_EQ(kid.child->task, "score");
    EXPECT_EQ(kid.child->parent_attempt, 1);
    EXPECT_EQ(kid.child->end - kid.child->start, kid.child->chunk == 2 ? 5 : 10);
    // What the store reads back is what it answered.
    auto back = store_->get_flow_run(kid.id);
    ASSERT_TRUE(back.is_ok());
    ASSERT_TRUE(back->child.has_value());
    EXPECT_EQ(back->child->start, kid.child->start);
    EXPECT_EQ(back->child->end, kid.child->end);
    EXPECT_EQ(back->child->chunk, kid.child->chunk);
    EXPECT_EQ(back->created, kid.created);
    EXPECT_EQ(json_compact(back->run_config_json), json_compact(kid.run_config_json));
  }
  EXPECT_EQ(order, (std::vector<int>{1, 0, 2}));  // request order
  EXPECT_FALSE(store_->get_flow_run(parent.id)->child.has_value());
  auto first_history = store_->get_flow_run_history((*kids)[0].first.id);
  ASSERT_EQ(first_history->size(), 1u);
  EXPECT_EQ((*first_history)[0].message, "created by the parent");

  // Idempotent per chunk: a repeat returns the same runs; a new chunk is added.
  auto again = store_->create_child_runs(child_spec(parent.id, {{0, 0, 10}, {3, 25, 30}}));
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ((*again)[0].first.id, (*kids)[1].first.id);
  EXPECT_FALSE((*again)[0].second);
  EXPECT_TRUE((*again)[1].second);
  // The same chunk with another range, and nothing of the request is written.
  auto clash = store_->create_child_runs(child_spec(parent.id, {{4, 30, 40}, {0, 0, 11}}));
  EXPECT_EQ(clash.status().code(), StatusCode::kConflict);
  EXPECT_THAT(clash.status().message(), HasSubstr("[0, 10), not [0, 11)"));
  // Malformed chunks.
  for (const auto& bad : std::vector<std::vector<ChildChunk>>{
           {}, {{-1, 0, 1}}, {{0, 5, 5}}, {{0, -1, 3}}, {{0, 0, int64_t{kMaxMapIndex} + 2}}, {{7, 0, 1}, {7, 1, 2}}})
    EXPECT_EQ(store_->create_child_runs(child_spec(parent.id, bad)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->create_child_runs(child_spec(parent.id, {{0, 0, 1}}, "")).status().code(),
            StatusCode::kInvalidArgument);
  // Another task's chunk 0 is another child; the children's own run config.
  NewChildRuns own = child_spec(parent.id, {{0, 0, 4}}, "other");
  own.run_config_json = R"({"type":"local"})";
  own.run_config_type = "local";
  auto other = store_->create_child_runs(own);
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_EQ((*other)[0].first.run_config_type, "local");
  EXPECT_EQ(json_compact(store_->get_flow_run((*other)[0].first.id)->run_config_json), R"({"type":"local"})");
  // A child cannot have children.
  FlowRun kid0 = (*kids)[1].first;
  ASSERT_TRUE(set_state(kid0.id, State::kSubmitted).is_ok());
  ASSERT_TRUE(set_state(kid0.id, State::kRunning).is_ok());
  auto grand = store_->create_child_runs(child_spec(kid0.id, {{0, 0, 1}}));
  EXPECT_EQ(grand.status().code(), StatusCode::kConflict);
  EXPECT_THAT(grand.status().message(), HasSubstr("cannot have child runs"));

  // The listing: by (attempt, task, chunk); filters; counts.
  auto all = store_->list_child_runs({parent.id});
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].child.task, "other");
  std::vector<int> chunks;
  for (size_t i = 1; i < all->size(); ++i) chunks.push_back((*all)[i].child.chunk);
  EXPECT_EQ(chunks, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ((*all)[1].id, kid0.id);
  EXPECT_EQ((*all)[1].state, State::kRunning);
  EXPECT_EQ((*all)[1].run_count, 1);
  auto score = store_->list_child_runs({parent.id, std::string("score"), 1, 2});
  ASSERT_EQ(score->size(), 2u);
  EXPECT_EQ((*score)[1].child.chunk, 1);
  EXPECT_TRUE(store_->list_child_runs({parent.id, std::string("score"), 2})->empty());
  EXPECT_EQ(store_->list_child_runs({"no-such-run"}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->list_child_runs({parent.id, std::nullopt, std::nullopt, 0}).status().code(),
            StatusCode::kInvalidArgument);
  auto counts = store_->count_child_runs({parent.id, std::string("score")});
  ASSERT_TRUE(counts.is_ok());
  ASSERT_EQ(counts->size(), 2u);
  EXPECT_EQ((*counts)[0].state, State::kScheduled);
  EXPECT_EQ((*counts)[0].count, 3);
  EXPECT_EQ((*counts)[1].state, State::kRunning);
  EXPECT_EQ((*counts)[1].count, 1);
  EXPECT_TRUE(store_->count_child_runs({kid0.id})->empty());
  // Children are runs: listed by parent, claimed like any run.
  FlowRunQuery q;
  q.parent_run_id = parent.id;
  q.limit = 100;
  EXPECT_EQ(store_->list_flow_runs(q)->runs.size(), 5u);
  auto claimed = store_->claim_runs({"agent-1", {"eu", "gpu"}, 10, clock_.now(), {}});
  ASSERT_TRUE(claimed.is_ok());
  EXPECT_EQ(claimed->size(), 4u);  // the waiting children (the parent and kid0 are taken)
  for (const auto& r : *claimed) EXPECT_TRUE(r.child.has_value());
}

TEST_P(StoreTest, AParentsEndEndsItsChildrenInTheSameTransaction) {
  Flow f = register_flow("fan");
  // Cancelling the parent: waiting children are Cancelled, launched ones Cancelling,
  // ended ones stay.
  FlowRun parent = run_in_state(f.id, State::kRunning);
  auto kids = store_->create_child_runs(child_spec(parent.id, {{0, 0, 1}, {1, 1, 2}, {2, 2, 3}, {3, 3, 4}, {4, 4, 5}}));
  ASSERT_TRUE(kids.is_ok()) << kids.status().to_string();
  auto id = [&](int i) { return (*kids)[i].first.id; };
  ASSERT_TRUE(set_state(id(1), State::kSubmitted).is_ok());
  for (State s : {State::kSubmitted, State::kRunning}) ASSERT_TRUE(set_state(id(2), s).is_ok());
  for (State s : {State::kSubmitted, State::kRunning, State::kSuccess}) ASSERT_TRUE(set_state(id(3), s).is_ok());
  ASSERT_TRUE(set_state(id(4), State::kPending).is_ok());
  auto before = store_->count_runs_by_state();
  SetFlowRunState cancel;
  cancel.run_id = parent.id;
  cancel.state = State::kCancelling;
  cancel.message = "cancel requested by alice (user token)";
  cancel.now = clock_.now() + seconds(1);
  ASSERT_TRUE(store_->set_flow_run_state(cancel).is_ok());
  auto state_of = [&](int i) { return store_->get_flow_run(id(i))->state; };
  EXPECT_EQ(state_of(0), State::kCancelled);
  EXPECT_EQ(state_of(1), State::kCancelling);
  EXPECT_EQ(state_of(2), State::kCancelling);
  EXPECT_EQ(state_of(3), State::kSuccess);
  EXPECT_EQ(state_of(4), State::kCancelled);
  auto c0 = store_->get_flow_run(id(0));
  EXPECT_EQ(c0->state_message, "the parent flow run " + parent.id + " was cancelled: cancel requested by alice (user token)");
  EXPECT_EQ(c0->end_time, cancel.now);
  auto h = store_->get_flow_run_history(id(2));
  EXPECT_EQ(h->back().from_state, State::kRunning);
  EXPECT_EQ(h->back().state, State::kCancelling);
  // The per-state counts moved with the children (4 changes besides the parent's).
  std::map<State, int64_t> was, now;
  for (const auto& c : *before) was[c.state] = c.count;
  auto after = store_->count_runs_by_state();
  for (const auto& c : *after) now[c.state] = c.count;
  EXPECT_EQ(now[State::kCancelled] - was[State::kCancelled], 2);
  EXPECT_EQ(now[State::kCancelling] - was[State::kCancelling], 3);  // the parent and two children
  // A child Cancelling ends on its own; the parent's final state changes nothing more.
  ASSERT_TRUE(set_state(id(2), State::kCancelled).is_ok());
  ASSERT_TRUE(set_state(parent.id, State::kCancelled).is_ok());
  EXPECT_EQ(state_of(1), State::kCancelling);
  EXPECT_EQ(state_of(3), State::kSuccess);

  // A parent that fails: its waiting children are Cancelled with its final state named.
  FlowRun failing = run_in_state(f.id, State::kRunning);
  auto more = store_->create_child_runs(child_spec(failing.id, {{0, 0, 1}, {1, 1, 2}}));
  ASSERT_TRUE(more.is_ok());
  for (State s : {State::kSubmitted, State::kRunning}) ASSERT_TRUE(set_state((*more)[1].first.id, s).is_ok());
  ASSERT_TRUE(set_state(failing.id, State::kFailed).is_ok());
  auto m0 = store_->get_flow_run((*more)[0].first.id);
  EXPECT_EQ(m0->state, State::kCancelled);
  EXPECT_EQ(m0->state_message, "the parent flow run " + failing.id + " ended Failed");
  EXPECT_EQ(store_->get_flow_run((*more)[1].first.id)->state, State::kCancelling);

  // A parent that goes back to the queue (a new attempt) ends the old attempt's children,
  // and its next attempt makes its own.
  FlowRun retried = run_in_state(f.id, State::kRunning);
  auto first = store_->create_child_runs(child_spec(retried.id, {{0, 0, 1}}));
  ASSERT_TRUE(first.is_ok());
  ASSERT_TRUE(set_state(retried.id, State::kRetrying).is_ok());
  EXPECT_EQ(store_->get_flow_run((*first)[0].first.id)->state, State::kCancelled);
  EXPECT_THAT(store_->get_flow_run((*first)[0].first.id)->state_message, HasSubstr("went back to Retrying"));
  for (State s : {State::kSubmitted, State::kRunning}) ASSERT_TRUE(set_state(retried.id, s).is_ok());
  auto second = store_->create_child_runs(child_spec(retried.id, {{0, 0, 1}}));
  ASSERT_TRUE(second.is_ok());
  EXPECT_TRUE((*second)[0].second);
  EXPECT_NE((*second)[0].first.id, (*first)[0].first.id);
  EXPECT_EQ((*second)[0].first.child->parent_attempt, 2);
  EXPECT_EQ(store_->list_child_runs({retried.id, std::nullopt, 2})->size(), 1u);
  EXPECT_EQ(store_->list_child_runs({retried.id})->size(), 2u);
  // A child's own end does not touch its siblings or its parent.
  ASSERT_TRUE(set_state((*second)[0].first.id, State::kCancelled).is_ok());
  EXPECT_EQ(store_->get_flow_run(retried.id)->state, State::kRunning);
}

// Parents that ask again after a timeout, from several connections at once, get each
// chunk's child exactly once; a cancel racing with the creations leaves no child unended.
TEST_P(StoreTest, ConcurrentCreationsMakeEachChunkOnceAndACancelEndsThemAll) {
  Flow f = register_flow("fan");
  FlowRun parent = run_in_state(f.id, State::kRunning);
  std::vector<std::thread> threads;
  std::mutex mu;
  std::map<int, std::set<std::string>> ids_by_chunk;
  int created = 0;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      auto s = open();
      if (!s) return;
      for (int k = 0; k < 5; ++k) {
        // Overlapping requests: chunks k..k+3, in an order of this thread's own.
        std::vector<ChildChunk> chunks;
        for (int n = 0; n < 4; ++n) {
          int c = (k + (n + i) % 4);
          chunks.push_back({c, int64_t{c} * 10, int64_t{c} * 10 + 10});
        }
        auto made = s->create_child_runs(child_spec(parent.id, chunks));
        ASSERT_TRUE(made.is_ok()) << made.status().to_string();
        std::lock_guard<std::mutex> l(mu);
        for (const auto& [run, fresh] : *made) {
          ids_by_chunk[run.child->chunk].insert(run.id);
          created += fresh ? 1 : 0;
        }
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(ids_by_chunk.size(), 8u);  // chunks 0..7
  for (const auto& [chunk, ids] : ids_by_chunk) EXPECT_EQ(ids.size(), 1u) << "chunk " << chunk;
  EXPECT_EQ(created, 8);
  EXPECT_EQ(store_->list_child_runs({parent.id})->size(), 8u);

  // Creations and the parent's cancel at once: whatever was created before the cancel is
  // ended by it, and nothing is created after it.
  FlowRun other = run_in_state(f.id, State::kRunning);
  std::atomic<bool> stop{false};
  std::thread creator([&] {
    auto s = open();
    if (!s) return;
    for (int c = 0; c < 200 && !stop; ++c) {
      auto made = s->create_child_runs(child_spec(other.id, {{c, c, c + 1}}));
      if (!made) {
        EXPECT_EQ(made.status().code(), StatusCode::kConflict) << made.status().to_string();
        break;
      }
    }
  });
  auto cancelled = set_state(other.id, State::kCancelling);
  stop = true;
  creator.join();
  ASSERT_TRUE(cancelled.is_ok()) << cancelled.status().to_string();
  auto left = store_->list_child_runs({other.id});
  ASSERT_TRUE(left.is_ok());
  for (const auto& e : *left) EXPECT_EQ(e.state, State::kCancelled) << "chunk " << e.child.chunk;
}

TEST_P(StoreTest, ADatabaseAtSchemaTenGainsChildRuns) {
  // A fresh database migrated to version 10 only, with a flow version and a run in it.
  auto old_db = TestDatabase::create(GetParam());
  ASSERT_TRUE(old_db.is_ok()) << old_db.status().to_string();
  {
    auto raw = GetParam() == "sqlite"
                   ? detail::open_sqlite_db(old_db->url().substr(std::string("sqlite://").size()), milliseconds(5000))
                   : detail::open_postgres_db(old_db->url());
    raw->begin(detail::TxMode::kWrite);
    raw->exec_script(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at BIGINT NOT NULL)");
    for (const auto& m : detail::migrations(raw->dialect())) {
      if (m.version > 10) break;
      raw->exec_script(m.sql);
      raw->exec("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, 0)",
                {int64_t{m.version}, std::string(m.description)});
    }
    raw->exec_script("INSERT INTO projects (id, name, description, created) VALUES ('p1', 'default', '', 0)");
    raw->exec_script(
        "INSERT INTO flows (id, project_id, name, version, archived, artifact_uri, artifact_sha256, "
        "description_json, labels, schedule_active, max_run_retries, created, run_config_json, run_config_type) "
        "VALUES ('f1', 'p1', 'old', 1, 0, 'file:///flows/old', 'ab', '{}', '[]', 0, 0, 0, '{\"type\":\"local\"}', "
        "'local')");
    raw->exec_script("INSERT INTO label_sets (labels) VALUES ('[]')");
    raw->exec_script(
        "INSERT INTO flow_runs (id, flow_id, project_id, parameters_json, labels, label_set_id, auto_scheduled, "
        "state, state_message, version, run_count, created, state_changed_at, scheduled_start_time, "
        "run_config_type) SELECT 'r1', 'f1', 'p1', '{}', '[]', id, 0, 'Scheduled', '', 1, 0, 0, 0, 0, 'local' "
        "FROM label_sets");
    raw->exec_script("INSERT INTO flow_run_states (flow_run_id, state, message, version, forced, ts) "
                     "VALUES ('r1', 'Scheduled', '', 1, 0, 0)");
    raw->commit();
  }
  StoreOptions o;
  o.clock = &clock_;
  auto opened = open_store(old_db->url(), o);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  auto& st = **opened;
  EXPECT_EQ(*st.schema_version(), latest_schema_version());
  auto run = st.get_flow_run("r1");
  ASSERT_TRUE(run.is_ok()) << run.status().to_string();
  EXPECT_FALSE(run->child.has_value());
  EXPECT_EQ(run->run_config_json, R"({"type":"local"})");  // the flow version's, as before
  // The old run becomes a parent.
  for (State s : {State::kSubmitted, State::kRunning}) {
    SetFlowRunState c;
    c.run_id = "r1";
    c.state = s;
    c.now = clock_.now();
    ASSERT_TRUE(st.set_flow_run_state(c).is_ok());
  }
  auto kids = st.create_child_runs(child_spec("r1", {{0, 0, 3}}));
  ASSERT_TRUE(kids.is_ok()) << kids.status().to_string();
  EXPECT_EQ((*kids)[0].first.child->parent_run_id, "r1");
  EXPECT_EQ(st.get_flow_run((*kids)[0].first.id)->run_config_json, R"({"type":"local"})");
}

INSTANTIATE_TEST_SUITE_P(Backend, StoreTest, ::testing::Values(std::string(CULVERT_STORE_TEST_BACKEND)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace culvert::store
