#include "agent/agent.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/docker_launcher.hpp"
#include "agent/launcher_registry.hpp"
#include "agent/local_launcher.hpp"
#include "core/crypto.hpp"
#include "test_http_server.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

namespace culvert::agent {
namespace {

class FakeApi final : public AgentApi {
 public:
  Result<std::string> register_agent(const std::string& name, const std::string& type,
                                     const std::vector<std::string>& labels, int max_concurrent) override {
    registered_name = name;
    registered_max_concurrent = max_concurrent;
    registered_type = type;
    stopped = false;
    registered_labels = labels;
    ++registrations;
    return std::string("agent-1");
  }
  Status deregister_agent(const std::string& agent_id) override {
    deregistered.push_back(agent_id);
    stopped = true;
    return Status::ok();
  }
  Status heartbeat(const std::string&) override {
    ++heartbeats;
    if (on_heartbeat) on_heartbeat(heartbeats);
    return heartbeat_status;
  }
  Result<std::vector<ClaimedRun>> claim(const std::string& agent_id, const std::vector<std::string>& types, int max,
                                        Millis) override {
    EXPECT_EQ(agent_id, "agent-1");
    last_claim_max = max;
    last_claim_types = types;
    ++claims;
    if (stopped) return Status(StatusCode::kConflict, "agent agent-1 ('a1') is stopped (deregistered); register it again");
    if (!claim_status.is_ok()) return claim_status;
    std::vector<ClaimedRun> out;
    while (!queue.empty() && static_cast<int>(out.size()) < max) {
      out.push_back(queue.front());
      states[queue.front().id] = State::kSubmitted;
      queue.pop_front();
    }
    return out;
  }
  Result<RunState> get_run_state(const std::string& run_id) override {
    if (down) return unavailable("connection refused");
    auto it = states.find(run_id);
    if (it == states.end()) return not_found("no run " + run_id);
    auto m = messages.find(run_id);
    return RunState{it->second, m == messages.end() ? "" : m->second};
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
  Status report_infrastructure(const std::string& run_id, const Infrastructure& i) override {
    if (down) return unavailable("connection refused");
    infra[run_id] = i;
    return Status::ok();
  }
  Result<std::vector<UnfinishedRun>> list_unfinished_runs(const std::string& agent_id) override {
    EXPECT_EQ(agent_id, "agent-1");
    return unfinished;
  }

  bool down = false;  // the server cannot be reached
  bool stopped = false;  // deregistered: claims answer 409 until it registers again
  int registrations = 0;
  Status heartbeat_status;
  std::function<void(int)> on_heartbeat;
  Status claim_status;
  int claims = 0;
  std::vector<std::string> last_claim_types;
  std::vector<std::string> deregistered;
  std::map<std::string, Infrastructure> infra;
  std::vector<UnfinishedRun> unfinished;
  std::string registered_name, registered_type;
  std::vector<std::string> registered_labels;
  int registered_max_concurrent = 0;
  int heartbeats = 0;
  int last_claim_max = 0;
  std::deque<ClaimedRun> queue;
  std::map<std::string, State> states;
  std::map<std::string, std::string> messages;
  std::map<std::string, std::vector<std::string>> logs;
};

struct FakeLaunchState {
  std::optional<ExitInfo> exit;
  std::atomic<bool> stopped{false};
  std::vector<std::string> output;
  int polls = 0;
  // When set, stop() blocks until it is released (a container that takes its grace).
  std::mutex mu;
  std::condition_variable cv;
  bool block_stop = false;
  bool in_stop = false;
  int lingering_stops = 0;  // stop_lingering() calls
  int cancels = 0;          // cancel() calls
  std::string cancel_why;   // the last cancel()'s cause
  void release() {
    std::lock_guard lock(mu);
    block_stop = false;
    cv.notify_all();
  }
};

class FakeLaunch final : public Launch {
 public:
  FakeLaunch(FakeLaunchState* s, std::string id) : s_(s), id_(std::move(id)) {}
  std::optional<ExitInfo> poll() override {
    ++s_->polls;
    return s_->exit;
  }
  void stop(std::chrono::milliseconds) override {
    std::unique_lock lock(s_->mu);
    s_->in_stop = true;
    s_->cv.notify_all();
    s_->cv.wait(lock, [&] { return !s_->block_stop; });
    s_->stopped = true;
    if (!s_->exit) s_->exit = ExitInfo{.signal = 15, .reason = "killed by signal 15 (SIGTERM)"};
  }
  void stop_lingering(std::chrono::milliseconds grace) override {
    ++s_->lingering_stops;
    stop(grace);
  }
  void cancel(std::chrono::milliseconds grace, const std::string& why) override {
    ++s_->cancels;
    s_->cancel_why = why;
    stop(grace);
  }
  std::string describe() const override { return "fake " + id_; }
  Infrastructure infrastructure() const override { return {"fake", "infra-" + id_}; }
  std::vector<std::string> drain_output() override { return std::exchange(s_->output, {}); }

