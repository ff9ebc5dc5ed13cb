// End to end with an ECS agent against moto (scripts/testenv/moto.sh: an AWS emulator
// with IAM auth on, so every request's SigV4 signature is checked), through a recording
// proxy that forwards each request unchanged, so the test sees exactly what the agent
// sent. Skips, saying why, only when moto is not installed.
//
// moto runs no containers: a task is metadata that stays RUNNING until StopTask. So no
// flow executes here; what is checked is the agent's side: it claims runs, registers the
// task definition once for two runs, sends RunTask with the run's environment, watches
// all its tasks with batched DescribeTasks, crashes a run whose task stops (with the
// stoppedReason), stops the task of a cancelled run, and a launcher adopts a task an
// earlier one started.
//
// moto's quirks, worked around here and not in the product: RunTask answers 500 unless
// awsvpcConfiguration has a securityGroups key (the agent gets --security-group), and for
// a capacityProviderStrategy (so FARGATE_SPOT is checked only in the unit tests); it
// never sets stopCode and reports exit code 0 for every stopped container; its
// ListTaskDefinitions familyPrefix filter matches loosely (filtered again here).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <mutex>
#include <set>

#include "agent/launcher_registry.hpp"
#include "aws/credentials.hpp"
#include "aws/http.hpp"
#include "aws/json_client.hpp"
#include "harness.hpp"
#include "test_http_server.hpp"

