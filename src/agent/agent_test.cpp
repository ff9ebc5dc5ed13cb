#include "agent/agent.hpp"

#include <gtest/gtest.h>

#include <deque>

namespace culvert::agent {
namespace {

class FakeApi final : public AgentApi {
 public:
  Result<std::string> register_agent(const std::string& name, const std::string& type,
                                     const std::vector<std::string>& labels) override {
    registered_name = name;
    registered_type = type;
    registered_labels = labels;
    return std::string("agent-1");
  }
  Status heartbeat(const std::string&) override {
    ++heartbeats;
    return Status::ok();
  }
  Result<std::vector<ClaimedRun>> claim(const std::string& agent_id, int max, Millis) override {
    EXPECT_EQ(agent_id, "agent-1");
    last_claim_max = max;
    std::vector<ClaimedRun> out;
    while (!queue.empty() && static_cast<int>(out.size()) < max) {
      out.push_back(queue.front());
      states[queue.front().id] = State::kSubmitted;
      queue.pop_front();
    }
    return out;
  }
  Result<State> get_run_state(const std::string& run_id) override {
    if (down) return unavailable("connection refused");
    auto it = states.find(run_id);
    if (it == states.end()) return not_found("no run " + run_id);
    return it->second;
  }
  Status set_run_state(const std::string& run_id, State state, const std::string& message) override {
    if (down) return unavailable("connection refused");
    states[run_id] = state;
    messages[run_id] = message;
    return Status::ok();
  }
  Status send_logs(const std::string& run_id, const std::vector<std::string>& lines) override {
    for (const auto& l : lines) logs[run_id].push_back(l);
    return Status::ok();
  }

  bool down = false;  // the server cannot be reached
  std::string registered_name, registered_type;
  std::vector<std::string> registered_labels;
  int heartbeats = 0;
  int last_claim_max = 0;
  std::deque<ClaimedRun> queue;
  std::map<std::string, State> states;
  std::map<std::string, std::string> messages;
  std::map<std::string, std::vector<std::string>> logs;
};

struct FakeLaunchState {
  std::optional<ExitInfo> exit;
  bool stopped = false;
  std::vector<std::string> output;
};

class FakeLaunch final : public Launch {
 public:
  explicit FakeLaunch(FakeLaunchState* s) : s_(s) {}
  std::optional<ExitInfo> poll() override { return s_->exit; }
  void stop(std::chrono::milliseconds) override {
    s_->stopped = true;
    if (!s_->exit) s_->exit = ExitInfo{.signal = 15, .reason = "killed by signal 15 (SIGTERM)"};
  }
  std::string describe() const override { return "fake"; }
  std::vector<std::string> drain_output() override { return std::exchange(s_->output, {}); }

 private:
  FakeLaunchState* s_;
};

class FakeLauncher final : public Launcher {
 public:
  std::string type() const override { return "local"; }
  Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) override {
    specs.push_back(spec);
    if (fail_next) {
      fail_next = false;
      return unavailable("cannot execute 'nope': No such file or directory");
    }
    return std::unique_ptr<Launch>(std::make_unique<FakeLaunch>(&launches[spec.flow_run_id]));
  }
  std::vector<LaunchSpec> specs;
  std::map<std::string, FakeLaunchState> launches;
  bool fail_next = false;
};

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() {
    options.name = "a1";
    options.labels = {"dev"};
    options.max_concurrent = 2;
    options.command = {"culvert", "execute"};
    options.api_url = "http://127.0.0.1:1";
    options.env = {{"FROM_AGENT", "1"}, {"CULVERT_API_TOKEN", "must-be-overridden"}};
    agent = std::make_unique<Agent>(options, api, api, launcher, clock);
    EXPECT_TRUE(agent->register_self().is_ok());
  }
  void enqueue(const std::string& id) {
    api.queue.push_back(ClaimedRun{id, "flow-1", "etl", "tok-" + id, R"({"type":"local"})"});
  }
  FakeApi api;
  FakeLauncher launcher;
  ManualClock clock;
  AgentOptions options;
  std::unique_ptr<Agent> agent;
};

TEST_F(AgentTest, RegistersWithTypeAndLabels) {
  EXPECT_EQ(agent->id(), "agent-1");
  EXPECT_EQ(api.registered_type, "local");
  EXPECT_EQ(api.registered_labels, std::vector<std::string>{"dev"});
}

