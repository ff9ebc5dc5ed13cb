// End to end with a Docker agent: real dockerd, an image built here FROM scratch with the
// culvert binary and the shared libraries it and the flow need, artifact and task results
// on s3rver, host networking so the container reaches the server on 127.0.0.1.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <set>

#include "agent/docker/docker_client.hpp"
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

class DockerAgentE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dockerd_dir = std::getenv("CULVERT_DOCKERD_DIR") ? std::getenv("CULVERT_DOCKERD_DIR") : "";
    std::string s3_dir = std::getenv("CULVERT_S3RVER_DIR") ? std::getenv("CULVERT_S3RVER_DIR") : "";
    ASSERT_FALSE(dockerd_dir.empty() || s3_dir.empty()) << "run through ctest (dockerd and s3rver fixtures)";
    socket_ = trim(read_file(fs::path(dockerd_dir) / "socket"));
    s3_endpoint_ = "http://127.0.0.1:" + trim(read_file(fs::path(s3_dir) / "port"));
    ASSERT_FALSE(socket_.empty());
    docker_ = std::make_unique<docker::DockerClient>(docker::DockerClient::Options{.host = socket_});
    ASSERT_TRUE(docker_->ping().is_ok());

    // The image: culvert, the flow's and culvert's shared libraries, an empty /tmp.
    image_ = "culvert-e2e-runner:test";
    Status built = build_runner_image(sandbox_, *docker_, image_, {build_path("tests/e2e/e2e_flow")});
    ASSERT_TRUE(built.is_ok()) << built.to_string();

    server_ = std::make_unique<TestServer>(sandbox_, std::vector<std::string>{"--heartbeat-interval", "1s"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    bucket_uri_ = "s3://culvert-e2e/e2e-" + sandbox_.dir().filename().string();
  }
  void TearDown() override {
    if (docker_) (void)docker_->remove_image(image_);
  }

  std::map<std::string, std::string> env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()},
            {"CULVERT_S3_ENDPOINT", s3_endpoint_}, {"AWS_ACCESS_KEY_ID", "S3RVER"},
            {"AWS_SECRET_ACCESS_KEY", "S3RVER"}, {"AWS_REGION", "us-east-1"},
            {"AWS_EC2_METADATA_DISABLED", "true"},
            {"E2E_RESULT_URI", bucket_uri_ + "/results/{flow_run_id}/{task_name}"}};
  }

  Sandbox sandbox_;
  std::string socket_, s3_endpoint_, image_, bucket_uri_;
  std::unique_ptr<docker::DockerClient> docker_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(DockerAgentE2E, RunsInAContainerWithArtifactAndResultsOnS3) {
  // Register with a docker run config: the description comes from the flow itself, the
  // run config from this test (written to a flow file the register command reads).
  auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo",
                               "--storage", bucket_uri_ + "/flows", "--run-config",
                               json({{"type", "docker"}, {"image", image_}, {"network_mode", "host"},
                                     {"memory", "512m"}})
                                   .dump(),
                               "--output", "json"},
                              env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto flow = json::parse(reg.out);
  std::string sha = flow["artifact"]["sha256"].get<std::string>();
  // The artifact is in the bucket, seen from the other side (aws CLI).
  auto ls = sandbox_.run({"/usr/bin/aws", "--endpoint-url", s3_endpoint_, "s3", "ls", "--recursive",
                          "s3://culvert-e2e/"}, env());
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("/flows/e2e/" + sha), std::string::npos) << ls.out;

  std::vector<std::string> agent_argv = {culvert_binary(), "agent", "start", "--type", "docker", "--name", "d1",
                                         "--docker-host", socket_};
  for (const auto& [k, v] : env())
    if (k.rfind("CULVERT_API", 0) != 0) agent_argv.insert(agent_argv.end(), {"--env", k + "=" + v});
  Process agent(agent_argv, sandbox_.env(env()), sandbox_.dir() / "agent.log");

  auto run = sandbox_.culvert({"run", "e2e", "--project", "demo", "--watch", "--output", "json"}, env(), 180s);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << "\nagent:\n" << agent.output();
  auto fin = json::parse(run.out, nullptr, false);
  ASSERT_FALSE(fin.is_discarded()) << run.out;
  std::string id = fin.contains("flow_run") ? fin["flow_run"]["id"].get<std::string>() : fin["id"].get<std::string>();

  // The task's result object is in the bucket, and holds the value.
  auto cp = sandbox_.run({"/usr/bin/aws", "--endpoint-url", s3_endpoint_, "s3", "cp",
                          bucket_uri_ + "/results/" + id + "/payload", "-"}, env());
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  EXPECT_NE(cp.out.find("private-payload-" + id), std::string::npos) << cp.out;
  // Nothing of the flow's data reached the server's database.
  server_->stop();
  std::string db;
  for (const auto& f : fs::directory_iterator(sandbox_.dir()))
    if (f.path().filename().string().rfind("culvert.db", 0) == 0) db += read_file(f.path());
  ASSERT_FALSE(db.empty());
  EXPECT_EQ(db.find("private-payload-"), std::string::npos);
  EXPECT_NE(db.find(id), std::string::npos);  // the metadata is there
}