namespace culvert::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Forwards every request to `upstream` as it came (the Host header too, so signatures
// still verify) and records the ECS action and body of each.
class RecordingProxy {
 public:
  struct Call {
    std::string action;
    json body;
  };
  explicit RecordingProxy(std::string upstream)
      : upstream_(std::move(upstream)), server_([this](const TestRequest& r) { return forward(r); }) {}
  std::string url() const { return server_.url(); }
  std::vector<Call> calls(const std::string& action) {
    std::lock_guard lock(mu_);
    std::vector<Call> out;
    for (const auto& c : calls_)
      if (c.action == action) out.push_back(c);
    return out;
  }

 private:
  TestResponse forward(const TestRequest& r) {
    aws::HttpRequest out;
    out.method = r.method;
    out.url = upstream_ + r.target;
    for (const auto& [k, v] : r.headers)
      if (k != "content-length" && k != "connection" && k != "expect" && k != "transfer-encoding") out.headers.emplace_back(k, v);
    out.body = r.body;
    auto target = r.headers.find("x-amz-target");
    {
      std::lock_guard lock(mu_);
      std::string action = target == r.headers.end() ? "" : target->second.substr(target->second.find('.') + 1);
      calls_.push_back({action, json::parse(r.body, nullptr, false)});
    }
    auto resp = aws::http_send(out);
    if (!resp) return TestResponse{502, resp.status().message()};
    TestResponse t{static_cast<int>(resp->status), resp->body};
    std::string ct = resp->header("content-type");
    if (!ct.empty()) t.headers.emplace_back("Content-Type", ct);
    return t;
  }

  std::string upstream_;
  std::mutex mu_;
  std::vector<Call> calls_;
  TestHttpServer server_;  // last: stops before the rest goes
};

std::string env_of(const json& run_task, const std::string& name) {
  for (const auto& e : run_task["overrides"]["containerOverrides"][0]["environment"])
    if (e["name"] == name) return e["value"];
  return "";
}

class EcsAgentE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("CULVERT_MOTO_DIR");
    ASSERT_NE(dir, nullptr) << "run through ctest (the moto fixture)";
    if (fs::exists(fs::path(dir) / "missing")) GTEST_SKIP() << trim(read_file(fs::path(dir) / "missing"));
    std::istringstream in(read_file(fs::path(dir) / "env"));
    for (std::string line; std::getline(in, line);)
      if (auto eq = line.find('='); eq != std::string::npos) moto_[line.substr(0, eq)] = line.substr(eq + 1);
    ASSERT_FALSE(moto_["MOTO_URL"].empty()) << "no moto settings in " << dir;
    proxy_ = std::make_unique<RecordingProxy>(moto_["MOTO_URL"]);
  }

  // Starts the server and registers the flow with an ecs run config and a label.
  void start_server() {
    server_ = std::make_unique<TestServer>(
        sandbox_, std::vector<std::string>{"--heartbeat-interval", "1s", "--submitted-deadline", "1h"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo", "--storage",
                                 "file://" + (sandbox_.dir() / "flows").string(), "--label", "fargate-dev",
                                 "--run-config",
                                 json({{"type", "ecs"}, {"image", "culvert-e2e:test"}, {"cpu", 256}, {"memory", 512}}).dump(),
                                 "--output", "json"},
                                admin_env());
    ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
    // The agent uses a RUNNER token, as in production.
    auto created = sandbox_.run({"/usr/bin/curl", "-sf", "-X", "POST", "-H", "Authorization: Bearer " + server_->admin_token(),
                                 "-H", "Content-Type: application/json", "-d", R"({"name":"ecs-agent","scope":"runner"})",
                                 server_->url() + "/api/v1/tokens"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    runner_token_ = json::parse(created.out).at("token").get<std::string>();
  }

  std::map<std::string, std::string> admin_env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()}};
  }

  std::unique_ptr<Process> start_agent(const std::string& name, const std::string& secret) {
    std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "ecs", "--name", name,
                                     "--label", "fargate-dev", "--heartbeat-seconds", "1",
                                     "--cluster", moto_["ECS_CLUSTER"], "--subnet", moto_["ECS_SUBNET"],
                                     "--security-group", moto_["ECS_SECURITY_GROUP"], "--region", moto_["AWS_REGION"],
                                     "--poll-interval", "200ms"};
    auto env = sandbox_.env({{"CULVERT_API_URL", server_->url()},
                             {"CULVERT_API_TOKEN", runner_token_},
                             {"CULVERT_AWS_ENDPOINT_URL", proxy_->url()},  // the environment's way, not --endpoint-url
                             {"AWS_ACCESS_KEY_ID", moto_["AWS_ACCESS_KEY_ID"]},
                             {"AWS_SECRET_ACCESS_KEY", secret},
                             {"AWS_EC2_METADATA_DISABLED", "true"}});
    return std::make_unique<Process>(argv, env, sandbox_.dir() / (name + ".log"));
  }

  std::string create_run() {
    auto r = sandbox_.culvert({"run", "e2e", "--project", "demo", "--output", "json"}, admin_env());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out, nullptr, false);
    if (j.is_discarded()) return "";
    if (j.contains("id")) return j["id"].get<std::string>();
    if (j.contains("flow_run") && j["flow_run"].contains("id")) return j["flow_run"]["id"].get<std::string>();
    return "";
  }

  json get_run(const std::string& id) {
    auto r = sandbox_.culvert({"run", "inspect", id, "--output", "json"}, admin_env());
    auto j = json::parse(r.out, nullptr, false);
    if (j.is_discarded()) return json::object();
    return j.contains("flow_run") ? j["flow_run"] : j;
  }
  std::string state_of(const std::string& id) { return get_run(id).value("state", ""); }

  // A client of moto itself (not through the proxy), to look from the other side.
  std::unique_ptr<aws::AwsJsonClient> moto_ecs() {
    aws::JsonServiceConfig cfg;
    cfg.service = "ecs";
    cfg.target_prefix = "AmazonEC2ContainerServiceV20141113";
    cfg.region = moto_["AWS_REGION"];
    cfg.endpoint = moto_["MOTO_URL"];
    cfg.credentials = std::make_unique<aws::StaticCredentialsProvider>(
        aws::Credentials{moto_["AWS_ACCESS_KEY_ID"], moto_["AWS_SECRET_ACCESS_KEY"], "", {}});
    return std::make_unique<aws::AwsJsonClient>(std::move(cfg));
  }
  json moto_call(const std::string& action, const json& body) {
    auto r = moto_ecs()->call(action, body.dump());
    EXPECT_TRUE(r) << action << ": " << r.status().to_string();
    return r ? json::parse(*r) : json::object();
  }

  // The ARN of the task moto holds for `run_id` (by its culvert:flow-run-id tag).
  std::string task_of(const std::string& run_id) {
    json list = moto_call("ListTasks", {{"cluster", moto_["ECS_CLUSTER"]}});
    if (list["taskArns"].empty()) return "";
    json d = moto_call("DescribeTasks", {{"cluster", moto_["ECS_CLUSTER"]}, {"tasks", list["taskArns"]}, {"include", {"TAGS"}}});
    for (const auto& t : d["tasks"])
      for (const auto& tag : t.value("tags", json::array()))
        if (tag["key"] == "culvert:flow-run-id" && tag["value"] == run_id) return t["taskArn"];
    return "";
  }

  Sandbox sandbox_;
  std::map<std::string, std::string> moto_;
  std::unique_ptr<RecordingProxy> proxy_;
  std::unique_ptr<TestServer> server_;
  std::string runner_token_;
};