TEST_F(AgentTest, LaunchesWithRunScopedEnvironmentAndHonoursMaxConcurrent) {
  enqueue("r1");
  enqueue("r2");
  enqueue("r3");
  auto n = agent->claim_and_launch(Millis(0));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(api.last_claim_max, 2);
  ASSERT_EQ(launcher.specs.size(), 2u);
  const auto& env = launcher.specs[0].env;
  EXPECT_EQ(env.at("CULVERT_FLOW_RUN_ID"), "r1");
  EXPECT_EQ(env.at("CULVERT_API_TOKEN"), "tok-r1");  // the run's token, never the agent's
  EXPECT_EQ(env.at("CULVERT_API_URL"), "http://127.0.0.1:1");
  EXPECT_EQ(env.at("FROM_AGENT"), "1");
  EXPECT_EQ(launcher.specs[0].command, (std::vector<std::string>{"culvert", "execute"}));
  // Full: no claim at all.
  api.last_claim_max = -1;
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 0);
  EXPECT_EQ(api.last_claim_max, -1);
  // One finishes (reporting Success itself): one slot frees up.
  api.states["r1"] = State::kSuccess;
  launcher.launches["r1"].exit = ExitInfo{.exit_code = 0, .reason = "exited with code 0"};
  agent->monitor_once(false);
  EXPECT_EQ(agent->active_runs(), 1u);
  EXPECT_EQ(api.states["r1"], State::kSuccess);  // untouched
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  EXPECT_EQ(api.last_claim_max, 1);
}

TEST_F(AgentTest, ExitWithoutFinalStateIsCrashedWithTheReason) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  api.states["r1"] = State::kRunning;
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kRunning);  // still running
  launcher.launches["r1"].exit = ExitInfo{.signal = 9, .reason = "killed by signal 9 (SIGKILL)"};
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_NE(api.messages["r1"].find("killed by signal 9"), std::string::npos) << api.messages["r1"];
  EXPECT_EQ(agent->active_runs(), 0u);
}

TEST_F(AgentTest, AnEndSeenWhileTheServerIsDownIsReportedWhenItIsBack) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  api.states["r1"] = State::kRunning;
  api.down = true;
  launcher.launches["r1"].exit = ExitInfo{.signal = 9, .reason = "killed by signal 9 (SIGKILL)"};
  agent->monitor_once(false);
  EXPECT_EQ(agent->active_runs(), 0u);  // the slot is free at once
  EXPECT_EQ(agent->pending_reports(), 1u);
  agent->monitor_once(false);  // still down: kept
  EXPECT_EQ(agent->pending_reports(), 1u);
  EXPECT_EQ(api.states["r1"], State::kRunning);
  api.down = false;
  agent->monitor_once(false);
  EXPECT_EQ(agent->pending_reports(), 0u);
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_NE(api.messages["r1"].find("killed by signal 9"), std::string::npos) << api.messages["r1"];
}

TEST_F(AgentTest, CommandForOverridesTheDefaultCommandWhenItHasOne) {
  options.command_for = [](const ClaimedRun& run) -> std::vector<std::string> {
    if (run.id == "r1") return {"/cache/abc", "execute"};
    return {};  // not cached: the default command
  };
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  enqueue("r1");
  enqueue("r2");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 2);
  ASSERT_EQ(launcher.specs.size(), 2u);
  EXPECT_EQ(launcher.specs[0].command, (std::vector<std::string>{"/cache/abc", "execute"}));
  EXPECT_EQ(launcher.specs[1].command, (std::vector<std::string>{"culvert", "execute"}));
  EXPECT_EQ(launcher.specs[0].env.at("CULVERT_API_TOKEN"), "tok-r1");
}

TEST_F(AgentTest, OomIsNamed) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  launcher.launches["r1"].exit = ExitInfo{.exit_code = 137, .oom_killed = true, .reason = "exited with code 137"};
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_NE(api.messages["r1"].find("OOMKilled"), std::string::npos) << api.messages["r1"];
}

TEST_F(AgentTest, CancelStopsTheInfrastructure) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  api.states["r1"] = State::kCancelling;
  agent->monitor_once(false);  // no cancel check this round
  EXPECT_FALSE(launcher.launches["r1"].stopped);
  agent->monitor_once(true);
  EXPECT_TRUE(launcher.launches["r1"].stopped);
  EXPECT_EQ(api.states["r1"], State::kCancelled);
  EXPECT_EQ(agent->active_runs(), 0u);
}

TEST_F(AgentTest, LaunchFailureIsCrashed) {
  enqueue("r1");
  launcher.fail_next = true;
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 0);
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_NE(api.messages["r1"].find("could not start"), std::string::npos);
  EXPECT_NE(api.messages["r1"].find("No such file"), std::string::npos);
}

TEST_F(AgentTest, ForwardsInfrastructureOutput) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  launcher.launches["r1"].output = {"line one", "line two"};
  agent->monitor_once(false);
  EXPECT_EQ(api.logs["r1"], (std::vector<std::string>{"line one", "line two"}));
}

}  // namespace
}  // namespace culvert::agent
