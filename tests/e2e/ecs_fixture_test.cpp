// End to end with an ECS agent whose tasks really run: against the test-only
// ECS-compatible endpoint tests/support/ecs_fixture.py, which starts each task as a
// Docker container (real dockerd, host network) and reports it as ECS does
// (PROVISIONING → RUNNING → STOPPED, exit codes, stopCode, stoppedReason, the container's
// reason), checking every request against botocore's models. The flow's artifact and its
// task results are on s3rver; the image is the FROM scratch one of the Docker agent's
// test (tests/support/runner_image.hpp).
//
// What the fixture does not do as ECS would: it pulls no image (one not on the Docker
// daemon is CannotPullContainerError), a task's network is the host's (no ENI), it does
// not verify SigV4 signatures (moto does, in ecs_agent_test.cpp), and host volumes are
// honoured only for EC2-compatible definitions (as ECS: Fargate refuses them), which is
// how the 200-run test counts executions from the flows' side.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "agent/docker/docker_client.hpp"
#include "ecs_fixture.hpp"
#include "harness.hpp"
#include "runner_image.hpp"

namespace culvert::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool is_final_state(const std::string& s) {
  return s == "Success" || s == "Failed" || s == "Crashed" || s == "Cancelled";
}

constexpr const char* kImage = "culvert-ecs-e2e-runner:test";