TEST_F(EcsAgentE2E, ClaimsRunsRegistersOnceWatchesInBatchesCrashesAndCancels) {
  start_server();
  auto agent = start_agent("ecs-e2e", moto_["AWS_SECRET_ACCESS_KEY"]);
  std::string a = create_run(), b = create_run();
  ASSERT_FALSE(a.empty() || b.empty());
  ASSERT_TRUE(wait_until([&] { return proxy_->calls("RunTask").size() >= 2; }, 60s)) << agent->output();

  // One task definition for both runs, in ECS itself.
  EXPECT_EQ(proxy_->calls("RegisterTaskDefinition").size(), 1u) << agent->output();
  json reg = proxy_->calls("RegisterTaskDefinition").at(0).body;
  std::string family = reg.value("family", "");
  EXPECT_TRUE(family.starts_with("culvert-e2e-")) << family;
  json defs = moto_call("ListTaskDefinitions", {{"familyPrefix", family}});
  int revisions = 0;
  for (const auto& arn : defs["taskDefinitionArns"])
    if (arn.get<std::string>().find(":task-definition/" + family + ":") != std::string::npos) ++revisions;
  EXPECT_EQ(revisions, 1) << defs.dump();

  // RunTask: the run's environment in the overrides, tags and startedBy naming it.
  std::set<std::string> runs_started;
  for (const auto& call : proxy_->calls("RunTask")) {
    const json& r = call.body;
    std::string id = env_of(r, "CULVERT_FLOW_RUN_ID");
    runs_started.insert(id);
    EXPECT_EQ(r["cluster"], moto_["ECS_CLUSTER"]);
    EXPECT_EQ(r["launchType"], "FARGATE");
    EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["subnets"], json::array({moto_["ECS_SUBNET"]}));
    EXPECT_EQ(r["startedBy"], "culvert-ecs-e2e");
    EXPECT_EQ(r["tags"][0], json({{"key", "culvert:flow-run-id"}, {"value", id}}));
    EXPECT_EQ(env_of(r, "CULVERT_API_URL"), server_->url());
    std::string token = env_of(r, "CULVERT_API_TOKEN");
    EXPECT_FALSE(token.empty());
    EXPECT_NE(token, runner_token_);  // the run's own token, never the agent's
    EXPECT_EQ(reg.dump().find(token), std::string::npos) << "a run token in the task definition";
  }
  EXPECT_EQ(runs_started, (std::set<std::string>{a, b}));
  EXPECT_EQ(state_of(a), "Submitted");
  EXPECT_EQ(state_of(b), "Submitted");

  std::string task_a = task_of(a), task_b = task_of(b);
  ASSERT_FALSE(task_a.empty() || task_b.empty());
  // Watching: one DescribeTasks carries both tasks.
  ASSERT_TRUE(wait_until([&] {
    for (const auto& c : proxy_->calls("DescribeTasks")) {
      std::set<std::string> tasks;
      for (const auto& t : c.body.value("tasks", json::array())) tasks.insert(t.get<std::string>());
      if (tasks.count(task_a) && tasks.count(task_b)) return true;
    }
    return false;
  }, 30s)) << agent->output();
  for (const auto& c : proxy_->calls("DescribeTasks")) EXPECT_LE(c.body["tasks"].size(), 2u);

  // A task that stops without its run reporting an end: the run is Crashed with the reason.
  moto_call("StopTask", {{"cluster", moto_["ECS_CLUSTER"]}, {"task", task_a}, {"reason", "e2e: the host was retired"}});
  ASSERT_TRUE(wait_until([&] { return state_of(a) == "Crashed"; }, 60s)) << state_of(a) << "\n" << agent->output();
  std::string message = get_run(a).value("state_message", "");
  EXPECT_NE(message.find("e2e: the host was retired"), std::string::npos) << message;

  // Cancel, by a user token of its own name: StopTask with a reason naming the run and
  // who cancelled it, which ECS keeps as the task's stoppedReason; then Cancelled.
  auto alice = sandbox_.run({"/usr/bin/curl", "-sf", "-X", "POST", "-H", "Authorization: Bearer " + server_->admin_token(),
                             "-H", "Content-Type: application/json", "-d", R"({"name":"alice-oncall","scope":"user"})",
                             server_->url() + "/api/v1/tokens"});
  ASSERT_EQ(alice.exit_code, 0) << alice.err;
  auto cancel = sandbox_.culvert({"run", "cancel", b}, {{"CULVERT_API_URL", server_->url()},
                                                        {"CULVERT_API_TOKEN", json::parse(alice.out).at("token")}});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.out << cancel.err;
  const std::string who = "cancel requested by alice-oncall (user token)";
  ASSERT_TRUE(wait_until([&] { return !proxy_->calls("StopTask").empty(); }, 60s)) << agent->output();
  json stop = proxy_->calls("StopTask").at(0).body;
  EXPECT_EQ(stop["task"], task_b);
  EXPECT_EQ(stop["reason"], "Culvert: flow run " + b + " cancelled (" + who + ")");
  ASSERT_TRUE(wait_until([&] { return state_of(b) == "Cancelled"; }, 60s)) << state_of(b) << "\n" << agent->output();
  json described = moto_call("DescribeTasks", {{"cluster", moto_["ECS_CLUSTER"]}, {"tasks", {task_b}}});
  EXPECT_EQ(described["tasks"][0]["lastStatus"], "STOPPED");
  EXPECT_NE(described["tasks"][0].value("stoppedReason", "").find(who), std::string::npos) << described.dump();
  // The run's final state and its log say it too.
  EXPECT_NE(get_run(b).value("state_message", "").find(who), std::string::npos) << get_run(b).dump();
  auto logs = sandbox_.culvert({"get", "logs", b}, admin_env());
  EXPECT_NE(logs.out.find("[agent] " + who + "; stopping ecs task"), std::string::npos) << logs.out << logs.err;
  EXPECT_EQ(proxy_->calls("RunTask").size(), 2u);  // nothing launched twice
}