 private:
  FakeLaunchState* s_;
  std::string id_;
};

class FakeLauncher final : public Launcher {
 public:
  std::string type() const override { return "local"; }
  int launch_parallelism() const override { return parallelism; }
  Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) override {
    std::unique_lock lock(mu);
    specs.push_back(spec);
    if (rendezvous > 0) {
      // Waits until `rendezvous` launches are inside launch() at once (or gives up after
      // a long while, so that a sequential agent fails the test instead of hanging).
      ++in_flight;
      max_in_flight = std::max(max_in_flight, in_flight);
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(20), [&] { return max_in_flight >= rendezvous; });
      --in_flight;
    }
    if (fail_next || spec.flow_run_id == fail_run) {
      fail_next = false;
      return unavailable("cannot execute 'nope': No such file or directory");
    }
    return std::unique_ptr<Launch>(std::make_unique<FakeLaunch>(&launches[spec.flow_run_id], spec.flow_run_id));
  }
  // Infrastructure "infra-<run>" exists while `alive` names it.
  Result<std::unique_ptr<Launch>> adopt(const LaunchSpec& spec, const Infrastructure& infra) override {
    adopted.push_back(spec.flow_run_id);
    if (adopt_unavailable) return unavailable("the engine is not answering");
    if (infra.kind != "fake") return unprocessable("cannot adopt " + infra.kind);
    if (!alive.count(infra.id)) return not_found("the run's fake " + infra.id + " is gone");
    return std::unique_ptr<Launch>(std::make_unique<FakeLaunch>(&launches[spec.flow_run_id], spec.flow_run_id));
  }
  std::vector<std::optional<ExitInfo>> poll_all(const std::vector<Launch*>& ls) override {
    ++poll_all_calls;
    last_poll_all_size = ls.size();
    return Launcher::poll_all(ls);
  }
  std::mutex mu;  // launch() may run on several threads at once (parallelism > 1)
  std::condition_variable cv;
  int parallelism = 1;
  int rendezvous = 0;
  int in_flight = 0;
  int max_in_flight = 0;
  std::string fail_run;
  std::vector<LaunchSpec> specs;
  std::map<std::string, FakeLaunchState> launches;
  std::set<std::string> alive;
  std::vector<std::string> adopted;
  bool fail_next = false;
  bool adopt_unavailable = false;
  int poll_all_calls = 0;
  size_t last_poll_all_size = 0;
};

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() {
    options.name = "a1";
    options.labels = {"dev"};
    options.max_concurrent = 2;
    options.api_url = "http://127.0.0.1:1";
    options.env = {{"FROM_AGENT", "1"}, {"CULVERT_API_TOKEN", "must-be-overridden"}};
    // Stops run when the test says (run_stops), not on threads of their own.
    options.run_async = [this](std::function<void()> f) { async.push_back(std::move(f)); };
    agent = std::make_unique<Agent>(options, api, api, launcher, clock);
    EXPECT_TRUE(agent->register_self().is_ok());
  }
  void enqueue(const std::string& id, const std::string& run_config = R"({"type":"local"})") {
    api.queue.push_back(ClaimedRun{id, "flow-1", "etl", "tok-" + id, run_config});
  }
  void run_stops() {
    auto fs = std::exchange(async, {});
    for (auto& f : fs) f();
  }
  std::vector<std::function<void()>> async;
  FakeApi api;
  FakeLauncher launcher;
  ManualClock clock;
  AgentOptions options;
  std::unique_ptr<Agent> agent;
};