class EcsFixtureE2E : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    if (!socket_.empty()) (void)docker::DockerClient(docker::DockerClient::Options{.host = socket_}).remove_image(kImage);
  }

  void SetUp() override {
    std::string dockerd_dir = std::getenv("CULVERT_DOCKERD_DIR") ? std::getenv("CULVERT_DOCKERD_DIR") : "";
    std::string s3_dir = std::getenv("CULVERT_S3RVER_DIR") ? std::getenv("CULVERT_S3RVER_DIR") : "";
    ASSERT_FALSE(dockerd_dir.empty() || s3_dir.empty()) << "run through ctest (dockerd and s3rver fixtures)";
    socket_ = trim(read_file(fs::path(dockerd_dir) / "socket"));
    s3_endpoint_ = "http://127.0.0.1:" + trim(read_file(fs::path(s3_dir) / "port"));
    docker_ = std::make_unique<docker::DockerClient>(docker::DockerClient::Options{.host = socket_});
    ASSERT_TRUE(docker_->ping().is_ok()) << socket_;
    if (!image_built_) {  // once for the whole binary
      Status built = build_runner_image(sandbox_, *docker_, kImage, {build_path("tests/e2e/e2e_flow")});
      ASSERT_TRUE(built.is_ok()) << built.to_string();
      image_built_ = true;
    }
    fixture_ = std::make_unique<EcsFixture>(sandbox_, socket_);
    ASSERT_TRUE(fixture_->ok()) << fixture_->error();
    server_ = std::make_unique<TestServer>(sandbox_, std::vector<std::string>{"--heartbeat-interval", "1s"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    bucket_uri_ = "s3://culvert-e2e/ecs-" + sandbox_.dir().filename().string();
    // The agent uses a RUNNER token, as in production.
    auto created = sandbox_.run({"/usr/bin/curl", "-sf", "-X", "POST", "-H", "Authorization: Bearer " + server_->admin_token(),
                                 "-H", "Content-Type: application/json", "-d", R"({"name":"ecs-agent","scope":"runner"})",
                                 server_->url() + "/api/v1/tokens"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    runner_token_ = json::parse(created.out).at("token").get<std::string>();
  }

  void TearDown() override {
    if (!fixture_ || !fixture_->ok()) return;
    // Every request the agent sent passed botocore's validator.
    json s = fixture_->state();
    EXPECT_EQ(s.value("invalid", json::array()), json::array()) << s.dump(1);
  }

  // The user's side: admin token, S3 settings for registering and reading results.
  std::map<std::string, std::string> user_env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()},
            {"CULVERT_S3_ENDPOINT", s3_endpoint_}, {"AWS_ACCESS_KEY_ID", "S3RVER"},
            {"AWS_SECRET_ACCESS_KEY", "S3RVER"}, {"AWS_REGION", "us-east-1"},
            {"AWS_EC2_METADATA_DISABLED", "true"},
            {"E2E_RESULT_URI", bucket_uri_ + "/results/{flow_run_id}/{task_name}"}};
  }

  // An ECS run config: the image, Fargate's smallest size, the labels of the article's
  // set-up, and the settings a FROM scratch container needs.
  json run_config(const std::string& image = kImage) const {
    return {{"type", "ecs"},
            {"image", image},
            {"cpu", 256},
            {"memory", 512},
            {"labels", {"fargate-dev", "s3-flow-storage"}},
            {"env",
             {{"CULVERT_ARTIFACT_CACHE", "/tmp/artifacts"},
              {"CULVERT_CANCEL_POLL_MS", "200"},
              {"CULVERT_HEARTBEAT_SECONDS", "1"}}}};
  }

  void register_flow(const json& rc) {
    auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo", "--storage",
                                 bucket_uri_ + "/flows", "--run-config", rc.dump(), "--output", "json"},
                                user_env());
    ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  }

  // `endpoint`: the ECS endpoint ("": the fixture's).
  std::vector<std::string> agent_argv(const std::string& name, const std::vector<std::string>& extra = {},
                                      const std::string& endpoint = "") const {
    std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "ecs", "--name", name,
                                     "--label", "fargate-dev", "--label", "s3-flow-storage",
                                     "--endpoint-url", endpoint.empty() ? fixture_->url() : endpoint, "--region", "us-east-1",
                                     "--subnet", "subnet-fixture-a", "--security-group", "sg-fixture",
                                     "--poll-interval", "200ms", "--heartbeat-seconds", "1"};
    // What the flow's container needs for the bucket (on AWS: the task role).
    for (const char* k : {"CULVERT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                          "AWS_EC2_METADATA_DISABLED", "E2E_RESULT_URI"})
      argv.insert(argv.end(), {"--env", std::string(k) + "=" + user_env().at(k)});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  std::unique_ptr<Process> start_agent(const std::string& name, const std::vector<std::string>& extra = {},
                                       const std::string& log = "", const std::string& endpoint = "") {
    // The agent's own AWS identity (the fixture checks only that requests are signed).
    auto env = sandbox_.env({{"CULVERT_API_URL", server_->url()},
                             {"CULVERT_API_TOKEN", runner_token_},
                             {"AWS_ACCESS_KEY_ID", "AKIDFIXTURE"},
                             {"AWS_SECRET_ACCESS_KEY", "fixture-secret"},
                             {"AWS_EC2_METADATA_DISABLED", "true"}});
    return std::make_unique<Process>(agent_argv(name, extra, endpoint), env,
                                     sandbox_.dir() / ((log.empty() ? name : log) + ".log"));
  }

  std::string create_run(const std::map<std::string, std::string>& params = {}) {
    std::vector<std::string> args = {"run", "e2e", "--project", "demo", "--output", "json"};
    for (const auto& [k, v] : params) args.insert(args.end(), {"--param", k + "=" + v});
    auto r = sandbox_.culvert(args, user_env());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_object()) return "";
    if (j.contains("flow_run")) j = j["flow_run"];
    return j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : "";
  }
  json get_run(const std::string& id) {
    auto r = sandbox_.culvert({"run", "inspect", id, "--output", "json"}, user_env());
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_object()) return json::object();
    return j.contains("flow_run") ? j["flow_run"] : j;
  }
  std::string state_of(const std::string& id) {
    json j = get_run(id);
    return j.contains("state") && j["state"].is_string() ? j["state"].get<std::string>() : "";
  }
  std::string message_of(const std::string& id) { return get_run(id).value("state_message", ""); }
  std::string logs_of(const std::string& id) {
    auto r = sandbox_.culvert({"get", "logs", id}, user_env());
    return r.out + r.err;
  }
  // The container of the run's task, once it has one.
  std::string container_of(const std::string& id) {
    auto tasks = fixture_->tasks_of(id);
    if (tasks.size() != 1 || !tasks[0]["containerId"].is_string()) return "";
    return tasks[0]["containerId"].get<std::string>();
  }
  bool container_gone(const std::string& cid) {
    return docker_->inspect(cid).status().code() == StatusCode::kNotFound;
  }

  static inline std::string socket_;
  static inline bool image_built_ = false;
  Sandbox sandbox_;
  std::string s3_endpoint_, bucket_uri_, runner_token_;
  std::unique_ptr<docker::DockerClient> docker_;
  std::unique_ptr<EcsFixture> fixture_;
  std::unique_ptr<TestServer> server_;
};