// A Docker agent killed with SIGKILL mid-run and started again adopts the run's container
// from the id it reported: the run still ends right, and a run adopted that way can be
// cancelled (its container stopped).
TEST_F(DockerAgentE2E, AKilledAgentAdoptsItsContainersWhenStartedAgain) {
  auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo",
                               "--storage", bucket_uri_ + "/flows", "--run-config",
                               json({{"type", "docker"}, {"image", image_}, {"network_mode", "host"},
                                     // The run heartbeats for itself while no agent watches it:
                                     // within the server's 3 s (3 missed 1 s heartbeats).
                                     {"env", {{"CULVERT_CANCEL_POLL_MS", "200"},
                                              {"CULVERT_HEARTBEAT_SECONDS", "1"}}}})
                                   .dump(),
                               "--output", "json"},
                              env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  std::vector<std::string> agent_argv = {culvert_binary(), "agent", "start", "--type", "docker", "--name", "d1",
                                         "--docker-host", socket_, "--heartbeat-seconds", "1"};
  for (const auto& [k, v] : env())
    if (k.rfind("CULVERT_API", 0) != 0) agent_argv.insert(agent_argv.end(), {"--env", k + "=" + v});
  auto run_json = [&](const std::string& id) {
    auto r = sandbox_.culvert({"run", "inspect", id, "--output", "json"}, env());
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_object()) return json::object();
    return j.contains("flow_run") ? j["flow_run"] : j;
  };
  auto state_of = [&](const std::string& id) {
    auto j = run_json(id);
    return j.contains("state") && j["state"].is_string() ? j["state"].get<std::string>() : std::string();
  };
  auto create = [&](int sleep_ms) {
    auto r = sandbox_.culvert({"run", "e2e", "--project", "demo", "--param", "sleep_ms=" + std::to_string(sleep_ms),
                               "--output", "json"},
                              env());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_object()) return std::string();
    if (j.contains("flow_run")) j = j["flow_run"];
    return j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : std::string();
  };
  auto container_of = [&](const std::string& id) {
    auto j = run_json(id);
    if (!j.contains("infrastructure") || !j["infrastructure"].is_object()) return std::string();
    const json& i = j["infrastructure"];
    if (i.value("kind", "") != "container") return std::string();
    return i.value("id", "");
  };

  // 1. A run that works 8 s; the agent is killed while it does.
  auto agent = std::make_unique<Process>(agent_argv, sandbox_.env(env()), sandbox_.dir() / "agent1.log");
  std::string id = create(8000);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Running" && !container_of(id).empty(); }, 120s))
      << state_of(id) << "\n" << run_json(id).dump() << "\n" << agent->output();
  std::string container = container_of(id);
  agent->signal(SIGKILL);
  ASSERT_TRUE(agent->wait(10s).has_value());
  auto again = std::make_unique<Process>(agent_argv, sandbox_.env(env()), sandbox_.dir() / "agent2.log");
  ASSERT_TRUE(wait_until([&] { return again->output().find("adopted") != std::string::npos; }, 60s))
      << again->output();
  ASSERT_TRUE(wait_until([&] {
    auto s = state_of(id);
    return s == "Success" || s == "Failed" || s == "Crashed" || s == "Cancelled";
  }, 120s)) << state_of(id) << "\n" << again->output();
  EXPECT_EQ(state_of(id), "Success") << run_json(id).dump() << "\n" << again->output();
  // The adopting agent reaped and removed the container once it ended.
  ASSERT_TRUE(wait_until([&] { return docker_->inspect(container).status().code() == StatusCode::kNotFound; }, 60s));

  // 2. A long run, the agent killed again; after adoption the run is cancelled and the
  // new agent stops its container.
  std::string id2 = create(120000);
  ASSERT_TRUE(wait_until([&] { return state_of(id2) == "Running" && !container_of(id2).empty(); }, 120s))
      << state_of(id2) << "\n" << again->output();
  std::string container2 = container_of(id2);
  again->signal(SIGKILL);
  ASSERT_TRUE(again->wait(10s).has_value());
  auto third = std::make_unique<Process>(agent_argv, sandbox_.env(env()), sandbox_.dir() / "agent3.log");
  ASSERT_TRUE(wait_until([&] { return third->output().find("adopted") != std::string::npos; }, 60s))
      << third->output();
  auto c = sandbox_.culvert({"run", "cancel", id2}, env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return state_of(id2) == "Cancelled"; }, 120s)) << state_of(id2) << "\n"
                                                                            << third->output();
  // Whoever ended it (the flow on seeing Cancelling, or the agent after stopping the
  // container), the final state names who asked for the cancel.
  std::string why = run_json(id2).value("state_message", "");
  EXPECT_NE(why.find("(admin token)"), std::string::npos) << why;
  EXPECT_NE(why.find("cancel requested by "), std::string::npos) << why;
  ASSERT_TRUE(wait_until([&] {
    auto info = docker_->inspect(container2);
    return !info || !info->running;
  }, 60s));
  // A clean stop deregisters: the agent is not shown healthy.
  third->signal(SIGTERM);
  ASSERT_EQ(third->wait(60s), std::optional<int>(0)) << third->output();
  auto agents = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                              server_->url() + "/api/v1/agents"});
  ASSERT_EQ(agents.exit_code, 0);
  auto aj = json::parse(agents.out, nullptr, false);
  const json& list = aj.is_array() ? aj : (aj.is_object() && aj.contains("agents") ? aj["agents"] : json::array());
  bool seen = false;
  for (const auto& a : list)
    if (a.value("name", "") == "d1") {
      seen = true;
      EXPECT_EQ(a.value("status", ""), "stopped") << a.dump();
      EXPECT_FALSE(a.value("healthy", false)) << a.dump();
    }
  EXPECT_TRUE(seen) << agents.out;
}

}  // namespace
}  // namespace culvert::e2e
