#include "server/scheduler.hpp"

#include <gtest/gtest.h>

#include <set>

#include "core/timefmt.hpp"
#include "store/store.hpp"

namespace culvert::server {
namespace {

using namespace std::chrono_literals;

struct FakeEvents final : RunEvents {
  void run_due(const std::vector<std::string>&) override { ++due; }
  void run_due_at(SysTime) override { ++due_later; }
  void run_changed(const std::string&, bool) override {}
  int due = 0, due_later = 0;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.set(*parse_rfc3339("2026-06-01T10:00:30Z"));
    auto st = store::open_store("sqlite://:memory:", {.clock = &clock_});
    ASSERT_TRUE(st) << st.status().to_string();
    store_ = std::move(*st);
  }
  store::Flow register_flow(const std::string& schedule_json, bool active = true) {
    store::NewFlowVersion v;
    v.project = "p";
    v.name = "every-minute";
    v.artifact_uri = "file:///x";
    v.artifact_sha256 = "00";
    v.schedule_json = schedule_json;
    v.schedule_active = active;
    auto f = store_->register_flow(v);
    EXPECT_TRUE(f) << f.status().to_string();
    return *f;
  }
  std::vector<store::FlowRun> runs_of(const std::string& flow_id) {
    store::FlowRunQuery q;
    q.flow_id = flow_id;
    q.limit = 1000;
    auto page = store_->list_flow_runs(q);
    EXPECT_TRUE(page);
    return page->runs;
  }
  ManualClock clock_;
  FakeEvents events_;
  std::unique_ptr<store::Store> store_;
};

constexpr const char* kEveryMinute =
    R"({"type":"cron","cron":"* * * * *","timezone":"UTC","parameters":{"n":3},"catchup":"skip"})";

TEST_F(SchedulerTest, CreatesUpcomingRunsOnceWithStableKeys) {
  auto flow = register_flow(kEveryMinute);
  SchedulerService a(clock_, {}, events_);
  SchedulerService b(clock_, {}, events_);  // a second replica on the same database
  a.run_once(*store_);
  auto runs = runs_of(flow.id);
  ASSERT_EQ(runs.size(), 10u);  // PlanOptions::max_ahead
  std::set<std::string> keys;
  for (const auto& r : runs) {
    ASSERT_TRUE(r.idempotency_key.has_value());
    keys.insert(*r.idempotency_key);
    EXPECT_TRUE(r.auto_scheduled);
    EXPECT_EQ(r.parameters_json, R"({"n":3})");
    EXPECT_GE(r.scheduled_start_time, clock_.now() - 60s);  // due within the grace, or upcoming
  }
  EXPECT_EQ(keys.size(), 10u);
  EXPECT_TRUE(keys.count(schedule_run_key(flow.id, *parse_rfc3339("2026-06-01T10:01:00Z"))));
  EXPECT_TRUE(keys.count(schedule_run_key(flow.id, *parse_rfc3339("2026-06-01T10:09:00Z"))));
  b.run_once(*store_);
  a.run_once(*store_);
  EXPECT_EQ(runs_of(flow.id).size(), 10u);  // no doubles
  EXPECT_EQ(events_.due + events_.due_later, 10);
  // Time passes: the window of upcoming runs moves along, still without doubles.
  clock_.advance(5min);
  a.run_once(*store_);
  b.run_once(*store_);
  EXPECT_EQ(runs_of(flow.id).size(), 15u);
}

TEST_F(SchedulerTest, SkipPolicyAfterDowntimeAndPausedSchedules) {
  auto flow = register_flow(kEveryMinute);
  SchedulerService s(clock_, {}, events_);
  s.run_once(*store_);
  ASSERT_EQ(runs_of(flow.id).size(), 10u);
  clock_.advance(3h);  // the server was down; 170 fire times were missed
  s.run_once(*store_);
  auto runs = runs_of(flow.id);
  // Skip: none of the missed fire times, only upcoming ones.
  EXPECT_EQ(runs.size(), 20u);
  for (size_t i = 0; i < 10; ++i) EXPECT_GT(runs[i].scheduled_start_time, clock_.now() - 60s);
  ASSERT_TRUE(store_->set_schedule_active(flow.id, false).is_ok());
  clock_.advance(2h);
  s.run_once(*store_);
  EXPECT_EQ(runs_of(flow.id).size(), 20u);
}

}  // namespace
}  // namespace culvert::server