// The article's set-up end to end: a flow registered to S3 with an ECS run config and the
// labels fargate-dev and s3-flow-storage, run by an ECS agent with a runner token, in a
// container, to Success; its task results in the bucket and its logs on the server.
TEST_F(EcsFixtureE2E, RunsAFlowFromS3InAContainerToSuccess) {
  register_flow(run_config());
  auto agent = start_agent("fargate-dev", {"--log-group", "/culvert/e2e"});
  auto run = sandbox_.culvert({"run", "e2e", "--project", "demo", "--watch", "--output", "json"}, user_env(), 300s);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << "\nagent:\n" << agent->output() << "\nfixture:\n"
                              << fixture_->output();
  auto fin = json::parse(run.out, nullptr, false);
  ASSERT_TRUE(fin.is_object()) << run.out;
  std::string id = fin.contains("flow_run") ? fin["flow_run"]["id"].get<std::string>() : fin["id"].get<std::string>();
  json r = get_run(id);
  EXPECT_EQ(r.value("state", ""), "Success") << r.dump();
  EXPECT_EQ(r["labels"], json({"fargate-dev", "s3-flow-storage"})) << r.dump();

  // The task result object is in the bucket (seen with the aws CLI) and holds the value.
  auto cp = sandbox_.run({"/usr/bin/aws", "--endpoint-url", s3_endpoint_, "s3", "cp",
                          bucket_uri_ + "/results/" + id + "/payload", "-"}, user_env());
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  EXPECT_NE(cp.out.find("private-payload-" + id), std::string::npos) << cp.out;
  // The flow's logs, written in the container, are on the server.
  std::string logs = logs_of(id);
  EXPECT_NE(logs.find("hello from the e2e flow, run " + id), std::string::npos) << logs;
  EXPECT_NE(logs.find("work done after 0 ms"), std::string::npos) << logs;

  // One task that really ran and exited 0, its container removed; the ARN on the run.
  auto tasks = fixture_->tasks_of(id);
  ASSERT_EQ(tasks.size(), 1u) << fixture_->state().dump(1);
  ASSERT_TRUE(wait_until([&] { return fixture_->tasks_of(id).at(0)["lastStatus"] == "STOPPED"; }, 60s));
  json task = fixture_->tasks_of(id).at(0);
  EXPECT_EQ(task["exitCode"], 0) << task.dump();
  EXPECT_EQ(task["stopCode"], "EssentialContainerExited") << task.dump();
  EXPECT_TRUE(container_gone(task["containerId"].get<std::string>()));
  EXPECT_EQ(r["infrastructure"]["kind"], "ecs-task") << r.dump();
  EXPECT_EQ(r["infrastructure"]["id"], task["arn"]) << r.dump();
  json s = fixture_->state();
  EXPECT_EQ(s["calls"].value("RegisterTaskDefinition", 0), 1) << s.dump(1);
  EXPECT_EQ(s["calls"].value("RunTask", 0), 1) << s.dump(1);
}

// The fixture's task mode "processes" (what bench/ecs times to tell the agent's cost from
// Docker's): the same agent, server and `culvert execute`, each task a local process: a
// run to Success with its result in the bucket, the task reported as ECS does (exit 0,
// EssentialContainerExited); and a cancel that ends the process, the run Cancelled.
TEST_F(EcsFixtureE2E, InProcessModeEachTaskIsALocalProcessToSuccessAndCancel) {
  EcsFixture procs(sandbox_, "", "ecs-fixture-processes", EcsFixture::TaskMode::kProcesses);
  ASSERT_TRUE(procs.ok()) << procs.error();
  register_flow(run_config());
  auto agent = start_agent("fargate-dev", {}, "", procs.url());
  std::string id = create_run();
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 180s)) << state_of(id) << "\n"
                                                                             << agent->output() << procs.output();
  EXPECT_EQ(state_of(id), "Success") << message_of(id);
  auto cp = sandbox_.run({"/usr/bin/aws", "--endpoint-url", s3_endpoint_, "s3", "cp",
                          bucket_uri_ + "/results/" + id + "/payload", "-"}, user_env());
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  EXPECT_NE(cp.out.find("private-payload-" + id), std::string::npos) << cp.out;
  auto tasks = procs.tasks_of(id);
  ASSERT_EQ(tasks.size(), 1u) << procs.state().dump(1);
  ASSERT_TRUE(wait_until([&] { return procs.tasks_of(id).at(0)["lastStatus"] == "STOPPED"; }, 60s));
  json task = procs.tasks_of(id).at(0);
  EXPECT_EQ(task["exitCode"], 0) << task.dump();
  EXPECT_EQ(task["stopCode"], "EssentialContainerExited") << task.dump();
  EXPECT_TRUE(task["containerId"].is_null()) << "no container in process mode: " << task.dump();

  std::string id2 = create_run({{"sleep_ms", "300000"}});
  ASSERT_TRUE(wait_until([&] { return state_of(id2) == "Running"; }, 180s)) << state_of(id2) << "\n" << agent->output();
  auto c = sandbox_.culvert({"run", "cancel", id2}, user_env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id2)); }, 120s)) << state_of(id2) << "\n"
                                                                              << agent->output();
  EXPECT_EQ(state_of(id2), "Cancelled") << message_of(id2);
  ASSERT_TRUE(wait_until([&] { return procs.tasks_of(id2).size() == 1 && procs.tasks_of(id2)[0]["lastStatus"] == "STOPPED"; },
                         120s))
      << procs.state().dump(1);
  json s = procs.state();
  EXPECT_EQ(s["task_mode"], "processes");
  EXPECT_EQ(s["calls"].value("RunTask", 0), 2) << s.dump(1);
  EXPECT_EQ(s.value("invalid", json::array()), json::array()) << s.dump(1);
}

