// The liveness and log-retention services against a real SQLite store, with simulated
// time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "server/liveness.hpp"
#include "server/retention.hpp"
#include "store/store.hpp"
#include "store/testing.hpp"

namespace culvert::server {
namespace {

using std::chrono::seconds;

class RecordingEvents final : public RunEvents {
 public:
  void run_due(const std::vector<std::string>&) override { ++due; }
  void run_due_at(SysTime) override {}
  void run_changed(const std::string& id, bool final) override { changed.emplace_back(id, final); }
  void child_changed(const std::string& parent) override { parents.push_back(parent); }
  int due = 0;
  std::vector<std::pair<std::string, bool>> changed;
  std::vector<std::string> parents;
};

class LivenessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::TestDatabase::create("sqlite");
    ASSERT_TRUE(db.is_ok());
    db_ = std::make_unique<store::TestDatabase>(std::move(db).value());
    store::StoreOptions o;
    o.clock = &clock_;
    store_ = std::move(store::open_store(db_->url(), o)).value();
    service_ = std::make_unique<LivenessService>(clock_, LivenessOptions{}, events_, nullptr);
    auto agent = store_->register_agent({"agent", "local", {}});
    ASSERT_TRUE(agent.is_ok());
    agent_id_ = agent->id;
  }

  std::string flow(int max_run_retries) {
    store::NewFlowVersion v;
    v.project = "p";
    v.name = "f" + std::to_string(max_run_retries);
    v.artifact_uri = "file:///x";
    v.artifact_sha256 = sha256_hex("x");
    v.max_run_retries = max_run_retries;
    return store_->register_flow(v)->id;
  }

  // A run of `flow_id`, claimed by the agent (Submitted), optionally Running.
  store::FlowRun started_run(const std::string& flow_id, bool running) {
    store::NewFlowRun n;
    n.flow_id = flow_id;
    auto created = store_->create_flow_run(n);
    EXPECT_TRUE(created.is_ok());
    store::ClaimRequest c;
    c.agent_id = agent_id_;
    c.now = clock_.now();
    auto claimed = store_->claim_runs(c);
    EXPECT_EQ(claimed->size(), 1u);
    if (!running) return claimed->front();
    store::SetFlowRunState s;
    s.run_id = created->first.id;
    s.state = State::kRunning;
    s.now = clock_.now();
    return *store_->set_flow_run_state(s);
  }

  State state_of(const std::string& id) { return store_->get_flow_run(id)->state; }

  ManualClock clock_;
  RecordingEvents events_;
  std::unique_ptr<store::TestDatabase> db_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<LivenessService> service_;
  std::string agent_id_;
};

// A restarted server cannot tell a silent run from one that could not reach it while
// it was down: it waits one heartbeat timeout (one submitted deadline) before judging.
TEST_F(LivenessTest, ARestartedServerGivesRunsOneTimeoutToReachIt) {
  auto running = started_run(flow(0), true);
  auto submitted = started_run(flow(1), false);
  clock_.advance(seconds(120));  // the server is down for two minutes
  LivenessService restarted(clock_, LivenessOptions{}, events_, nullptr);
  auto c = restarted.run_pass(*store_);
  EXPECT_EQ(c.crashed, 0);
  EXPECT_EQ(c.returned_to_pending, 0);
  EXPECT_EQ(state_of(running.id), State::kRunning);
  clock_.advance(seconds(20));  // within the timeout the run heartbeats again
  ASSERT_TRUE(store_->heartbeat_flow_run(running.id, clock_.now()).is_ok());
  clock_.advance(seconds(15));  // 35 s after the restart: past the 30 s heartbeat timeout
  c = restarted.run_pass(*store_);
  EXPECT_EQ(c.crashed, 0);  // it was heard 15 s ago
  EXPECT_EQ(state_of(submitted.id), State::kSubmitted);  // the 60 s deadline runs from the restart
  clock_.advance(seconds(30));  // 65 s after the restart, the run silent for 45 s
  c = restarted.run_pass(*store_);
  EXPECT_EQ(c.crashed, 1);
  EXPECT_EQ(c.returned_to_pending, 1);
  EXPECT_EQ(state_of(running.id), State::kCrashed);
  EXPECT_EQ(state_of(submitted.id), State::kPending);
}