TEST_F(AgentTest, RegistersWithTypeLabelsAndMaxConcurrent) {
  EXPECT_EQ(agent->id(), "agent-1");
  EXPECT_EQ(api.registered_type, "local");
  EXPECT_EQ(api.registered_labels, std::vector<std::string>{"dev"});
  EXPECT_EQ(api.registered_max_concurrent, 2);
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
  EXPECT_EQ(launcher.specs[0].flow_id, "flow-1");
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

TEST_F(AgentTest, OomIsNamed) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  launcher.launches["r1"].exit = ExitInfo{.exit_code = 137, .oom_killed = true, .reason = "exited with code 137"};
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_NE(api.messages["r1"].find("OOMKilled"), std::string::npos) << api.messages["r1"];
  // What the launcher said is kept (an ECS task's stop code and OutOfMemoryError).
  EXPECT_NE(api.messages["r1"].find("exited with code 137"), std::string::npos) << api.messages["r1"];
}

// A run that reported its end while its infrastructure runs on is stopped through
// stop_lingering (which may first let it end by itself); a cancelled one through stop.
TEST_F(AgentTest, ARunThatEndedButLingersIsStoppedAsLingering) {
  enqueue("ended");
  enqueue("cancelled");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 2);
  api.states["ended"] = State::kSuccess;
  api.states["cancelled"] = State::kCancelling;
  agent->monitor_once(true);
  ASSERT_EQ(async.size(), 2u);
  run_stops();
  EXPECT_TRUE(launcher.launches["ended"].stopped);
  EXPECT_EQ(launcher.launches["ended"].lingering_stops, 1);
  EXPECT_TRUE(launcher.launches["cancelled"].stopped);
  EXPECT_EQ(launcher.launches["cancelled"].lingering_stops, 0);
}

TEST_F(AgentTest, ARunningRunKilledAtItsTimeLimitIsTimedOutAndANeverRunningOneCrashed) {
  enqueue("r1");
  enqueue("r2");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 2);
  api.states["r1"] = State::kRunning;  // r2 stays Submitted: it never ran
  for (const char* id : {"r1", "r2"})
    launcher.launches[id].exit = ExitInfo{.exit_code = -1, .timed_out = true,
                                          .reason = "Slurm job 7 ended TIMEOUT: Slurm killed it at its time limit"};
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kTimedOut);
  EXPECT_NE(api.messages["r1"].find("TIMEOUT"), std::string::npos) << api.messages["r1"];
  EXPECT_EQ(api.states["r2"], State::kCrashed);
}

TEST_F(AgentTest, TheInfrastructuresOwnOutputIsAttachedOnlyWhenTheRunNeverReachedRunning) {
  enqueue("r1");
  enqueue("r2");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 2);
  api.states["r2"] = State::kRunning;
  for (const char* id : {"r1", "r2"})
    launcher.launches[id].exit =
        ExitInfo{.exit_code = 127, .reason = "FAILED", .output_if_never_running = {"[slurm] job output:", "module: not found"}};
  agent->monitor_once(false);
  ASSERT_EQ(api.logs["r1"].size(), 2u);
  EXPECT_EQ(api.logs["r1"][1], "module: not found");
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_TRUE(api.logs["r2"].empty());  // it ran: its own logs say what happened
  EXPECT_EQ(api.states["r2"], State::kCrashed);
}

