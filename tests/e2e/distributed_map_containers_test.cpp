// Distributed maps end to end in containers: the flow map_flow (tests/e2e/map_flow.cpp)
// registered to s3rver, its 200-element map fanned out over 20 child runs that a Docker
// agent starts as 20 containers, and that an ECS agent starts as 20 ECS tasks of the
// test-only ECS endpoint (tests/support/ecs_fixture.py, each task a container of the real
// dockerd). Chunks' inputs and outputs go through the bucket; each element's execution
// is counted from the flow's own log lines ("element I runs in process P").
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <regex>
#include <set>

#include "agent/docker/docker_client.hpp"
#include "cli_runs.hpp"
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

constexpr const char* kImage = "culvert-map-e2e-runner:test";

class DistributedMapContainersE2E : public ::testing::Test {
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
    if (!image_built_) {
      Status built = build_runner_image(sandbox_, *docker_, kImage, {build_path("tests/e2e/map_flow")});
      ASSERT_TRUE(built.is_ok()) << built.to_string();
      image_built_ = true;
    }
    server_ = std::make_unique<TestServer>(sandbox_, std::vector<std::string>{"--heartbeat-interval", "1s"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    bucket_uri_ = "s3://culvert-e2e/maps-" + sandbox_.dir().filename().string();
  }

  // What the flow's containers need (on AWS: the task role), and the map's storage.
  std::map<std::string, std::string> flow_env() const {
    return {{"CULVERT_S3_ENDPOINT", s3_endpoint_}, {"AWS_ACCESS_KEY_ID", "S3RVER"},
            {"AWS_SECRET_ACCESS_KEY", "S3RVER"}, {"AWS_REGION", "us-east-1"},
            {"AWS_EC2_METADATA_DISABLED", "true"}, {"MAP_FLOW_STORAGE", bucket_uri_ + "/maps"},
            {"CULVERT_ARTIFACT_CACHE", "/tmp/artifacts"}, {"CULVERT_HEARTBEAT_SECONDS", "1"},
            {"CULVERT_CANCEL_POLL_MS", "200"}};
  }
  std::map<std::string, std::string> user_env() const {
    auto env = flow_env();
    env["CULVERT_API_URL"] = server_->url();
    env["CULVERT_API_TOKEN"] = server_->admin_token();
    return env;
  }
  std::vector<std::string> env_flags() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : flow_env()) out.insert(out.end(), {"--env", k + "=" + v});
    return out;
  }

  void register_flow(const json& run_config) {
    auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/map_flow"), "--project", "demo", "--storage",
                                 bucket_uri_ + "/flows", "--run-config", run_config.dump()},
                                user_env());
    ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  }

  std::string state_of(const std::string& id) { return cli_inspect_run(sandbox_, user_env(), id).value("state", ""); }
  json children_of(const std::string& id) {
    auto r = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                           server_->url() + "/api/v1/flow-runs/" + id + "/children"});
    return r.exit_code == 0 ? json::parse(r.out, nullptr, false) : json();
  }

  // Runs the 200-element map to its end; checks every element ran once, in 20 children
  // whose infrastructure is of `kind`, and the reduce saw every output in order.
  void run_and_check(Process& agent, const std::string& kind) {
    std::string id = cli_create_run(sandbox_, user_env(), "fanout", "demo", {"--param", "n=200", "--param", "sleep_ms=1000"});
    ASSERT_FALSE(id.empty());
    const auto started = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 600s)) << state_of(id) << agent.output();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ASSERT_EQ(state_of(id), "Success") << cli_inspect_run(sandbox_, user_env(), id).dump(2) << agent.output();
    std::printf("%s: 200 elements of 1 s over 20 child runs in %.1f s\n", kind.c_str(), seconds);
    auto logs = sandbox_.culvert({"get", "logs", id}, user_env());
    std::map<int, int> ran;
    std::set<std::string> processes;
    std::regex line("element ([0-9]+) runs in process ([0-9]+)");
    for (auto it = std::sregex_iterator(logs.out.begin(), logs.out.end(), line); it != std::sregex_iterator(); ++it)
      ++ran[std::stoi((*it)[1])];
    EXPECT_EQ(ran.size(), 200u) << logs.out.substr(0, 4000);
    for (const auto& [i, n] : ran) EXPECT_EQ(n, 1) << "element " << i;
    EXPECT_NE(logs.out.find("reduced 200 outputs in order, sum 19900"), std::string::npos);
    json children = children_of(id);
    ASSERT_TRUE(children.is_object());
    ASSERT_EQ(children["children"].size(), 20u) << children.dump(2);
    std::set<std::string> infra;
    for (const auto& c : children["children"]) {
      EXPECT_EQ(c["state"], "Success") << c.dump();
      ASSERT_TRUE(c["infrastructure"].is_object()) << c.dump();
      EXPECT_EQ(c["infrastructure"]["kind"], kind) << c.dump();
      infra.insert(c["infrastructure"]["id"].get<std::string>());
    }
    EXPECT_EQ(infra.size(), 20u);
  }

  static inline std::string socket_;
  static inline bool image_built_ = false;
  Sandbox sandbox_;
  std::string s3_endpoint_, bucket_uri_;
  std::unique_ptr<docker::DockerClient> docker_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(DistributedMapContainersE2E, TwentyDockerContainers) {
  register_flow({{"type", "docker"}, {"image", kImage}, {"network_mode", "host"}, {"memory", "256m"}});
  std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "docker", "--name", "d1",
                                   "--docker-host", socket_, "--max-concurrent", "21", "--workers", "1",
                                   "--heartbeat-seconds", "1"};
  for (const auto& f : env_flags()) argv.push_back(f);
  Process agent(argv, sandbox_.env(user_env()), sandbox_.dir() / "agent.log");
  run_and_check(agent, "container");
}