TEST_F(EcsAgentE2E, TheTaskArnIsTheRunsInfrastructure) {
  start_server();
  auto agent = start_agent("ecs-e2e", moto_["AWS_SECRET_ACCESS_KEY"]);
  std::string id = create_run();
  ASSERT_TRUE(wait_until([&] { return !task_of(id).empty(); }, 60s)) << agent->output();
  std::string arn = task_of(id);
  const std::string refused = "reporting its infrastructure (ecs-task " + arn + ") failed: NotFound: no route for POST";
  bool shown = false;
  wait_until([&] {
    json run = get_run(id);
    shown = run.contains("infrastructure") && run["infrastructure"].is_object() &&
            run["infrastructure"].value("id", "") == arn;
    return shown || agent->output().find(refused) != std::string::npos;
  }, 30s);
  if (!shown && agent->output().find(refused) != std::string::npos)
    GTEST_SKIP() << "this server has no infrastructure route yet (POST /api/v1/flow-runs/{id}/infrastructure: no "
                    "route); the agent did report ecs-task "
                 << arn;
  ASSERT_TRUE(shown) << get_run(id).dump() << "\n" << agent->output();
  EXPECT_EQ(get_run(id)["infrastructure"]["kind"], "ecs-task");
}

// An ECS agent killed with SIGKILL and started again adopts its run's task from the ARN
// it reported: it launches nothing twice, and a cancel still stops the task.
TEST_F(EcsAgentE2E, AKilledAgentRestartedAdoptsItsTask) {
  start_server();
  auto agent = start_agent("ecs-e2e", moto_["AWS_SECRET_ACCESS_KEY"]);
  std::string id = create_run();
  ASSERT_TRUE(wait_until([&] { return !task_of(id).empty(); }, 60s)) << agent->output();
  std::string arn = task_of(id);
  ASSERT_TRUE(wait_until([&] { return get_run(id).value("infrastructure", json::object()).value("id", "") == arn; }, 30s))
      << get_run(id).dump() << "\n" << agent->output();
  agent->signal(SIGKILL);
  ASSERT_TRUE(agent->wait(30s).has_value());

  auto again = start_agent("ecs-e2e", moto_["AWS_SECRET_ACCESS_KEY"]);
  ASSERT_TRUE(wait_until([&] { return again->output().find("adopted ecs task") != std::string::npos; }, 60s))
      << again->output();
  bool described_with_tags = false;
  for (const auto& c : proxy_->calls("DescribeTasks"))
    if (c.body.contains("include") && c.body["tasks"] == json::array({arn})) described_with_tags = true;
  EXPECT_TRUE(described_with_tags);  // the adoption checked the task's tags
  EXPECT_EQ(state_of(id), "Submitted");

  auto cancel = sandbox_.culvert({"run", "cancel", id}, admin_env());
  ASSERT_EQ(cancel.exit_code, 0) << cancel.out << cancel.err;
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Cancelled"; }, 60s)) << state_of(id) << "\n" << again->output();
  ASSERT_EQ(proxy_->calls("StopTask").size(), 1u);
  EXPECT_EQ(proxy_->calls("StopTask")[0].body["task"], arn);
  EXPECT_EQ(proxy_->calls("RunTask").size(), 1u);  // nothing launched twice
}