// An image that is not there: the task stops with TaskFailedToStart and the run is
// Crashed naming CannotPullContainerError; `culvert get logs` says the container wrote
// nothing (the log group has no stream of it).
TEST_F(EcsFixtureE2E, AMissingImageCrashesTheRunNamingCannotPullContainerError) {
  register_flow(run_config("culvert-e2e-no-such-image:1"));
  auto agent = start_agent("fargate-dev", {"--log-group", "/culvert/e2e"});
  std::string id = create_run();
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 120s)) << state_of(id) << "\n" << agent->output();
  EXPECT_EQ(state_of(id), "Crashed");
  std::string message = message_of(id);
  EXPECT_NE(message.find("TaskFailedToStart"), std::string::npos) << message;
  EXPECT_NE(message.find("CannotPullContainerError"), std::string::npos) << message;
  EXPECT_NE(message.find("culvert-e2e-no-such-image:1"), std::string::npos) << message;
  std::cout << "the run's message: " << message << "\n";
  std::string logs = logs_of(id);
  EXPECT_NE(logs.find("the container wrote nothing"), std::string::npos) << logs;
  EXPECT_EQ(fixture_->state()["containers_started"], 0);
}

// A flow that uses more memory than its container's limit is killed by it: the run is
// Crashed naming the out-of-memory error and the limit.
TEST_F(EcsFixtureE2E, AFlowKilledForItsMemoryCrashesNamingMemory) {
  json rc = run_config();
  // The flow container's own hard limit, below the task's 512 MiB (as ECS allows).
  json flow_container = {{"name", "flow"}, {"memory", 128}};
  rc["task_definition"] = {{"containerDefinitions", json::array({flow_container})}};
  register_flow(rc);
  auto agent = start_agent("fargate-dev");
  std::string id = create_run({{"alloc_mb", "600"}});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 180s)) << state_of(id) << "\n" << agent->output();
  EXPECT_EQ(state_of(id), "Crashed") << message_of(id);
  std::string message = message_of(id);
  EXPECT_NE(message.find("OutOfMemoryError"), std::string::npos) << message;
  EXPECT_NE(message.find("memory"), std::string::npos) << message;
  EXPECT_NE(message.find("137"), std::string::npos) << message;
  EXPECT_NE(message.find("limit of 128 MiB"), std::string::npos) << message;
  std::cout << "the run's message: " << message << "\n";
  auto tasks = fixture_->tasks_of(id);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]["exitCode"], 137) << tasks[0].dump();
}