// A child run found silent is Crashed (and rescheduled under the flow's run retries)
// like any run, and its parent's waits on its children are woken.
TEST_F(LivenessTest, ASilentChildRunCrashesAndWakesItsParent) {
  std::string f = flow(1);
  auto parent = started_run(f, true);
  store::NewChildRuns n;
  n.parent_run_id = parent.id;
  n.task = "score";
  n.chunks = {{0, 0, 10}};
  auto kids = store_->create_child_runs(n);
  ASSERT_TRUE(kids.is_ok()) << kids.status().to_string();
  const std::string child = (*kids)[0].first.id;
  store::ClaimRequest c;
  c.agent_id = agent_id_;
  c.now = clock_.now();
  ASSERT_EQ(store_->claim_runs(c)->size(), 1u);
  store::SetFlowRunState s;
  s.run_id = child;
  s.state = State::kRunning;
  s.now = clock_.now();
  ASSERT_TRUE(store_->set_flow_run_state(s).is_ok());
  clock_.advance(seconds(20));
  ASSERT_TRUE(store_->heartbeat_flow_run(parent.id, clock_.now()).is_ok());  // the parent lives on
  clock_.advance(seconds(20));
  ASSERT_TRUE(store_->heartbeat_flow_run(parent.id, clock_.now()).is_ok());
  auto counts = service_->run_pass(*store_);
  EXPECT_EQ(counts.crashed, 1);
  EXPECT_EQ(counts.rescheduled, 1);
  EXPECT_EQ(state_of(child), State::kScheduled);  // attempt 2 of 2, the same chunk
  EXPECT_EQ(state_of(parent.id), State::kRunning);
  EXPECT_EQ(events_.parents, std::vector<std::string>{parent.id});
}

TEST_F(LivenessTest, LogRetentionDeletesTheLogsOfRunsEndedLongerAgoOnly) {
  auto f = flow(0);
  auto log = [&](const std::string& id) {
    store::LogEntry e;
    e.flow_run_id = id;
    e.message = "hello";
    e.timestamp = clock_.now();
    ASSERT_TRUE(store_->append_logs({e}).is_ok());
  };
  auto end = [&](const std::string& id) {
    store::SetFlowRunState s;
    s.run_id = id;
    s.state = State::kSuccess;
    s.now = clock_.now();
    ASSERT_TRUE(store_->set_flow_run_state(s).is_ok());
  };
  auto lines = [&](const std::string& id) { return store_->read_logs(id, 0, 100)->size(); };
  RetentionService retention(clock_, RetentionOptions{.retention = std::chrono::hours(24 * 30)});
  auto old_run = started_run(f, true);
  log(old_run.id);
  end(old_run.id);
  clock_.advance(std::chrono::hours(24 * 20));
  auto newer_run = started_run(f, true);
  log(newer_run.id);
  end(newer_run.id);
  auto open_run = started_run(f, true);
  log(open_run.id);
  EXPECT_EQ(retention.run_pass(*store_), 0);  // nothing ended 30 days ago yet
  clock_.advance(std::chrono::hours(24 * 11));  // the old run ended 31 days ago
  EXPECT_EQ(retention.run_pass(*store_), 1);
  EXPECT_EQ(lines(old_run.id), 0u);
  EXPECT_EQ(lines(newer_run.id), 1u);
  EXPECT_EQ(lines(open_run.id), 1u);
  EXPECT_EQ(retention.run_pass(*store_), 0);  // the cursor moved on
  clock_.advance(std::chrono::hours(24 * 30));
  EXPECT_EQ(retention.run_pass(*store_), 1);
  EXPECT_EQ(lines(newer_run.id), 0u);
  EXPECT_EQ(lines(open_run.id), 1u);  // still Running: kept
}

TEST_F(LivenessTest, HeartbeatingRunsAreLeftAlone) {
  auto run = started_run(flow(0), true);
  for (int i = 0; i < 10; ++i) {
    clock_.advance(seconds(10));
    ASSERT_TRUE(store_->heartbeat_flow_run(run.id, clock_.now()).is_ok());
    auto c = service_->run_pass(*store_);
    EXPECT_EQ(c.crashed, 0);
  }
  EXPECT_EQ(state_of(run.id), State::kRunning);
}

TEST_F(LivenessTest, SilentRunCrashesAfterThreeMissedHeartbeats) {
  auto run = started_run(flow(0), true);
  clock_.advance(seconds(30));
  EXPECT_EQ(service_->run_pass(*store_).crashed, 0);  // exactly at the limit: not yet
  clock_.advance(seconds(1));
  auto c = service_->run_pass(*store_);
  EXPECT_EQ(c.crashed, 1);
  EXPECT_EQ(c.rescheduled, 0);
  auto after = store_->get_flow_run(run.id);
  EXPECT_EQ(after->state, State::kCrashed);
  EXPECT_THAT(after->state_message, ::testing::HasSubstr("no heartbeat"));
  ASSERT_EQ(events_.changed.size(), 1u);
  EXPECT_TRUE(events_.changed[0].second);
  // A second pass changes nothing.
  EXPECT_EQ(service_->run_pass(*store_).crashed, 0);
}