TEST_F(EcsAgentE2E, AWrongSecretCrashesTheRunNamingTheAwsCode) {
  start_server();
  auto agent = start_agent("ecs-bad-key", "not-the-secret");
  std::string id = create_run();
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Crashed"; }, 60s)) << state_of(id) << "\n" << agent->output();
  std::string message = get_run(id).value("state_message", "");
  EXPECT_NE(message.find("SignatureDoesNotMatch"), std::string::npos) << message;
  EXPECT_NE(message.find("HTTP 403"), std::string::npos) << message;
  EXPECT_TRUE(proxy_->calls("RunTask").empty());
}

// A second launcher (a restarted agent) adopts the task the first started, watches it
// and stops it; it refuses a task that is not the run's.
TEST_F(EcsAgentE2E, ALauncherAdoptsTheTaskOfAnEarlierOne) {
  const agent::LauncherType* type = agent::find_launcher_type("ecs");
  ASSERT_NE(type, nullptr);
  agent::LauncherContext ctx;
  ctx.agent_name = "ecs-adopt";
  ctx.flags = {{"cluster", moto_["ECS_CLUSTER"]}, {"region", moto_["AWS_REGION"]}, {"endpoint-url", proxy_->url()}};
  ctx.repeated_flags = {{"subnet", {moto_["ECS_SUBNET"]}}, {"security-group", {moto_["ECS_SECURITY_GROUP"]}}};
  auto moto = moto_;
  ctx.getenv = [moto](const std::string& k) -> std::optional<std::string> {
    if (k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY") return moto.at(k);
    if (k == "AWS_EC2_METADATA_DISABLED") return std::string("true");
    return std::nullopt;
  };
  agent::LaunchSpec spec;
  spec.flow_run_id = "run-adopt-1";
  spec.flow_name = "adopt";
  spec.run_config_json = R"({"type":"ecs","image":"culvert-e2e:test"})";
  spec.env = {{"CULVERT_FLOW_RUN_ID", spec.flow_run_id}, {"CULVERT_API_TOKEN", "t"}};
  agent::Infrastructure infra;
  {
    auto first = type->factory(ctx);
    ASSERT_TRUE(first) << first.status().to_string();
    auto launch = (*first)->launch(spec);
    ASSERT_TRUE(launch) << launch.status().to_string();
    infra = (*launch)->infrastructure();
  }
  EXPECT_EQ(infra.kind, "ecs-task");
  auto second = type->factory(ctx);
  ASSERT_TRUE(second);
  auto adopted = (*second)->adopt(spec, infra);
  ASSERT_TRUE(adopted) << adopted.status().to_string();
  EXPECT_FALSE((*second)->poll_all({adopted->get()})[0]);  // still RUNNING
  agent::LaunchSpec other = spec;
  other.flow_run_id = "run-adopt-2";
  auto refused = (*second)->adopt(other, infra);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.status().message().find("tagged for run run-adopt-1"), std::string::npos);
  // Found again without its ARN (as if the first had ended before reporting it): among
  // the tasks this agent started (ListTasks by startedBy), by its tag.
  auto found = (*second)->find(spec);
  ASSERT_TRUE(found) << found.status().to_string();
  EXPECT_EQ((*found)->infrastructure().id, infra.id);
  EXPECT_FALSE((*second)->find(other));
  ASSERT_FALSE(proxy_->calls("ListTasks").empty());
  EXPECT_EQ(proxy_->calls("ListTasks")[0].body["startedBy"], "culvert-ecs-adopt");
  (*adopted)->stop(1s);
  auto exit = (*second)->poll_all({adopted->get()})[0];
  ASSERT_TRUE(exit);
  EXPECT_NE(exit->reason.find("Culvert stopped the task of flow run run-adopt-1"), std::string::npos) << exit->reason;
}