// Cancelling a running run: its container is gone and the run ends Cancelled.
TEST_F(EcsFixtureE2E, CancelRemovesTheContainerAndTheRunEndsCancelled) {
  register_flow(run_config());
  auto agent = start_agent("fargate-dev");
  std::string id = create_run({{"sleep_ms", "300000"}});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Running" && !container_of(id).empty(); }, 180s))
      << state_of(id) << "\n" << agent->output();
  std::string cid = container_of(id);
  auto c = sandbox_.culvert({"run", "cancel", id}, user_env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 120s)) << state_of(id) << "\n" << agent->output();
  EXPECT_EQ(state_of(id), "Cancelled") << message_of(id);
  ASSERT_TRUE(wait_until([&] { return container_gone(cid); }, 120s)) << fixture_->state().dump(1);
  ASSERT_TRUE(wait_until([&] { return fixture_->tasks_of(id).at(0)["lastStatus"] == "STOPPED"; }, 60s));
  EXPECT_EQ(fixture_->state()["calls"].value("RunTask", 0), 1);
}

// An ECS agent killed with SIGKILL mid-run and started again adopts the run's task: the
// run still finishes; a second run adopted that way can still be cancelled (its container
// goes); nothing is launched twice.
TEST_F(EcsFixtureE2E, AKilledAgentStartedAgainFinishesAndCancelsItsRuns) {
  register_flow(run_config());
  auto agent = start_agent("fargate-dev", {}, "agent1");
  std::string id = create_run({{"sleep_ms", "8000"}});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Running" && !container_of(id).empty(); }, 180s))
      << state_of(id) << "\n" << agent->output();
  agent->signal(SIGKILL);
  ASSERT_TRUE(agent->wait(10s).has_value());
  auto again = start_agent("fargate-dev", {}, "agent2");
  ASSERT_TRUE(wait_until([&] { return again->output().find("adopted") != std::string::npos; }, 60s)) << again->output();
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 180s)) << state_of(id) << "\n" << again->output();
  EXPECT_EQ(state_of(id), "Success") << message_of(id) << "\n" << again->output();

  std::string id2 = create_run({{"sleep_ms", "300000"}});
  ASSERT_TRUE(wait_until([&] { return state_of(id2) == "Running" && !container_of(id2).empty(); }, 180s))
      << state_of(id2) << "\n" << again->output();
  std::string cid2 = container_of(id2);
  again->signal(SIGKILL);
  ASSERT_TRUE(again->wait(10s).has_value());
  auto third = start_agent("fargate-dev", {}, "agent3");
  ASSERT_TRUE(wait_until([&] { return third->output().find("adopted") != std::string::npos; }, 60s)) << third->output();
  auto c = sandbox_.culvert({"run", "cancel", id2}, user_env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id2)); }, 120s)) << state_of(id2) << "\n"
                                                                               << third->output();
  EXPECT_EQ(state_of(id2), "Cancelled") << message_of(id2);
  ASSERT_TRUE(wait_until([&] { return container_gone(cid2); }, 120s));
  EXPECT_EQ(fixture_->tasks_of(id).size(), 1u);
  EXPECT_EQ(fixture_->tasks_of(id2).size(), 1u);
  EXPECT_EQ(fixture_->state()["calls"].value("RunTask", 0), 2);
}