TEST_F(AgentTest, CancelStopsTheInfrastructure) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  api.states["r1"] = State::kCancelling;
  agent->monitor_once(false);  // no cancel check this round
  EXPECT_FALSE(launcher.launches["r1"].stopped);
  agent->monitor_once(true);
  EXPECT_EQ(agent->stops_in_progress(), 1u);
  run_stops();
  EXPECT_TRUE(launcher.launches["r1"].stopped);
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCancelled);
  EXPECT_EQ(agent->active_runs(), 0u);
}

// Who cancelled (the Cancelling state's message) reaches the launch, the run's log and
// the run's final state.
TEST_F(AgentTest, ACancelNamesWhoCancelledToTheLaunchTheLogAndTheFinalState) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  api.states["r1"] = State::kCancelling;
  api.messages["r1"] = "cancel requested by alice-oncall (user token)";
  agent->monitor_once(true);
  run_stops();
  EXPECT_EQ(launcher.launches["r1"].cancels, 1);
  EXPECT_EQ(launcher.launches["r1"].cancel_why, "cancel requested by alice-oncall (user token)");
  EXPECT_EQ(launcher.launches["r1"].lingering_stops, 0);
  EXPECT_EQ(api.logs["r1"], std::vector<std::string>{"[agent] cancel requested by alice-oncall (user token); stopping fake r1"});
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCancelled);
  EXPECT_EQ(api.messages["r1"],
            "cancelled (cancel requested by alice-oncall (user token)); fake r1 stopped (killed by signal 15 (SIGTERM))");
}

TEST_F(AgentTest, LaunchFailureIsCrashed) {
  enqueue("r1");
  launcher.fail_next = true;
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 0);
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_NE(api.messages["r1"].find("could not start"), std::string::npos);
  EXPECT_NE(api.messages["r1"].find("No such file"), std::string::npos);
}

TEST_F(AgentTest, ALauncherThatAllowsItLaunchesTheRunsOfAClaimSeveralAtOnce) {
  agent.reset();
  options.max_concurrent = 6;
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  launcher.parallelism = 3;
  launcher.rendezvous = 3;  // each launch waits until three are under way together
  for (int i = 1; i <= 6; ++i) enqueue("r" + std::to_string(i));
  launcher.fail_run = "r4";
  auto n = agent->claim_and_launch(Millis(0));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 5);
  EXPECT_EQ(launcher.max_in_flight, 3);  // never more than the launcher allows
  EXPECT_EQ(launcher.specs.size(), 6u);
  EXPECT_EQ(agent->active_runs(), 5u);
  // The one that failed is Crashed with its reason; the others are reported in order.
  EXPECT_EQ(api.states["r4"], State::kCrashed);
  EXPECT_NE(api.messages["r4"].find("No such file"), std::string::npos);
  for (const char* id : {"r1", "r2", "r3", "r5", "r6"}) {
    EXPECT_EQ(api.infra.count(id), 1u) << id;
    EXPECT_NE(api.states[id], State::kCrashed) << id;
  }
}

TEST_F(AgentTest, ForwardsInfrastructureOutput) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  launcher.launches["r1"].output = {"line one", "line two"};
  agent->monitor_once(false);
  EXPECT_EQ(api.logs["r1"], (std::vector<std::string>{"line one", "line two"}));
}

TEST_F(AgentTest, RunConfigEnvOverridesAgentEnvAndTheRunsOwnVariablesWin) {
  options.env = {{"SAME", "from-agent"}, {"AGENT_ONLY", "a"}, {"CULVERT_FLOW_RUN_ID", "evil"},
                 {"CULVERT_WORKERS", "3"}};
  options.workers = 8;
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  enqueue("r1", R"({"type":"local","env":{"SAME":"from-config","N":5,"CULVERT_API_TOKEN":"evil",
                    "CULVERT_API_URL":"http://evil"}})");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  const auto& env = launcher.specs.at(0).env;
  EXPECT_EQ(env.at("SAME"), "from-config");
  EXPECT_EQ(env.at("AGENT_ONLY"), "a");
  EXPECT_EQ(env.at("N"), "5");
  EXPECT_EQ(env.at("CULVERT_WORKERS"), "3");  // --env overrides --workers
  EXPECT_EQ(env.at("CULVERT_API_TOKEN"), "tok-r1");
  EXPECT_EQ(env.at("CULVERT_API_URL"), "http://127.0.0.1:1");
  EXPECT_EQ(env.at("CULVERT_FLOW_RUN_ID"), "r1");
}