// With --log-group, a task that stopped before the launcher saw it RUNNING leaves the
// tail of its CloudWatch Logs stream (read with GetLogEvents). moto's containers write
// nothing, so the test writes the stream the awslogs driver would have written.
TEST_F(EcsAgentE2E, ATaskThatNeverRanLeavesItsCloudWatchTail) {
  const agent::LauncherType* type = agent::find_launcher_type("ecs");
  ASSERT_NE(type, nullptr);
  agent::LauncherContext ctx;
  ctx.agent_name = "ecs-logs";
  ctx.flags = {{"cluster", moto_["ECS_CLUSTER"]}, {"region", moto_["AWS_REGION"]}, {"endpoint-url", proxy_->url()},
               {"log-group", "/culvert/e2e"}};
  ctx.repeated_flags = {{"subnet", {moto_["ECS_SUBNET"]}}, {"security-group", {moto_["ECS_SECURITY_GROUP"]}}};
  auto moto = moto_;
  ctx.getenv = [moto](const std::string& k) -> std::optional<std::string> {
    if (k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY") return moto.at(k);
    if (k == "AWS_EC2_METADATA_DISABLED") return std::string("true");
    return std::nullopt;
  };
  auto launcher = type->factory(ctx);
  ASSERT_TRUE(launcher) << launcher.status().to_string();
  agent::LaunchSpec spec;
  spec.flow_run_id = "run-logs-1";
  spec.flow_name = "logs";
  spec.run_config_json = R"({"type":"ecs","image":"culvert-e2e:test"})";
  spec.env = {{"CULVERT_FLOW_RUN_ID", spec.flow_run_id}, {"CULVERT_API_TOKEN", "t"}};
  auto launch = (*launcher)->launch(spec);
  ASSERT_TRUE(launch) << launch.status().to_string();
  std::string arn = (*launch)->infrastructure().id;
  std::string stream = "culvert/flow/" + arn.substr(arn.rfind('/') + 1);

  aws::JsonServiceConfig cfg;
  cfg.service = "logs";
  cfg.target_prefix = "Logs_20140328";
  cfg.region = moto_["AWS_REGION"];
  cfg.endpoint = moto_["MOTO_URL"];
  cfg.credentials = std::make_unique<aws::StaticCredentialsProvider>(
      aws::Credentials{moto_["AWS_ACCESS_KEY_ID"], moto_["AWS_SECRET_ACCESS_KEY"], "", {}});
  aws::AwsJsonClient logs(std::move(cfg));
  (void)logs.call("CreateLogGroup", json({{"logGroupName", "/culvert/e2e"}}).dump());  // may exist already
  ASSERT_TRUE(logs.call("CreateLogStream", json({{"logGroupName", "/culvert/e2e"}, {"logStreamName", stream}}).dump()));
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  ASSERT_TRUE(logs.call("PutLogEvents",
                        json({{"logGroupName", "/culvert/e2e"}, {"logStreamName", stream},
                              {"logEvents", {{{"timestamp", now_ms}, {"message", "culvert: cannot fetch the artifact"}}}}})
                            .dump()));
  moto_call("StopTask", {{"cluster", moto_["ECS_CLUSTER"]}, {"task", arn}, {"reason", "e2e: failed to start"}});

  EXPECT_FALSE((*launcher)->poll_all({launch->get()})[0]);  // held for its log tail
  auto lines = (*launch)->drain_output();
  ASSERT_EQ(lines.size(), 2u) << (lines.empty() ? "" : lines[0]);
  EXPECT_NE(lines[0].find(stream), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1], "culvert: cannot fetch the artifact");
  auto exit = (*launcher)->poll_all({launch->get()})[0];
  ASSERT_TRUE(exit);
  EXPECT_NE(exit->reason.find("e2e: failed to start"), std::string::npos) << exit->reason;
  ASSERT_EQ(proxy_->calls("GetLogEvents").size(), 1u);
  EXPECT_EQ(proxy_->calls("GetLogEvents")[0].body["logStreamName"], stream);
  // The definition asked for the awslogs driver with that group and prefix.
  json reg = proxy_->calls("RegisterTaskDefinition").back().body;
  json opts = reg["containerDefinitions"][0]["logConfiguration"]["options"];
  EXPECT_EQ(opts["awslogs-group"], "/culvert/e2e");
  EXPECT_EQ(opts["awslogs-stream-prefix"], "culvert");
}