// 200 runs while a fifth of all AWS calls are throttled and a twentieth of the RunTask
// answers are lost after the task started: no run executes twice (counted by the flows
// themselves, in a file on a host volume), every run that succeeds executed exactly once,
// at most one task per run, one revision.
//
// What chance allows, and so what this expects. Each AWS call is tried at most 6 times
// (docs/ECS.md "Retries"), and the fixture draws each attempt's fault independently: a
// RunTask attempt fails with probability 0.2 (throttled before it runs) + 0.8 × 0.05
// (lost answer: its task started) = 0.24 while no task was started for the run; once one
// was, a retry (same clientToken) is answered from that task and fails only when
// throttled, 0.2. So n failed attempts in a row have the probability
//   f(n) = 0.2 f(n-1) + 0.04 × 0.2^(n-1),  f(0) = 1,
// f(6) = 1.41e-4: a run's RunTask exhausts its 6 attempts with probability 1.41e-4, and
// one of 200 runs does with 1 - (1 - 1.41e-4)^200 = 2.8 % (the first run's
// DescribeTaskDefinition and RegisterTaskDefinition add 2 × 0.2^6 = 1.3e-4). Such a run
// is Crashed, rightly, naming the last fault and "(after 6 attempts)"; it executed once
// at most (a lost answer's task may have run it before the Crash landed). Expecting
// every run to succeed would fail one run of this test in 36 by chance. So: every run is
// either Success, executed exactly once, or Crashed by the exhausted retries, executed at
// most once; at most 3 such crashes (4 or more: C(200,4) × (1.41e-4)^4 = 2.5e-8).
TEST_F(EcsFixtureE2E, TwoHundredRunsWithAFifthOfCallsThrottledEachRunOnce) {
  constexpr int kRuns = 200;
  fs::path markers = sandbox_.dir() / "markers";
  fs::create_directories(markers);
  ::chmod(markers.c_str(), 0777);
  json rc = run_config();
  // A host volume (EC2 launch type: Fargate refuses them) where each execution appends
  // its run id.
  json volume = {{"name", "markers"}, {"host", {{"sourcePath", markers.string()}}}};
  json mount = {{"sourceVolume", "markers"}, {"containerPath", "/markers"}};
  json flow_container = {{"name", "flow"}, {"mountPoints", json::array({mount})}};
  rc["task_definition"] = {{"volumes", json::array({volume})}, {"containerDefinitions", json::array({flow_container})}};
  register_flow(rc);
  ASSERT_TRUE(fixture_->set_faults({{"throttle", 0.2}, {"lose_run_task_answer", 0.05}, {"seed", 7}}).is_ok());
  std::set<std::string> ids;
  for (int i = 0; i < kRuns; ++i) {
    std::string id = create_run({{"marker", "/markers/executions"}});
    ASSERT_FALSE(id.empty());
    ids.insert(id);
  }
  auto agent = start_agent("fargate-dev", {"--launch-type", "EC2", "--max-concurrent", "20"});
  auto finished = [&] {
    auto r = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                           server_->url() + "/api/v1/flow-runs?limit=1000&state=Success&state=Failed&state=Crashed&state=Cancelled"});
    auto j = json::parse(r.out, nullptr, false);
    const json& list = j.is_array() ? j : (j.is_object() && j.contains("runs") ? j["runs"] : json::array());
    std::map<std::string, std::string> out;
    for (const auto& run : list)
      if (run.is_object()) out[run.value("id", "")] = run.value("state", "");
    return out;
  };
  ASSERT_TRUE(wait_until([&] { return finished().size() == static_cast<size_t>(kRuns); }, 900s))
      << finished().size() << " of " << kRuns << " finished\n" << fixture_->state()["injected"].dump();
  std::map<std::string, int> executions;
  std::istringstream in(read_file(markers / "executions"));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) ++executions[line];
  int exhausted = 0;
  for (const auto& [id, state] : finished()) {
    EXPECT_TRUE(ids.count(id)) << id;
    if (state == "Success") {
      EXPECT_EQ(executions[id], 1) << id << ": " << message_of(id);
      continue;
    }
    // Only a launch whose retries ran out may fail, and it said so.
    std::string why = message_of(id);
    EXPECT_EQ(state, "Crashed") << id << ": " << why;
    EXPECT_NE(why.find("(after 6 attempts)"), std::string::npos) << id << ": " << why;
    EXPECT_TRUE(why.find("ThrottlingException") != std::string::npos ||
                why.find("ServerException") != std::string::npos)
        << id << ": " << why;
    EXPECT_LE(executions[id], 1) << id << ": " << why;
    ++exhausted;
  }
  EXPECT_LE(exhausted, 3) << "far more launches ran out of retries than chance allows (see above)";
  for (const auto& [id, n] : executions) EXPECT_TRUE(ids.count(id)) << "an execution of an unknown run " << id;
  json s = fixture_->state();
  EXPECT_EQ(s["revisions"].size(), 1u) << s["revisions"].dump();
  for (const auto& [family, n] : s["revisions"].items()) EXPECT_EQ(n, 1) << family;
  std::map<std::string, int> tasks_per_run;
  for (const auto& t : s["tasks"])
    for (const auto& tag : t["tags"])
      if (tag["key"] == "culvert:flow-run-id") ++tasks_per_run[tag["value"].get<std::string>()];
  // Every run that succeeded had its task; one whose RunTask ran out of retries may have none.
  EXPECT_GE(tasks_per_run.size() + exhausted, ids.size());
  for (const auto& [id, n] : tasks_per_run) EXPECT_EQ(n, 1) << id;
  EXPECT_GT(s["injected"].value("throttle", 0), 0) << s["injected"].dump();
  EXPECT_GT(s["injected"].value("lose_run_task_answer", 0), 0) << s["injected"].dump();
  std::cout << "fixture: " << s["calls"].dump() << " injected " << s["injected"].dump() << "\n";
}

}  // namespace
}  // namespace culvert::e2e