TEST_F(AgentTest, WorkersArePassedAsCulvertWorkers) {
  options.workers = 6;
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  EXPECT_EQ(launcher.specs.at(0).env.at("CULVERT_WORKERS"), "6");
}

TEST_F(AgentTest, ClaimCarriesTheLaunchersTypesAndAForeignTypeIsNeverLaunched) {
  enqueue("r1", R"({"type":"docker","image":"x"})");  // an older server might hand it out
  enqueue("r2", R"({"type":7})");
  enqueue("r3", R"([1,2])");
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 0);
  EXPECT_EQ(api.last_claim_types, std::vector<std::string>{"local"});
  EXPECT_TRUE(launcher.specs.empty());
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  EXPECT_NE(api.messages["r1"].find("of type 'docker', which a local agent does not launch"), std::string::npos)
      << api.messages["r1"];
  EXPECT_EQ(api.states["r2"], State::kCrashed);
  EXPECT_NE(api.messages["r2"].find("\"type\" is not a string"), std::string::npos) << api.messages["r2"];
  enqueue("r3", R"([1,2])");
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 0);
  EXPECT_NE(api.messages["r3"].find("not a JSON object"), std::string::npos) << api.messages["r3"];
}

TEST_F(AgentTest, AStopThatTakesItsGraceDelaysNeitherHeartbeatsNorOtherRuns) {
  enqueue("r1");
  enqueue("r2");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 2);
  api.states["r1"] = State::kCancelling;
  api.states["r2"] = State::kRunning;
  agent->monitor_once(true);  // r1's stop starts, off the monitor
  EXPECT_EQ(agent->stops_in_progress(), 1u);
  EXPECT_FALSE(launcher.launches["r1"].stopped);
  // While it is stopping: r2 ends and is reaped, heartbeats go on, r1 is not polled.
  int r1_polls = launcher.launches["r1"].polls;
  launcher.launches["r2"].exit = ExitInfo{.exit_code = 3, .reason = "exited with code 3"};
  agent->monitor_once(true);
  EXPECT_EQ(api.states["r2"], State::kCrashed);
  EXPECT_TRUE(agent->heartbeat_once().is_ok());
  EXPECT_EQ(launcher.launches["r1"].polls, r1_polls);
  EXPECT_EQ(agent->active_runs(), 1u);
  EXPECT_EQ(agent->stops_in_progress(), 1u);
  agent->monitor_once(true);  // no second stop of r1
  EXPECT_EQ(async.size(), 1u);
  run_stops();
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCancelled);
  EXPECT_EQ(agent->active_runs(), 0u);
}

// The same with the agent's own stop threads: a stop blocked in the launcher leaves
// monitor passes free.
TEST_F(AgentTest, StopsRunOnThreadsOfTheirOwn) {
  options.run_async = nullptr;
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  enqueue("r1");
  enqueue("r2");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 2);
  launcher.launches["r1"].block_stop = true;
  api.states["r1"] = State::kCancelling;
  api.states["r2"] = State::kRunning;
  agent->monitor_once(true);
  {
    std::unique_lock lock(launcher.launches["r1"].mu);
    launcher.launches["r1"].cv.wait(lock, [&] { return launcher.launches["r1"].in_stop; });
  }
  launcher.launches["r2"].exit = ExitInfo{.exit_code = 0, .reason = "exited with code 0"};
  agent->monitor_once(true);  // returns although r1's stop is blocked
  EXPECT_EQ(api.states["r2"], State::kCrashed);
  EXPECT_EQ(agent->stops_in_progress(), 1u);
  launcher.launches["r1"].release();
  while (agent->stops_in_progress() != 0) std::this_thread::yield();
  agent->monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCancelled);
}