// No subnets given: the launcher finds the default VPC's subnets through EC2 (query
// protocol, signed with the ec2 scope) and uses them.
TEST_F(EcsAgentE2E, WithoutSubnetsTheDefaultVpcsAreUsed) {
  const agent::LauncherType* type = agent::find_launcher_type("ecs");
  ASSERT_NE(type, nullptr);
  agent::LauncherContext ctx;
  ctx.agent_name = "ecs-vpc";
  ctx.flags = {{"cluster", moto_["ECS_CLUSTER"]}, {"region", moto_["AWS_REGION"]}, {"endpoint-url", proxy_->url()}};
  ctx.repeated_flags = {{"security-group", {moto_["ECS_SECURITY_GROUP"]}}};  // moto needs the key
  auto moto = moto_;
  ctx.getenv = [moto](const std::string& k) -> std::optional<std::string> {
    if (k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY") return moto.at(k);
    if (k == "AWS_EC2_METADATA_DISABLED") return std::string("true");
    return std::nullopt;
  };
  auto launcher = type->factory(ctx);
  ASSERT_TRUE(launcher) << launcher.status().to_string();
  agent::LaunchSpec spec;
  spec.flow_run_id = "run-vpc-1";
  spec.flow_name = "vpc";
  spec.run_config_json = R"({"type":"ecs","image":"culvert-e2e:test"})";
  spec.env = {{"CULVERT_FLOW_RUN_ID", spec.flow_run_id}, {"CULVERT_API_TOKEN", "t"}};
  auto launch = (*launcher)->launch(spec);
  ASSERT_TRUE(launch) << launch.status().to_string();
  auto runs = proxy_->calls("RunTask");
  ASSERT_EQ(runs.size(), 1u);
  json subnets = runs[0].body["networkConfiguration"]["awsvpcConfiguration"]["subnets"];
  std::set<std::string> got;
  for (const auto& s : subnets) got.insert(s.get<std::string>());
  EXPECT_TRUE(got.count(moto_["ECS_SUBNET"])) << subnets.dump();
  EXPECT_EQ(proxy_->calls("").size(), 2u);  // EC2 DescribeVpcs and DescribeSubnets (no X-Amz-Target)
  (*launch)->stop(1s);
}

}  // namespace
}  // namespace culvert::e2e