// Cancelling the parent stops every worker's container.
TEST_F(DistributedMapContainersE2E, CancellingTheParentRemovesEveryWorkersContainer) {
  register_flow({{"type", "docker"}, {"image", kImage}, {"network_mode", "host"}});
  std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "docker", "--name", "d1",
                                   "--docker-host", socket_, "--max-concurrent", "21", "--heartbeat-seconds", "1"};
  for (const auto& f : env_flags()) argv.push_back(f);
  Process agent(argv, sandbox_.env(user_env()), sandbox_.dir() / "agent.log");
  std::string id = cli_create_run(sandbox_, user_env(), "fanout", "demo", {"--param", "n=40", "--param", "sleep_ms=300000"});
  std::vector<std::string> containers;
  ASSERT_TRUE(wait_until([&] {
    json c = children_of(id);
    containers.clear();
    if (!c.is_object() || c["children"].size() != 4) return false;
    for (const auto& ch : c["children"]) {
      if (ch["state"] != "Running" || !ch["infrastructure"].is_object()) return false;
      containers.push_back(ch["infrastructure"]["id"].get<std::string>());
    }
    return true;
  }, 180s)) << children_of(id).dump(2) << agent.output();
  auto c = sandbox_.culvert({"run", "cancel", id}, user_env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Cancelled"; }, 120s)) << state_of(id) << agent.output();
  ASSERT_TRUE(wait_until([&] {
    for (const auto& ch : children_of(id)["children"])
      if (ch["state"] != "Cancelled") return false;
    return true;
  }, 120s)) << children_of(id).dump(2);
  ASSERT_TRUE(wait_until([&] {
    for (const auto& cid : containers)
      if (docker_->inspect(cid).status().code() != StatusCode::kNotFound) return false;
    return true;
  }, 60s)) << "a worker's container is still there";
}

// Children whose image does not exist cannot be launched: after the flow's run retries
// the map fails, naming Docker's reason, instead of waiting for them forever.
TEST_F(DistributedMapContainersE2E, ChildrenThatCannotBeLaunchedFailTheMapWithTheReason) {
  register_flow({{"type", "docker"}, {"image", kImage}, {"network_mode", "host"}});
  std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "docker", "--name", "d1",
                                   "--docker-host", socket_, "--max-concurrent", "8", "--heartbeat-seconds", "1"};
  for (const auto& f : env_flags()) argv.push_back(f);
  Process agent(argv, sandbox_.env(user_env()), sandbox_.dir() / "agent.log");
  // The registered version's children get their own run config: an image that is not there.
  auto env = user_env();
  env["MAP_FLOW_CHILD_IMAGE"] = "culvert-no-such-image:missing";
  auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/map_flow"), "--project", "demo", "--storage",
                               bucket_uri_ + "/flows", "--run-config",
                               json({{"type", "docker"}, {"image", kImage}, {"network_mode", "host"}}).dump()},
                              env);
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  std::string id = cli_create_run(sandbox_, user_env(), "fanout", "demo", {"--param", "n=20"});
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 300s)) << state_of(id) << agent.output();
  json run = cli_inspect_run(sandbox_, user_env(), id);
  EXPECT_EQ(run["state"], "Failed") << run.dump(2);
  json failed;
  auto r = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                         server_->url() + "/api/v1/flow-runs/" + id + "/task-runs?task=score&state=Failed"});
  failed = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(failed.is_object()) << r.out;
  ASSERT_EQ(failed["task_runs"].size(), 20u) << failed.dump(2);
  std::string why = failed["task_runs"][0].value("message", "");
  EXPECT_NE(why.find("ended Crashed"), std::string::npos) << why;
  EXPECT_NE(why.find("culvert-no-such-image"), std::string::npos) << why;
  for (const auto& ch : children_of(id)["children"]) {
    EXPECT_EQ(ch["state"], "Crashed") << ch.dump();
    EXPECT_EQ(ch["run_count"], 0) << ch.dump();  // never started
  }
}

TEST_F(DistributedMapContainersE2E, TwentyEcsTasksOfTheFixture) {
  EcsFixture fixture(sandbox_, socket_);
  ASSERT_TRUE(fixture.ok()) << fixture.error();
  register_flow({{"type", "ecs"}, {"image", kImage}, {"cpu", 256}, {"memory", 512}});
  std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "ecs", "--name", "fargate",
                                   "--endpoint-url", fixture.url(), "--region", "us-east-1",
                                   "--subnet", "subnet-fixture-a", "--security-group", "sg-fixture",
                                   "--poll-interval", "200ms", "--heartbeat-seconds", "1",
                                   "--max-concurrent", "21", "--workers", "1"};
  for (const auto& f : env_flags()) argv.push_back(f);
  auto env = sandbox_.env({{"CULVERT_API_URL", server_->url()},
                           {"CULVERT_API_TOKEN", server_->admin_token()},
                           {"AWS_ACCESS_KEY_ID", "AKIDFIXTURE"},
                           {"AWS_SECRET_ACCESS_KEY", "fixture-secret"},
                           {"AWS_EC2_METADATA_DISABLED", "true"},
                           {"MAP_FLOW_STORAGE", bucket_uri_ + "/maps"}});
  Process agent(argv, env, sandbox_.dir() / "agent.log");
  run_and_check(agent, "ecs-task");
  json s = fixture.state();
  EXPECT_EQ(s.value("invalid", json::array()), json::array()) << s.dump(1);
  EXPECT_EQ(s["calls"].value("RegisterTaskDefinition", 0), 1) << s.dump(1);  // parent and children: one revision
}

}  // namespace
}  // namespace culvert::e2e