TEST_F(LivenessTest, CrashedRunIsRescheduledWhileRetriesRemain) {
  auto f = flow(1);
  auto run = started_run(f, true);
  clock_.advance(seconds(31));
  auto c = service_->run_pass(*store_);
  EXPECT_EQ(c.crashed, 1);
  EXPECT_EQ(c.rescheduled, 1);
  EXPECT_EQ(events_.due, 1);
  auto again = store_->get_flow_run(run.id);
  EXPECT_EQ(again->state, State::kScheduled);
  EXPECT_THAT(again->state_message, ::testing::HasSubstr("attempt 2 of 2"));
  auto history = store_->get_flow_run_history(run.id);
  ASSERT_GE(history->size(), 2u);
  EXPECT_EQ((*history)[history->size() - 2].state, State::kCrashed);
  // Second attempt crashes too: no retries left.
  store::ClaimRequest cr;
  cr.agent_id = agent_id_;
  cr.now = clock_.now();
  ASSERT_EQ(store_->claim_runs(cr)->size(), 1u);
  store::SetFlowRunState s;
  s.run_id = run.id;
  s.state = State::kRunning;
  s.now = clock_.now();
  ASSERT_TRUE(store_->set_flow_run_state(s).is_ok());
  clock_.advance(seconds(31));
  c = service_->run_pass(*store_);
  EXPECT_EQ(c.crashed, 1);
  EXPECT_EQ(c.rescheduled, 0);
  EXPECT_EQ(state_of(run.id), State::kCrashed);
}

TEST_F(LivenessTest, SubmittedRunReturnsToPendingAfterTheDeadline) {
  auto run = started_run(flow(0), false);
  EXPECT_EQ(run.state, State::kSubmitted);
  clock_.advance(seconds(59));
  EXPECT_EQ(service_->run_pass(*store_).returned_to_pending, 0);
  clock_.advance(seconds(2));
  auto c = service_->run_pass(*store_);
  EXPECT_EQ(c.returned_to_pending, 1);
  auto after = store_->get_flow_run(run.id);
  EXPECT_EQ(after->state, State::kPending);
  EXPECT_FALSE(after->agent_id.has_value());
  EXPECT_THAT(after->state_message, ::testing::HasSubstr("returned to Pending"));
  EXPECT_EQ(events_.due, 1);
}

// A run whose agent reported its infrastructure (a remote task still starting) and keeps
// heartbeating stays Submitted past the deadline: the agent's own start timeout decides.
// A run with nothing reported is returned as before, and once the agent falls silent the
// deadline applies to the reported run too.
TEST_F(LivenessTest, ASubmittedRunItsLiveAgentReportedStartingIsNotHandedToAnother) {
  auto starting = started_run(flow(0), false);
  auto reported = store_->set_flow_run_infrastructure(starting.id, agent_id_, "ecs-task",
                                                      "arn:aws:ecs:eu-west-1:1:task/c/1", clock_.now());
  ASSERT_TRUE(reported.is_ok()) << reported.status().to_string();
  auto unreported = started_run(flow(1), false);
  for (int i = 0; i < 12; ++i) {  // two minutes of agent heartbeats
    clock_.advance(seconds(10));
    ASSERT_TRUE(store_->heartbeat_agent(agent_id_, clock_.now()).is_ok());
    service_->run_pass(*store_);
  }
  EXPECT_EQ(state_of(starting.id), State::kSubmitted);
  EXPECT_EQ(state_of(unreported.id), State::kPending);
  clock_.advance(seconds(31));  // the agent is silent: three missed heartbeats
  EXPECT_EQ(service_->run_pass(*store_).returned_to_pending, 1);
  EXPECT_EQ(state_of(starting.id), State::kPending);
}

TEST_F(LivenessTest, SilentCancellingRunBecomesCancelled) {
  auto run = started_run(flow(3), true);
  store::SetFlowRunState s;
  s.run_id = run.id;
  s.state = State::kCancelling;
  s.now = clock_.now();
  ASSERT_TRUE(store_->set_flow_run_state(s).is_ok());
  clock_.advance(seconds(31));
  auto c = service_->run_pass(*store_);
  EXPECT_EQ(c.cancelled, 1);
  EXPECT_EQ(c.rescheduled, 0);
  EXPECT_EQ(state_of(run.id), State::kCancelled);
}

TEST_F(LivenessTest, IntervalsAreConfigurable) {
  LivenessOptions o;
  o.heartbeat_timeout = seconds(5);
  o.submitted_deadline = seconds(2);
  LivenessService fast(clock_, o, events_, nullptr);
  auto running = started_run(flow(0), true);
  clock_.advance(seconds(6));
  auto submitted = started_run(flow(0), false);
  clock_.advance(seconds(3));
  auto c = fast.run_pass(*store_);
  EXPECT_EQ(c.crashed, 1);
  EXPECT_EQ(c.returned_to_pending, 1);
}

}  // namespace
}  // namespace culvert::server