// --max-concurrent above the server's claim limit (100 runs a claim): each claim asks for
// at most 100, and the next pass claims the rest.
TEST_F(AgentTest, AClaimAsksForAtMostTheServersLimit) {
  options.max_concurrent = 500;
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  for (int i = 0; i < 150; ++i) enqueue("r" + std::to_string(i));
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 100);
  EXPECT_EQ(api.last_claim_max, kMaxClaimBatch);
  EXPECT_EQ(*agent->claim_and_launch(Millis(0)), 50);
  EXPECT_EQ(agent->active_runs(), 150u);
}

TEST_F(AgentTest, AllLaunchesArePolledInOneBatch) {
  options.max_concurrent = 10;
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  for (int i = 0; i < 5; ++i) enqueue("r" + std::to_string(i));
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 5);
  launcher.poll_all_calls = 0;
  agent->monitor_once(false);
  EXPECT_EQ(launcher.poll_all_calls, 1);
  EXPECT_EQ(launcher.last_poll_all_size, 5u);
}

TEST_F(AgentTest, ReportsTheInfrastructureItStartedAndRetriesWhenTheServerIsDown) {
  enqueue("r1");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  EXPECT_EQ(api.infra["r1"].kind, "fake");
  EXPECT_EQ(api.infra["r1"].id, "infra-r1");
  api.down = true;
  enqueue("r2");
  ASSERT_EQ(*agent->claim_and_launch(Millis(0)), 1);
  EXPECT_FALSE(api.infra.count("r2"));
  agent->monitor_once(false);
  EXPECT_FALSE(api.infra.count("r2"));
  api.down = false;
  agent->monitor_once(false);
  EXPECT_EQ(api.infra["r2"].id, "infra-r2");
}

TEST_F(AgentTest, ARestartedAgentAdoptsWhatIsStillThereAndCrashesWhatIsGone) {
  auto unfinished = [](const std::string& id, State st, std::optional<Infrastructure> i) {
    UnfinishedRun u;
    u.run = ClaimedRun{id, "flow-1", "etl", "", R"({"type":"local"})"};
    u.state = st;
    u.infrastructure = std::move(i);
    return u;
  };
  api.unfinished = {unfinished("alive", State::kRunning, Infrastructure{"fake", "infra-alive"}),
                    unfinished("gone", State::kRunning, Infrastructure{"fake", "infra-gone"}),
                    unfinished("never", State::kSubmitted, std::nullopt),
                    unfinished("running-unrecorded", State::kRunning, std::nullopt),
                    unfinished("cancel", State::kCancelling, Infrastructure{"fake", "infra-cancel"})};
  for (const auto& u : api.unfinished) api.states[u.run.id] = u.state;
  launcher.alive = {"infra-alive", "infra-cancel"};
  auto n = agent->adopt_unfinished();
  ASSERT_TRUE(n) << n.status().to_string();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(agent->active_runs(), 2u);
  EXPECT_EQ(api.states["gone"], State::kCrashed);
  EXPECT_NE(api.messages["gone"].find("infra-gone is gone"), std::string::npos) << api.messages["gone"];
  EXPECT_NE(api.messages["gone"].find("when the agent restarted"), std::string::npos) << api.messages["gone"];
  EXPECT_EQ(api.states["never"], State::kCrashed);
  EXPECT_NE(api.messages["never"].find("before it recorded the run's infrastructure"), std::string::npos);
  EXPECT_EQ(api.states["running-unrecorded"], State::kRunning);  // its own heartbeats tell
  // The adopted ones are watched and cancelled like any other.
  agent->monitor_once(true);
  ASSERT_EQ(async.size(), 1u);
  run_stops();
  EXPECT_TRUE(launcher.launches["cancel"].stopped);
  launcher.launches["alive"].exit = ExitInfo{.exit_code = 0, .reason = "exited with code 0"};
  api.states["alive"] = State::kSuccess;  // reported by the run itself
  agent->monitor_once(false);
  EXPECT_EQ(api.states["cancel"], State::kCancelled);
  EXPECT_EQ(api.states["alive"], State::kSuccess);
  EXPECT_EQ(agent->active_runs(), 0u);
}

TEST_F(AgentTest, AnAdoptionThatCannotBeDoneNowIsRetried) {
  UnfinishedRun u;
  u.run = ClaimedRun{"r1", "flow-1", "etl", "", "{}"};
  u.state = State::kRunning;
  u.infrastructure = Infrastructure{"fake", "infra-r1"};
  api.unfinished = {u};
  api.states["r1"] = State::kRunning;
  launcher.alive = {"infra-r1"};
  launcher.adopt_unavailable = true;
  EXPECT_EQ(*agent->adopt_unfinished(), 0);
  EXPECT_EQ(api.states["r1"], State::kRunning);  // not crashed for a daemon hiccup
  launcher.adopt_unavailable = false;
  agent->monitor_once(false);
  EXPECT_EQ(agent->active_runs(), 1u);
}

// The monitor's heartbeat cadence, on simulated time: one heartbeat per interval.
TEST_F(AgentTest, HeartbeatsFollowTheIntervalOnTheClock) {
  options.heartbeat_interval = Millis(10000);
  options.monitor_interval = Millis(100);
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  std::atomic<bool> stop{false};
  const SteadyTime start = clock.steady_now();
  std::atomic<int64_t> third_at{0};
  api.on_heartbeat = [&](int n) {
    if (n == 3) {
      third_at = std::chrono::duration_cast<Millis>(clock.steady_now() - start).count();
      stop = true;
    }
  };
  ASSERT_TRUE(agent->run(stop).is_ok());
  EXPECT_EQ(api.heartbeats, 3);
  EXPECT_GE(third_at.load(), 20000);
  EXPECT_LT(third_at.load(), 20000 + 2 * 100);
}

TEST_F(AgentTest, ACleanStopDeregisters) {
  std::atomic<bool> stop{true};
  EXPECT_TRUE(agent->run(stop).is_ok());
  EXPECT_EQ(api.deregistered, std::vector<std::string>{"agent-1"});
}

TEST_F(AgentTest, AnAgentDeregisteredWhileItRunsRegistersAgainAndGoesOnClaiming) {
  ASSERT_TRUE(agent->deregister_self().is_ok());  // as an admin's DELETE /agents/{id} does
  ASSERT_TRUE(api.stopped);
  api.registered_max_concurrent = 0;
  enqueue("r1");
  auto n = agent->claim_and_launch(Millis(0));
  ASSERT_TRUE(n) << n.status().to_string();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(api.registrations, 2);
  EXPECT_EQ(api.registered_max_concurrent, 2);  // registering again says it too
  EXPECT_FALSE(api.stopped);
  EXPECT_EQ(agent->id(), "agent-1");
}

TEST_F(AgentTest, ARevokedTokenEndsTheAgentInsteadOfRetryingForever) {
  std::atomic<bool> stop{false};
  api.claim_status = Status(StatusCode::kUnauthenticated, "token revoked");
  Status st = agent->run(stop);  // returns by itself: `stop` is never set
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(api.deregistered.empty());
  // Same for a heartbeat refused for lack of scope, while claims still answer.
  agent = std::make_unique<Agent>(options, api, api, launcher, clock);
  ASSERT_TRUE(agent->register_self().is_ok());
  api.claim_status = Status::ok();
  api.heartbeat_status = Status(StatusCode::kPermissionDenied, "the token lacks the runner scope");
  st = agent->run(stop);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  // A server that is only down is retried.
  EXPECT_FALSE(is_auth_failure(unavailable("connection refused")));
}

// One precedence for every launcher: the same key on both sides, through the agent,
// into a real local process and into a Docker container's create request.
TEST_F(AgentTest, OnePrecedenceForLocalAndDocker) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("culvert-env-" + new_uuid());
  fs::create_directories(dir);
  options.env = {{"SAME", "from-agent"}, {"CULVERT_API_TOKEN", "agent-token"}};
  const std::string rc = R"({"env":{"SAME":"from-config","CULVERT_API_TOKEN":"config-token"}})";

  LocalLauncher local({.output_dir = dir.string(),
                       .command = {"/bin/sh", "-c", "echo \"$SAME $CULVERT_API_TOKEN\""}});
  Agent local_agent(options, api, api, local, clock);
  ASSERT_TRUE(local_agent.register_self().is_ok());
  enqueue("l1", rc);
  ASSERT_EQ(*local_agent.claim_and_launch(Millis(0)), 1);
  while (local_agent.active_runs() != 0) local_agent.monitor_once(false);
  std::ifstream in(dir / "l1.log");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "from-config tok-l1");

  std::string create_body;
  testing::TestHttpServer engine(
      [&](const testing::TestRequest& r) -> testing::TestResponse {
        if (r.target.find("/containers/create") != std::string::npos) {
          create_body = r.body;
          return {201, R"({"Id":"c0ffee00000000000000"})"};
        }
        if (r.target.find("/start") != std::string::npos) return {204, ""};
        return {404, R"({"message":"no such container"})"};
      },
      (dir / "docker.sock").string());
  DockerLauncher docker({.docker_host = (dir / "docker.sock").string()});
  Agent docker_agent(options, api, api, docker, clock);
  ASSERT_TRUE(docker_agent.register_self().is_ok());
  enqueue("d1", R"({"type":"docker","image":"img","env":{"SAME":"from-config","CULVERT_API_TOKEN":"config-token"}})");
  ASSERT_EQ(*docker_agent.claim_and_launch(Millis(0)), 1);
  auto body = nlohmann::json::parse(create_body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << create_body;
  std::set<std::string> env(body["Env"].begin(), body["Env"].end());
  EXPECT_TRUE(env.count("SAME=from-config")) << create_body;
  EXPECT_TRUE(env.count("CULVERT_API_TOKEN=tok-d1")) << create_body;
  EXPECT_EQ(api.infra["d1"].kind, "container");
  EXPECT_EQ(api.infra["d1"].id, "c0ffee00000000000000");
  fs::remove_all(dir);
}

TEST(LauncherRegistry, ListsEveryTypeWithItsFlagsAndFactory) {
  ASSERT_NE(find_launcher_type("local"), nullptr);
  ASSERT_NE(find_launcher_type("docker"), nullptr);
  ASSERT_NE(find_launcher_type("ecs"), nullptr);
  ASSERT_NE(find_launcher_type("slurm"), nullptr);
  std::set<std::string> names;
  for (const auto& t : launcher_types()) {
    EXPECT_TRUE(names.insert(t.type).second) << "duplicate type " << t.type;
    EXPECT_TRUE(t.factory) << t.type;
    EXPECT_FALSE(t.description.empty()) << t.type;
  }
  const auto* docker = find_launcher_type("docker");
  ASSERT_EQ(docker->flags.size(), 1u);
  EXPECT_EQ(docker->flags[0].name, "docker-host");
  LauncherContext ctx;
  ctx.flags = {{"docker-host", "unix:///tmp/x.sock"}};
  auto l = docker->factory(ctx);
  ASSERT_TRUE(l);
  EXPECT_EQ((*l)->type(), "docker");
  EXPECT_EQ((*l)->run_config_types(), std::vector<std::string>{"docker"});
  ctx.flags = {{"run-output-dir", "/proc/no/such/dir"}};
  ctx.culvert_binary = "/bin/true";
  auto bad = find_launcher_type("local")->factory(ctx);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("--run-output-dir"), std::string::npos);
}

}  // namespace
}  // namespace culvert::agent
