// The ECS launcher against a fake ECS behind the AWS client's transport: request shapes,
// definition reuse, batched watching, stop codes, the start timeout, cancel, adoption,
// failures and retries. Every request made here is checked against botocore's ECS model
// at the end (BotocoreAcceptsEveryRequest).
#include "agent/ecs/ecs_launcher.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent/agent.hpp"
#include "agent/launcher_registry.hpp"

namespace culvert::agent::ecs {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Every request any test sent, for the botocore check.
std::mutex g_all_mu;
struct SentRequest {
  std::string service;  // botocore's name: "ecs", "logs"
  std::string action;
  json body;
};
std::vector<SentRequest> g_all_requests;

// An in-memory ECS speaking JSON 1.1: task definitions by family, tasks by ARN.
// Thread-safe.
class FakeEcs final : public aws::HttpTransport {
 public:
  struct Call {
    std::string action;
    json body;
  };

  Result<aws::HttpResponse> send(const aws::HttpRequest& r) override {
    std::lock_guard lock(mu_);
    std::string target;
    for (const auto& [k, v] : r.headers)
      if (k == "X-Amz-Target") target = v;
    if (target.empty()) return ec2(r);
    std::string action = target.substr(target.find('.') + 1);
    json body = json::parse(r.body, nullptr, false);
    calls_.push_back({action, body});
    {
      std::lock_guard all(g_all_mu);
      g_all_requests.push_back({target.starts_with("Logs_") ? "logs" : "ecs", action, body});
    }
    if (auto it = injected_.find(action); it != injected_.end() && !it->second.empty()) {
      aws::HttpResponse resp = it->second.front();
      it->second.pop_front();
      if (resp.status == 0) return unavailable("cannot reach http://ecs.test: Connection refused");
      return resp;
    }
    // Faults at random (seeded): throttling before any work; for RunTask, an answer
    // lost after the task was started.
    if (throttle_rate > 0 && fault_rng_.uniform01() < throttle_rate)
      return aws::HttpResponse{400, {}, R"({"__type":"ThrottlingException","message":"Rate exceeded"})"};
    aws::HttpResponse resp = handle(action, body);
    if (action == "RunTask" && lose_rate > 0 && fault_rng_.uniform01() < lose_rate)
      return unavailable("cannot reach http://ecs.test: Connection reset by peer");
    return resp;
  }
  double throttle_rate = 0;  // of every call
  double lose_rate = 0;      // of RunTask answers
  size_t task_count() {
    std::lock_guard lock(mu_);
    return tasks_.size();
  }

  // The next answers to `action`, before the fake's own (status 0: no answer).
  void inject(const std::string& action, long status, std::string body) {
    std::lock_guard lock(mu_);
    injected_[action].push_back(aws::HttpResponse{status, {}, std::move(body)});
  }
  std::vector<Call> calls(const std::string& action = "") {
    std::lock_guard lock(mu_);
    std::vector<Call> out;
    for (const auto& c : calls_)
      if (action.empty() || c.action == action) out.push_back(c);
    return out;
  }
  void set_task(const std::string& arn, const json& patch) {
    std::lock_guard lock(mu_);
    tasks_[arn].merge_patch(patch);
  }
  void forget_task(const std::string& arn) {
    std::lock_guard lock(mu_);
    tasks_.erase(arn);
  }
  // Marks every revision of `family` INACTIVE (DeregisterTaskDefinition, by someone else).
  void deregister(const std::string& family) {
    std::lock_guard lock(mu_);
    for (auto& td : families_[family]) td["status"] = "INACTIVE";
  }
  size_t revisions(const std::string& family) {
    std::lock_guard lock(mu_);
    return families_[family].size();
  }
  // RunTask answers with this failure instead of a task.
  std::optional<json> run_failure;
  // CloudWatch Logs: the lines of each "group|stream".
  std::map<std::string, std::vector<std::string>> log_streams;
  // EC2: the default VPC ("" : none) and its subnets (id, default for its zone).
  std::string default_vpc;
  std::vector<std::pair<std::string, bool>> vpc_subnets;

 private:
  static std::string percent_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }
  // The query protocol (EC2): a form body, an XML answer. Recorded as "ec2:<Action>" with
  // the form's fields as a JSON object, and the raw body under "_form".
  aws::HttpResponse ec2(const aws::HttpRequest& r) {
    json form = json::object();
    std::string body(r.body);
    size_t start = 0;
    while (start < body.size()) {
      size_t amp = body.find('&', start);
      std::string pair = body.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      auto eq = pair.find('=');
      form[percent_decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : percent_decode(pair.substr(eq + 1));
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
    std::string action = form.value("Action", "");
    json recorded = form;
    recorded["_form"] = body;
    calls_.push_back({"ec2:" + action, recorded});
    const std::string ns = R"( xmlns="http://ec2.amazonaws.com/doc/2016-11-15/")";
    if (action == "DescribeVpcs") {
      std::string items;
      if (!default_vpc.empty()) items = "<item><vpcId>" + default_vpc + "</vpcId><isDefault>true</isDefault></item>";
      return {200, {}, "<DescribeVpcsResponse" + ns + "><requestId>r</requestId><vpcSet>" + items + "</vpcSet></DescribeVpcsResponse>"};
    }
    if (action == "DescribeSubnets") {
      std::string items;
      for (const auto& [id, def] : vpc_subnets)
        items += "<item><subnetId>" + id + "</subnetId><vpcId>" + default_vpc + "</vpcId><defaultForAz>" +
                 (def ? "true" : "false") + "</defaultForAz></item>";
      return {200, {}, "<DescribeSubnetsResponse" + ns + "><subnetSet>" + items + "</subnetSet></DescribeSubnetsResponse>"};
    }
    return {400, {}, "<Response><Errors><Error><Code>InvalidAction</Code><Message>" + action + "</Message></Error></Errors></Response>"};
  }

  static aws::HttpResponse ok(const json& j) { return {200, {}, j.dump()}; }
  static aws::HttpResponse client_error(const std::string& type, const std::string& message) {
    return {400, {}, json{{"__type", type}, {"message", message}}.dump()};
  }

  aws::HttpResponse handle(const std::string& action, const json& b) {
    if (action == "DescribeTaskDefinition") {
      std::string family = b.value("taskDefinition", "");
      auto it = families_.find(family);
      if (it == families_.end() || it->second.empty() || it->second.back()["status"] != "ACTIVE")
        return client_error("ClientException", "Unable to describe task definition.");
      const json& td = it->second.back();
      return ok({{"taskDefinition", td}, {"tags", td.value("tags", json::array())}});
    }
    if (action == "RegisterTaskDefinition") {
      std::string family = b["family"];
      json td = b;
      td["revision"] = families_[family].size() + 1;
      td["status"] = "ACTIVE";
      td["taskDefinitionArn"] =
          "arn:aws:ecs:eu-west-1:123456789012:task-definition/" + family + ":" + std::to_string(families_[family].size() + 1);
      families_[family].push_back(td);
      json shown = td;
      shown.erase("tags");
      return ok({{"taskDefinition", shown}, {"tags", b.value("tags", json::array())}});
    }
    if (action == "RunTask") {
      if (run_failure) return ok({{"tasks", json::array()}, {"failures", json::array({*run_failure})}});
      for (const auto& [family, revs] : families_)
        for (const auto& td : revs)
          if (td["taskDefinitionArn"] == b.value("taskDefinition", "") && td["status"] != "ACTIVE")
            return client_error("ClientException", "TaskDefinition is inactive");
      // ECS's idempotency: the same clientToken answers with the task it started.
      if (auto seen = by_token_.find(b.value("clientToken", "")); seen != by_token_.end() && !seen->first.empty())
        return ok({{"tasks", json::array({tasks_[seen->second]})}, {"failures", json::array()}});
      std::string cluster = b.value("cluster", "default");
      std::string arn = "arn:aws:ecs:eu-west-1:123456789012:task/" + cluster + "/t" + std::to_string(++next_task_);
      by_token_[b.value("clientToken", "")] = arn;
      json task = {{"taskArn", arn},
                   {"clusterArn", "arn:aws:ecs:eu-west-1:123456789012:cluster/" + cluster},
                   {"lastStatus", "PROVISIONING"},
                   {"desiredStatus", "RUNNING"},
                   {"tags", b.value("tags", json::array())},
                   {"startedBy", b.value("startedBy", "")},
                   {"containers", json::array({{{"name", "flow"}, {"lastStatus", "PENDING"}}})}};
      tasks_[arn] = task;
      return ok({{"tasks", json::array({task})}, {"failures", json::array()}});
    }
    if (action == "DescribeTasks") {
      json tasks = json::array(), failures = json::array();
      for (const auto& arn : b["tasks"]) {
        auto it = tasks_.find(arn.get<std::string>());
        if (it == tasks_.end()) failures.push_back({{"arn", arn}, {"reason", "MISSING"}});
        else tasks.push_back(it->second);
      }
      return ok({{"tasks", tasks}, {"failures", failures}});
    }
    if (action == "ListTasks") {  // startedBy only, one page of at most maxResults
      json arns = json::array();
      for (const auto& [arn, t] : tasks_)
        if (t.value("startedBy", "") == b.value("startedBy", "") && t.value("lastStatus", "") != "STOPPED") arns.push_back(arn);
      return ok({{"taskArns", arns}});
    }
    if (action == "GetLogEvents") {
      auto it = log_streams.find(b.value("logGroupName", "") + "|" + b.value("logStreamName", ""));
      if (it == log_streams.end()) return client_error("ResourceNotFoundException", "The specified log stream does not exist.");
      json events = json::array();
      size_t limit = b.value("limit", 10000);
      size_t from = it->second.size() > limit ? it->second.size() - limit : 0;
      for (size_t i = from; i < it->second.size(); ++i) events.push_back({{"timestamp", 1}, {"message", it->second[i]}});
      return ok({{"events", events}});
    }
    if (action == "StopTask") {
      auto it = tasks_.find(b.value("task", ""));
      if (it == tasks_.end()) return client_error("InvalidParameterException", "The referenced task was not found.");
      it->second["lastStatus"] = "STOPPED";
      it->second["desiredStatus"] = "STOPPED";
      it->second["stopCode"] = "UserInitiated";
      it->second["stoppedReason"] = b.value("reason", "");
      it->second["containers"][0]["exitCode"] = 143;
      return ok({{"task", it->second}});
    }
    return client_error("UnknownOperationException", action);
  }

  std::mutex mu_;
  std::vector<Call> calls_;
  std::map<std::string, std::deque<aws::HttpResponse>> injected_;
  std::map<std::string, std::vector<json>> families_;
  std::map<std::string, json> tasks_;
  std::map<std::string, std::string> by_token_;  // clientToken -> task ARN
  SeededRandom fault_rng_{42};
  int next_task_ = 0;
};

struct Fixture {
  FakeEcs ecs;
  ManualClock clock;
  Clock* clock_override = nullptr;  // the launcher's clock instead of `clock`
  SeededRandom random{11};

  std::unique_ptr<EcsLauncher> launcher(EcsDefaults d = defaults()) {
    EcsLauncherOptions o;
    o.defaults = std::move(d);
    o.agent_name = "ecs-1";
    o.region = "eu-west-1";
    o.endpoint_url = "http://ecs.test";
    o.credentials = std::make_unique<aws::StaticCredentialsProvider>(aws::Credentials{"AKID", "secret", "", {}});
    o.clock = clock_override ? clock_override : &clock;
    o.random = &random;
    o.transport = &ecs;
    return std::make_unique<EcsLauncher>(std::move(o));
  }
  static EcsDefaults defaults() {
    EcsDefaults d;
    d.cluster = "flows";
    d.subnets = {"subnet-a", "subnet-b"};
    d.security_groups = {"sg-1"};
    d.execution_role_arn = "arn:aws:iam::123456789012:role/culvert-exec";
    d.task_role_arn = "arn:aws:iam::123456789012:role/culvert-task";
    d.region = "eu-west-1";
    return d;
  }
  static LaunchSpec spec(const std::string& run_id, const std::string& rc = R"({"type":"ecs","image":"acme/etl:1"})") {
    LaunchSpec s;
    s.flow_run_id = run_id;
    s.flow_id = "flow-1";
    s.flow_name = "etl";
    s.run_config_json = rc;
    s.env = {{"CULVERT_API_URL", "http://culvert.internal:4200"},
             {"CULVERT_API_TOKEN", "run-token-" + run_id},
             {"CULVERT_FLOW_RUN_ID", run_id},
             {"TEAM", "data"}};
    return s;
  }
};

std::unique_ptr<Launch> must(Result<std::unique_ptr<Launch>> r) {
  EXPECT_TRUE(r) << r.status().to_string();
  return r ? std::move(*r) : nullptr;
}

std::string env_value(const json& run_task, const std::string& name) {
  for (const auto& e : run_task["overrides"]["containerOverrides"][0]["environment"])
    if (e["name"] == name) return e["value"];
  return "<absent>";
}

TEST(EcsLauncher, RegistersTheDefinitionOnceAndRunsEachRunAsATask) {
  Fixture f;
  auto l = f.launcher();
  auto a = l->launch(Fixture::spec("run-a"));
  ASSERT_TRUE(a) << a.status().to_string();
  auto b = l->launch(Fixture::spec("run-b"));
  ASSERT_TRUE(b) << b.status().to_string();

  EXPECT_EQ(f.ecs.calls("DescribeTaskDefinition").size(), 1u);  // the second run knows it
  ASSERT_EQ(f.ecs.calls("RegisterTaskDefinition").size(), 1u);
  auto runs = f.ecs.calls("RunTask");
  ASSERT_EQ(runs.size(), 2u);

  json reg = f.ecs.calls("RegisterTaskDefinition")[0].body;
  EXPECT_TRUE(reg["family"].get<std::string>().starts_with("culvert-etl-"));
  EXPECT_EQ(reg["containerDefinitions"][0]["image"], "acme/etl:1");
  // Nothing of a run in the definition: its token and the server stay in the overrides.
  EXPECT_EQ(reg.dump().find("run-token"), std::string::npos);
  EXPECT_EQ(reg.dump().find("culvert.internal"), std::string::npos);

  const json& r = runs[0].body;
  EXPECT_EQ(r["cluster"], "flows");
  EXPECT_EQ(r["taskDefinition"], "arn:aws:ecs:eu-west-1:123456789012:task-definition/" + reg["family"].get<std::string>() + ":1");
  EXPECT_EQ(r["count"], 1);
  EXPECT_EQ(r["launchType"], "FARGATE");
  EXPECT_FALSE(r.contains("capacityProviderStrategy"));
  EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["subnets"], json::array({"subnet-a", "subnet-b"}));
  EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"], json::array({"sg-1"}));
  EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"], "DISABLED");
  const json& co = r["overrides"]["containerOverrides"][0];
  EXPECT_EQ(co["name"], "flow");
  EXPECT_EQ(co["command"], json::array({"culvert", "execute"}));
  EXPECT_EQ(env_value(r, "CULVERT_API_TOKEN"), "run-token-run-a");
  EXPECT_EQ(env_value(r, "CULVERT_API_URL"), "http://culvert.internal:4200");
  EXPECT_EQ(env_value(r, "CULVERT_FLOW_RUN_ID"), "run-a");
  EXPECT_EQ(env_value(r, "TEAM"), "data");
  EXPECT_EQ(r["startedBy"], "culvert-ecs-1");
  EXPECT_EQ(r["tags"], json::parse(R"([{"key":"culvert:flow-run-id","value":"run-a"},{"key":"culvert:agent","value":"ecs-1"}])"));
  EXPECT_EQ(r["clientToken"].get<std::string>().size(), 64u);
  EXPECT_NE(r["clientToken"], runs[1].body["clientToken"]);

  EXPECT_EQ((*a)->infrastructure().kind, "ecs-task");
  EXPECT_EQ((*a)->infrastructure().id, "arn:aws:ecs:eu-west-1:123456789012:task/flows/t1");
  EXPECT_EQ((*a)->describe(), "ecs task t1");
}

TEST(EcsLauncher, ARestartedAgentFindsTheDefinitionInEcs) {
  Fixture f;
  ASSERT_TRUE(f.launcher()->launch(Fixture::spec("run-a")));
  auto again = f.launcher();  // a new process: nothing cached
  ASSERT_TRUE(again->launch(Fixture::spec("run-b")));
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").size(), 1u);
  EXPECT_EQ(f.ecs.calls("DescribeTaskDefinition").size(), 2u);
  // A different run config is a different definition.
  ASSERT_TRUE(again->launch(Fixture::spec("run-c", R"({"image":"acme/etl:2"})")));
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").size(), 2u);
}

TEST(EcsLauncher, ThousandRunsOneRevision) {
  Fixture f;
  auto l = f.launcher();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(l->launch(Fixture::spec("run-" + std::to_string(i))));
  json reg = f.ecs.calls("RegisterTaskDefinition").at(0).body;
  EXPECT_EQ(f.ecs.revisions(reg["family"]), 1u);
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").size(), 1u);
  EXPECT_EQ(f.ecs.calls("RunTask").size(), 1000u);
}

TEST(EcsLauncher, FargateSpotIsACapacityProviderStrategyNeverWithALaunchType) {
  Fixture f;
  EcsDefaults d = Fixture::defaults();
  d.launch_type = LaunchType::kFargateSpot;
  d.platform_version = "1.4.0";
  d.assign_public_ip = true;
  ASSERT_TRUE(f.launcher(d)->launch(Fixture::spec("run-a")));
  const json r = f.ecs.calls("RunTask").at(0).body;
  EXPECT_FALSE(r.contains("launchType"));
  EXPECT_EQ(r["capacityProviderStrategy"], json::parse(R"([{"capacityProvider":"FARGATE_SPOT","weight":1}])"));
  EXPECT_EQ(r["platformVersion"], "1.4.0");
  EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"], "ENABLED");
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").at(0).body["requiresCompatibilities"], json::array({"FARGATE"}));
}

TEST(EcsLauncher, Ec2LaunchType) {
  Fixture f;
  EcsDefaults d = Fixture::defaults();
  d.launch_type = LaunchType::kEc2;
  d.platform_version = "1.4.0";  // Fargate only: not sent
  ASSERT_TRUE(f.launcher(d)->launch(Fixture::spec("run-a")));
  const json r = f.ecs.calls("RunTask").at(0).body;
  EXPECT_EQ(r["launchType"], "EC2");
  EXPECT_FALSE(r.contains("platformVersion"));
  EXPECT_FALSE(r["networkConfiguration"]["awsvpcConfiguration"].contains("assignPublicIp"));
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").at(0).body["requiresCompatibilities"], json::array({"EC2"}));
}

TEST(EcsLauncher, RunConfigOverridesTheAgentsSettings) {
  Fixture f;
  auto l = f.launcher();
  ASSERT_TRUE(l->launch(Fixture::spec("run-a", R"({"image":"i","cluster":"other","subnets":["subnet-z"],
      "security_groups":["sg-9"],"assign_public_ip":true,"task_role_arn":"arn:aws:iam::1:role/rc-task",
      "command":["culvert","execute","--verbose"],"run_task_kwargs":{"enableExecuteCommand":true,"group":"nightly"}})")));
  const json r = f.ecs.calls("RunTask").at(0).body;
  EXPECT_EQ(r["cluster"], "other");
  EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["subnets"], json::array({"subnet-z"}));
  EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"], json::array({"sg-9"}));
  EXPECT_EQ(r["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"], "ENABLED");
  EXPECT_EQ(r["overrides"]["containerOverrides"][0]["command"], json::array({"culvert", "execute", "--verbose"}));
  EXPECT_EQ(r["enableExecuteCommand"], true);
  EXPECT_EQ(r["group"], "nightly");
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").at(0).body["taskRoleArn"], "arn:aws:iam::1:role/rc-task");
}

// 200 runs with a fifth of all calls throttled and some RunTask answers lost after the
// task started: every run has exactly one task (the retried RunTask carries the same
// clientToken) and there is one revision.
TEST(EcsLauncher, ThrottledAndLostAnswersStartEachRunOnce) {
  Fixture f;
  f.ecs.throttle_rate = 0.2;
  f.ecs.lose_rate = 0.1;
  auto l = f.launcher();
  std::set<std::string> arns;
  for (int i = 0; i < 200; ++i) {
    auto r = l->launch(Fixture::spec("run-" + std::to_string(i)));
    ASSERT_TRUE(r) << i << ": " << r.status().to_string();
    arns.insert((*r)->infrastructure().id);
  }
  EXPECT_EQ(arns.size(), 200u);
  EXPECT_EQ(f.ecs.task_count(), 200u);  // none started twice
  EXPECT_GT(f.ecs.calls("RunTask").size(), 200u);  // retries happened
  json reg = f.ecs.calls("RegisterTaskDefinition").at(0).body;
  EXPECT_EQ(f.ecs.revisions(reg["family"]), 1u);
}

TEST(EcsLauncher, ADeregisteredDefinitionIsRegisteredAgain) {
  Fixture f;
  auto l = f.launcher();
  ASSERT_TRUE(l->launch(Fixture::spec("r1")));
  std::string family = f.ecs.calls("RegisterTaskDefinition").at(0).body["family"];
  f.ecs.deregister(family);
  auto r = l->launch(Fixture::spec("r2"));
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(f.ecs.revisions(family), 2u);
  auto runs = f.ecs.calls("RunTask");
  ASSERT_EQ(runs.size(), 3u);  // r1, r2 refused (inactive), r2 again
  EXPECT_TRUE(runs[2].body["taskDefinition"].get<std::string>().ends_with(":2"));
  ASSERT_TRUE(l->launch(Fixture::spec("r3")));  // and the new revision is remembered
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").size(), 2u);
}

TEST(EcsLauncher, RunTaskKwargsCannotTakeOverWhatNamesTheRun) {
  Fixture f;
  auto l = f.launcher();
  for (const char* kwargs : {R"({"startedBy":"me"})", R"({"count":3})", R"({"clientToken":"x"})",
                             R"({"taskDefinition":"other:1"})",
                             R"({"overrides":{"containerOverrides":[{"name":"flow","environment":[]}]}})",
                             R"({"tags":"team=data"})"}) {
    auto r = l->launch(Fixture::spec("r", std::string(R"({"image":"i","run_task_kwargs":)") + kwargs + "}"));
    ASSERT_FALSE(r) << kwargs;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << kwargs;
    EXPECT_NE(r.status().message().find("run_task_kwargs"), std::string::npos) << r.status().message();
  }
  EXPECT_TRUE(f.ecs.calls("RunTask").empty());
  // Tags are added to Culvert's (never replacing a culvert: one); other overrides merge.
  ASSERT_TRUE(l->launch(Fixture::spec("r1", R"({"image":"i","run_task_kwargs":{"tags":[{"key":"team","value":"data"},
      {"key":"culvert:flow-run-id","value":"forged"}],"overrides":{"ephemeralStorage":{"sizeInGiB":40}}}})")));
  const json r = f.ecs.calls("RunTask").at(0).body;
  EXPECT_EQ(r["tags"], json::parse(R"([{"key":"culvert:flow-run-id","value":"r1"},{"key":"culvert:agent","value":"ecs-1"},
      {"key":"team","value":"data"}])"));
  EXPECT_EQ(r["overrides"]["ephemeralStorage"]["sizeInGiB"], 40);
  EXPECT_EQ(env_value(r, "CULVERT_FLOW_RUN_ID"), "r1");
}

TEST(EcsLauncher, RefusesBadRunConfigsBeforeAnyCall) {
  Fixture f;
  EcsDefaults d = Fixture::defaults();
  d.subnets.clear();
  auto l = f.launcher(d);
  auto no_image = l->launch(Fixture::spec("r1", R"({"type":"ecs"})"));
  ASSERT_FALSE(no_image);
  EXPECT_NE(no_image.status().message().find("no image"), std::string::npos);
  auto bad_size = l->launch(Fixture::spec("r2", R"({"image":"i","cpu":"1 vCPU","memory":"512"})"));
  ASSERT_FALSE(bad_size);
  EXPECT_NE(bad_size.status().message().find("Fargate cpu 1024 takes memory 2048, 3072"), std::string::npos)
      << bad_size.status().message();
  EXPECT_TRUE(f.ecs.calls().empty());
  auto no_subnet = l->launch(Fixture::spec("r3"));  // and no default VPC either
  ASSERT_FALSE(no_subnet);
  EXPECT_EQ(no_subnet.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(no_subnet.status().message(),
            "no subnets given (agent --subnet, or the run config's \"subnets\") and the region has no default VPC in "
            "eu-west-1");
  EXPECT_TRUE(f.ecs.calls("RunTask").empty());
}

TEST(EcsLauncher, WithoutSubnetsUsesTheDefaultVpcsLookedUpOnce) {
  Fixture f;
  f.ecs.default_vpc = "vpc-0d";
  f.ecs.vpc_subnets = {{"subnet-other", false}, {"subnet-az1", true}, {"subnet-az2", true}};
  EcsDefaults d = Fixture::defaults();
  d.subnets.clear();
  auto l = f.launcher(d);
  ASSERT_TRUE(l->launch(Fixture::spec("r1")));
  ASSERT_TRUE(l->launch(Fixture::spec("r2")));
  for (const auto& run : f.ecs.calls("RunTask"))
    EXPECT_EQ(run.body["networkConfiguration"]["awsvpcConfiguration"]["subnets"],
              json::array({"subnet-az1", "subnet-az2", "subnet-other"}));
  auto vpcs = f.ecs.calls("ec2:DescribeVpcs");
  auto subnets = f.ecs.calls("ec2:DescribeSubnets");
  ASSERT_EQ(vpcs.size(), 1u);
  ASSERT_EQ(subnets.size(), 1u);
  // The wire form botocore's EC2 serializer makes of the same parameters (checked in
  // BotocoreAcceptsEveryRequest, too).
  EXPECT_EQ(vpcs[0].body["_form"], "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=is-default&Filter.1.Value.1=true");
  EXPECT_EQ(subnets[0].body["_form"], "Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0d");
  // A run config's subnets need no lookup.
  auto l2 = f.launcher(d);
  ASSERT_TRUE(l2->launch(Fixture::spec("r3", R"({"image":"i","subnets":["subnet-rc"]})")));
  EXPECT_EQ(f.ecs.calls("ec2:DescribeVpcs").size(), 1u);
}

TEST(EcsLauncher, RunTaskFailuresAndErrorsAreTheLaunchError) {
  Fixture f;
  auto l = f.launcher();
  f.ecs.run_failure = json{{"arn", "arn:aws:ecs:eu-west-1:123456789012:container-instance/x"},
                           {"reason", "RESOURCE:MEMORY"},
                           {"detail", "not enough memory"}};
  auto r = l->launch(Fixture::spec("r1"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("RESOURCE:MEMORY (not enough memory)"), std::string::npos) << r.status().message();
  f.ecs.run_failure.reset();
  f.ecs.inject("RunTask", 400, R"({"__type":"ClusterNotFoundException","message":"Cluster not found."})");
  r = l->launch(Fixture::spec("r2"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "ecs RunTask failed: HTTP 400 ClusterNotFoundException: Cluster not found.");
  f.ecs.inject("RunTask", 400, R"({"__type":"InvalidParameterException","message":"subnet-a belongs to vpc-2"})");
  r = l->launch(Fixture::spec("r3"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("InvalidParameterException: subnet-a belongs to vpc-2"), std::string::npos);
  EXPECT_EQ(f.ecs.calls("RunTask").size(), 3u);  // 4xx: never retried
}

TEST(EcsLauncher, ConcurrentRevisionRefusalAndThrottlingAreRetried) {
  Fixture f;
  auto l = f.launcher();
  f.ecs.inject("RegisterTaskDefinition", 400,
               R"({"__type":"ClientException","message":"Too many concurrent attempts to create a new revision of the specified family."})");
  f.ecs.inject("RunTask", 400, R"({"__type":"ThrottlingException","message":"Rate exceeded"})");
  f.ecs.inject("RunTask", 503, "");
  auto r = l->launch(Fixture::spec("r1"));
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(f.ecs.calls("RegisterTaskDefinition").size(), 2u);
  auto runs = f.ecs.calls("RunTask");
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].body["clientToken"], runs[2].body["clientToken"]);  // a retry starts no second task
  json reg = f.ecs.calls("RegisterTaskDefinition").at(0).body;
  EXPECT_EQ(f.ecs.revisions(reg["family"]), 1u);
}

TEST(EcsLauncher, OneDescribeTasksPerClusterAndHundredTasks) {
  Fixture f;
  auto l = f.launcher();
  std::vector<std::unique_ptr<Launch>> launches;
  for (int i = 0; i < 150; ++i) launches.push_back(must(l->launch(Fixture::spec("a" + std::to_string(i)))));
  for (int i = 0; i < 3; ++i)
    launches.push_back(must(l->launch(Fixture::spec("b" + std::to_string(i), R"({"image":"acme/etl:1","cluster":"other"})"))));
  std::vector<Launch*> ptrs;
  for (auto& p : launches) ptrs.push_back(p.get());
  auto exits = l->poll_all(ptrs);
  ASSERT_EQ(exits.size(), 153u);
  for (const auto& e : exits) EXPECT_FALSE(e);
  auto describes = f.ecs.calls("DescribeTasks");
  ASSERT_EQ(describes.size(), 3u);  // flows: 100 + 50, other: 3
  std::map<std::string, std::vector<size_t>> sizes;
  for (const auto& d : describes) sizes[d.body["cluster"]].push_back(d.body["tasks"].size());
  EXPECT_EQ(sizes["flows"], (std::vector<size_t>{100, 50}));
  EXPECT_EQ(sizes["other"], (std::vector<size_t>{3}));
}

TEST(EcsLauncher, StoppedTaskEndsTheLaunchWithItsReason) {
  Fixture f;
  auto l = f.launcher();
  auto a = must(l->launch(Fixture::spec("a")));
  auto b = must(l->launch(Fixture::spec("b")));
  auto c = must(l->launch(Fixture::spec("c")));
  f.ecs.set_task(a->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING"})"));
  f.ecs.set_task(b->infrastructure().id,
                 json::parse(R"({"lastStatus":"STOPPED","stopCode":"TaskFailedToStart",
                     "stoppedReason":"CannotPullContainerError: ref acme/etl:1 not found",
                     "containers":[{"name":"flow","reason":"CannotPullContainerError"}]})"));
  f.ecs.forget_task(c->infrastructure().id);
  auto exits = l->poll_all({a.get(), b.get(), c.get()});
  EXPECT_FALSE(exits[0]);
  ASSERT_TRUE(exits[1]);
  EXPECT_FALSE(exits[1]->success());
  EXPECT_NE(exits[1]->reason.find("TaskFailedToStart"), std::string::npos) << exits[1]->reason;
  EXPECT_NE(exits[1]->reason.find("CannotPullContainerError: ref acme/etl:1 not found"), std::string::npos);
  ASSERT_TRUE(exits[2]);
  EXPECT_NE(exits[2]->reason.find("gone from cluster flows (MISSING)"), std::string::npos) << exits[2]->reason;
  // An ended launch is not described again.
  size_t before = f.ecs.calls("DescribeTasks").size();
  exits = l->poll_all({b.get(), c.get()});
  EXPECT_TRUE(exits[0] && exits[1]);
  EXPECT_EQ(f.ecs.calls("DescribeTasks").size(), before);
}

TEST(EcsLauncher, TaskNotRunningWithinTheStartTimeoutIsStopped) {
  Fixture f;
  auto l = f.launcher();  // default timeout: 10 min
  auto slow = must(l->launch(Fixture::spec("slow")));
  auto fine = must(l->launch(Fixture::spec("fine")));
  f.ecs.set_task(fine->infrastructure().id, json::parse(R"({"lastStatus":"PENDING"})"));
  auto exits = l->poll_all({slow.get(), fine.get()});
  EXPECT_FALSE(exits[0] || exits[1]);
  f.clock.advance(5min);
  f.ecs.set_task(fine->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING"})"));
  exits = l->poll_all({slow.get(), fine.get()});
  EXPECT_FALSE(exits[0] || exits[1]);
  EXPECT_TRUE(f.ecs.calls("StopTask").empty());
  f.clock.advance(5min);
  exits = l->poll_all({slow.get(), fine.get()});
  ASSERT_TRUE(exits[0]);
  EXPECT_FALSE(exits[1]);  // it reached RUNNING in time
  EXPECT_EQ(exits[0]->reason,
            "the task was not RUNNING within 10 min (--task-start-timeout; its last status was PROVISIONING); Culvert "
            "stopped it");
  auto stops = f.ecs.calls("StopTask");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].body["task"], slow->infrastructure().id);
  EXPECT_EQ(stops[0].body["cluster"], "flows");
  EXPECT_NE(stops[0].body["reason"].get<std::string>().find("not RUNNING within 10 min"), std::string::npos);
}

TEST(EcsLauncher, CancelStopsTheTask) {
  Fixture f;
  auto l = f.launcher();
  auto a = must(l->launch(Fixture::spec("a")));
  f.ecs.set_task(a->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING"})"));
  a->stop(10s);
  auto stops = f.ecs.calls("StopTask");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].body["reason"], "Culvert stopped the task of flow run a (cancelled, or ended while its task ran on)");
  auto e = a->poll();
  ASSERT_TRUE(e);
  EXPECT_NE(e->reason.find("UserInitiated"), std::string::npos) << e->reason;
  // A task ECS no longer knows counts as stopped already.
  auto b = must(l->launch(Fixture::spec("b")));
  f.ecs.forget_task(b->infrastructure().id);
  b->stop(10s);
  EXPECT_EQ(f.ecs.calls("StopTask").size(), 2u);
  EXPECT_TRUE(b->poll());
}

// A cancel's StopTask reason names the run and who cancelled it, so the task's
// stoppedReason says it; ECS takes at most 255 characters, so a long cause is cut, at a
// UTF-8 character boundary.
TEST(EcsLauncher, ACancelsStopTaskReasonNamesWhoCancelledBounded) {
  Fixture f;
  auto l = f.launcher();
  auto a = must(l->launch(Fixture::spec("a")));
  f.ecs.set_task(a->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING"})"));
  a->cancel(10s, "cancel requested by alice-oncall (user token)");
  auto stops = f.ecs.calls("StopTask");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].body["reason"], "Culvert: flow run a cancelled (cancel requested by alice-oncall (user token))");
  auto e = a->poll();
  ASSERT_TRUE(e);
  EXPECT_NE(e->reason.find("cancel requested by alice-oncall (user token)"), std::string::npos) << e->reason;

  // A token name of 300 characters, of two bytes each from the 40th on.
  std::string name(40, 'x');
  for (int i = 0; i < 260; ++i) name += "\xc3\xa9";  // U+00E9
  auto b = must(l->launch(Fixture::spec("b")));
  f.ecs.set_task(b->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING"})"));
  b->cancel(10s, "cancel requested by " + name + " (user token)");
  stops = f.ecs.calls("StopTask");
  ASSERT_EQ(stops.size(), 2u);
  std::string reason = stops[1].body["reason"];
  EXPECT_LE(reason.size(), 255u);
  EXPECT_TRUE(reason.starts_with("Culvert: flow run b cancelled (cancel requested by xxxx")) << reason;
  EXPECT_TRUE(reason.ends_with("\xc3\xa9...")) << reason;  // whole characters only

  // Without a cause (an older server): the run is still named.
  auto c = must(l->launch(Fixture::spec("c")));
  f.ecs.set_task(c->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING"})"));
  c->cancel(10s, "");
  EXPECT_EQ(f.ecs.calls("StopTask").at(2).body["reason"], "Culvert: flow run c cancelled");
}

// A run that reported its end usually ends its task itself: the container exits and ECS
// stops the task. A task the agent still saw running then (stop_lingering) is described
// first: one ECS is stopping already (desiredStatus STOPPED) is not stopped again, so no
// StopTask is spent per run and the task keeps ECS's stop code (not UserInitiated). A
// RUNNING task gets the grace to end by itself before StopTask.
TEST(EcsLauncher, ATaskEcsIsStoppingAlreadyIsNotStoppedAgain) {
  Fixture f;
  auto l = f.launcher();
  auto a = must(l->launch(Fixture::spec("a")));
  f.ecs.set_task(a->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING","desiredStatus":"RUNNING"})"));
  EXPECT_FALSE(l->poll_all({a.get()})[0]);
  // The run reported Success; its container exited; ECS is deprovisioning the task.
  f.ecs.set_task(a->infrastructure().id,
                 json::parse(R"({"lastStatus":"DEPROVISIONING","desiredStatus":"STOPPED","stopCode":"EssentialContainerExited"})"));
  a->stop_lingering(10s);
  EXPECT_TRUE(f.ecs.calls("StopTask").empty());

  // Still RUNNING: described every second of the grace (the simulated clock), then stopped.
  auto b = must(l->launch(Fixture::spec("b")));
  f.ecs.set_task(b->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING","desiredStatus":"RUNNING"})"));
  const size_t described = f.ecs.calls("DescribeTasks").size();
  const SteadyTime before = f.clock.steady_now();
  b->stop_lingering(10s);
  EXPECT_LE(f.clock.steady_now() - before, 10s);
  EXPECT_GE(f.clock.steady_now() - before, 9s);
  EXPECT_LE(f.ecs.calls("DescribeTasks").size() - described, 11u);
  ASSERT_EQ(f.ecs.calls("StopTask").size(), 1u);
  EXPECT_EQ(f.ecs.calls("StopTask")[0].body["task"], b->infrastructure().id);

  // Not RUNNING: stopped at once.
  auto c = must(l->launch(Fixture::spec("c")));
  const SteadyTime at = f.clock.steady_now();
  c->stop_lingering(10s);
  EXPECT_EQ(f.clock.steady_now(), at);
  EXPECT_EQ(f.ecs.calls("StopTask").size(), 2u);
}

// A ManualClock whose sleeps first run a hook: what another thread (the agent's monitor)
// does while a stop sleeps.
class HookClock final : public Clock {
 public:
  SysTime now() const override { return clock.now(); }
  SteadyTime steady_now() const override { return clock.steady_now(); }
  void sleep_for(std::chrono::nanoseconds d) override {
    clock.advance(d);
    if (hook) hook();
  }
  ManualClock clock;
  std::function<void()> hook;
};

// While a finished run's task lingers, it is watched in the monitor's batched
// DescribeTasks (with the other tasks), not by calls of its own: 500 runs ending at once
// cost a few batched calls per poll, not 500.
TEST(EcsLauncher, ALingeringTaskIsWatchedInTheBatchedPollNotByCallsOfItsOwn) {
  Fixture f;
  HookClock hc;
  f.clock_override = &hc;
  auto l = f.launcher();
  auto a = must(l->launch(Fixture::spec("a")));
  auto b = must(l->launch(Fixture::spec("b")));
  auto c = must(l->launch(Fixture::spec("c")));
  for (Launch* x : {a.get(), b.get(), c.get()})
    f.ecs.set_task(x->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING","desiredStatus":"RUNNING"})"));
  EXPECT_EQ(l->poll_all({a.get(), b.get(), c.get()}).size(), 3u);
  // b's run reported its end; the monitor goes on polling a and c (not b: it is being
  // stopped) once per sleep of b's stop (a poll interval, 5 s); on the second, ECS is
  // stopping b's task.
  int polls = 0;
  const size_t before = f.ecs.calls("DescribeTasks").size();
  hc.hook = [&] {
    if (++polls == 2)
      f.ecs.set_task(b->infrastructure().id,
                     json::parse(R"({"lastStatus":"DEPROVISIONING","desiredStatus":"STOPPED","stopCode":"EssentialContainerExited"})"));
    auto exits = l->poll_all({a.get(), c.get()});
    EXPECT_FALSE(exits[0] || exits[1]);
  };
  b->stop_lingering(10s);
  EXPECT_EQ(polls, 2);
  EXPECT_TRUE(f.ecs.calls("StopTask").empty());  // ECS stopped it: no StopTask, its own stop code
  auto calls = f.ecs.calls("DescribeTasks");
  ASSERT_EQ(calls.size() - before, 2u);  // one per poll, none of b's own
  for (size_t i = before; i < calls.size(); ++i) {
    std::set<std::string> tasks;
    for (const auto& t : calls[i].body["tasks"]) tasks.insert(t.get<std::string>());
    EXPECT_EQ(tasks, (std::set<std::string>{a->infrastructure().id, b->infrastructure().id, c->infrastructure().id}));
  }
  // Once stopped, its end is b's poll as usual; the others are watched without it.
  f.ecs.set_task(b->infrastructure().id, json::parse(R"({"lastStatus":"STOPPED","desiredStatus":"STOPPED",
      "stopCode":"EssentialContainerExited","stoppedReason":"Essential container in task exited",
      "containers":[{"name":"flow","exitCode":0}]})"));
  hc.hook = nullptr;
  auto exits = l->poll_all({a.get(), b.get(), c.get()});
  EXPECT_TRUE(exits[1]);
  l->poll_all({a.get(), c.get()});
  EXPECT_EQ(f.ecs.calls("DescribeTasks").back().body["tasks"].size(), 2u);
}

TEST(EcsLauncher, AdoptsItsTaskAfterARestart) {
  Fixture f;
  Infrastructure infra;
  {
    auto first = f.launcher();
    auto a = must(first->launch(Fixture::spec("run-a")));
    infra = a->infrastructure();
  }
  f.ecs.set_task(infra.id, json::parse(R"({"lastStatus":"RUNNING"})"));
  auto l = f.launcher();
  auto adopted = l->adopt(Fixture::spec("run-a"), infra);
  ASSERT_TRUE(adopted) << adopted.status().to_string();
  EXPECT_EQ((*adopted)->infrastructure().id, infra.id);
  auto d = f.ecs.calls("DescribeTasks").back().body;
  EXPECT_EQ(d["cluster"], "flows");  // from the ARN
  EXPECT_EQ(d["include"], json::array({"TAGS"}));
  EXPECT_FALSE(l->poll_all({adopted->get()})[0]);
  (*adopted)->stop(10s);
  EXPECT_TRUE(l->poll_all({adopted->get()})[0]);

  auto other = l->adopt(Fixture::spec("run-b"), infra);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.status().code(), StatusCode::kUnprocessable);
  EXPECT_NE(other.status().message().find("tagged for run run-a"), std::string::npos);
  auto wrong_kind = l->adopt(Fixture::spec("run-a"), {"container", "abc"});
  EXPECT_EQ(wrong_kind.status().code(), StatusCode::kUnprocessable);
  f.ecs.forget_task(infra.id);
  auto gone = l->adopt(Fixture::spec("run-a"), infra);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
}

TEST(EcsLauncherType, IsInTheRegistryWithItsFlags) {
  const LauncherType* t = find_launcher_type("ecs");
  ASSERT_NE(t, nullptr);
  std::map<std::string, LauncherFlag::Kind> kinds;
  for (const auto& fl : t->flags) kinds[fl.name] = fl.kind;
  for (const char* name : {"cluster", "launch-type", "task-role-arn", "execution-role-arn", "region", "endpoint-url",
                           "log-group", "platform-version", "task-start-timeout", "task-definition-file"})
    EXPECT_EQ(kinds.count(name), 1u) << name;
  EXPECT_EQ(kinds["subnet"], LauncherFlag::Kind::kRepeated);
  EXPECT_EQ(kinds["security-group"], LauncherFlag::Kind::kRepeated);
  EXPECT_EQ(kinds["assign-public-ip"], LauncherFlag::Kind::kSwitch);

  LauncherContext ctx;
  ctx.agent_name = "a1";
  ctx.getenv = [](const std::string& k) -> std::optional<std::string> {
    if (k == "CULVERT_AWS_ENDPOINT_URL") return std::string("http://127.0.0.1:1");
    if (k == "AWS_ACCESS_KEY_ID") return std::string("AKID");
    if (k == "AWS_SECRET_ACCESS_KEY") return std::string("s");
    return std::nullopt;
  };
  ctx.flags = {{"launch-type", "FARGATE_SPOT"}, {"task-start-timeout", "90s"}};
  ctx.repeated_flags = {{"subnet", {"subnet-1", "subnet-2,subnet-3"}}};
  auto made = t->factory(ctx);
  ASSERT_TRUE(made) << made.status().to_string();
  EXPECT_EQ((*made)->type(), "ecs");
  ctx.flags = {{"launch-type", "LAMBDA"}};
  auto bad = t->factory(ctx);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("FARGATE, FARGATE_SPOT or EC2"), std::string::npos);
  ctx.flags = {{"task-start-timeout", "soon"}};
  EXPECT_FALSE(t->factory(ctx));
  ctx.flags = {{"endpoint-url", "ftp://x"}};
  EXPECT_FALSE(t->factory(ctx));
  // --task-definition-file: a JSON object, read at start.
  auto dir = std::filesystem::temp_directory_path() / ("ecs-tmpl-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "good.json") << R"({"cpu":"512","memory":"1024"})";
  std::ofstream(dir / "bad.json") << "[1, 2";
  ctx.flags = {{"task-definition-file", (dir / "good.json").string()}};
  EXPECT_TRUE(t->factory(ctx));
  ctx.flags = {{"task-definition-file", (dir / "bad.json").string()}};
  auto bad_file = t->factory(ctx);
  ASSERT_FALSE(bad_file);
  EXPECT_NE(bad_file.status().message().find("is not a JSON object"), std::string::npos);
  ctx.flags = {{"task-definition-file", (dir / "absent.json").string()}};
  EXPECT_FALSE(t->factory(ctx));
  std::filesystem::remove_all(dir);
}

// With --log-group, a task that stopped before it ran leaves the tail of its CloudWatch
// stream for the run's log, before its exit is reported.
TEST(EcsLauncher, ATaskThatNeverRanLeavesItsLogTail) {
  Fixture f;
  EcsDefaults d = Fixture::defaults();
  d.log_group = "/culvert/flows";
  auto l = f.launcher(d);
  auto a = must(l->launch(Fixture::spec("a")));
  auto b = must(l->launch(Fixture::spec("b")));
  auto c = must(l->launch(Fixture::spec("c")));
  auto id = [](const Launch& x) { return x.infrastructure().id.substr(x.infrastructure().id.rfind('/') + 1); };
  std::vector<std::string> lines;
  for (int i = 0; i < 80; ++i) lines.push_back("line " + std::to_string(i));
  lines.push_back("culvert: cannot fetch s3://bucket/flows/etl: AccessDenied");
  f.ecs.log_streams["/culvert/flows|culvert/flow/" + id(*a)] = lines;
  const json failed = json::parse(R"({"lastStatus":"STOPPED","stopCode":"TaskFailedToStart",
      "stoppedReason":"ResourceInitializationError: failed to validate logger args"})");
  f.ecs.set_task(a->infrastructure().id, failed);
  f.ecs.set_task(b->infrastructure().id, failed);  // no stream: the container never wrote
  f.ecs.set_task(c->infrastructure().id, json::parse(R"({"lastStatus":"RUNNING"})"));
  auto exits = l->poll_all({a.get(), b.get(), c.get()});
  EXPECT_FALSE(exits[0] || exits[1] || exits[2]);  // held until the tail is drained
  auto out = a->drain_output();
  ASSERT_EQ(out.size(), 51u);
  EXPECT_NE(out[0].find("the last 50 line(s) of its CloudWatch Logs stream culvert/flow/" + id(*a) + " in /culvert/flows"),
            std::string::npos)
      << out[0];
  EXPECT_EQ(out.back(), "culvert: cannot fetch s3://bucket/flows/etl: AccessDenied");
  auto b_out = b->drain_output();
  ASSERT_EQ(b_out.size(), 1u);
  EXPECT_NE(b_out[0].find("the container wrote nothing"), std::string::npos) << b_out[0];
  exits = l->poll_all({a.get(), b.get(), c.get()});
  ASSERT_TRUE(exits[0] && exits[1]);
  EXPECT_NE(exits[0]->reason.find("ResourceInitializationError"), std::string::npos);
  EXPECT_TRUE(a->drain_output().empty());
  auto gets = f.ecs.calls("GetLogEvents");
  ASSERT_EQ(gets.size(), 2u);
  EXPECT_EQ(gets[0].body["limit"], 50);
  EXPECT_EQ(gets[0].body["startFromHead"], false);

  // A task that ran: no log tail (the run logs for itself); without --log-group: none.
  f.ecs.set_task(c->infrastructure().id, json::parse(R"({"lastStatus":"STOPPED","stopCode":"EssentialContainerExited",
      "containers":[{"name":"flow","exitCode":1}]})"));
  EXPECT_TRUE(l->poll_all({c.get()})[0]);
  auto plain = f.launcher();
  auto p = must(plain->launch(Fixture::spec("p")));
  f.ecs.set_task(p->infrastructure().id, failed);
  EXPECT_TRUE(plain->poll_all({p.get()})[0]);
  EXPECT_EQ(f.ecs.calls("GetLogEvents").size(), 2u);
}

// The agent's side of the server, in memory (only what these tests need).
class FakeAgentApi final : public AgentApi {
 public:
  Result<std::string> register_agent(const std::string&, const std::string& type, const std::vector<std::string>&,
                                     int) override {
    registered_type = type;
    return std::string("agent-ecs");
  }
  Status deregister_agent(const std::string&) override { return Status::ok(); }
  Status heartbeat(const std::string&) override { return Status::ok(); }
  Result<std::vector<ClaimedRun>> claim(const std::string&, const std::vector<std::string>& types, int max,
                                        Millis) override {
    claim_types = types;
    std::vector<ClaimedRun> out;
    while (!queue.empty() && static_cast<int>(out.size()) < max) {
      states[queue.front().id] = State::kSubmitted;
      out.push_back(queue.front());
      queue.pop_front();
    }
    return out;
  }
  Result<RunState> get_run_state(const std::string& id) override {
    auto it = states.find(id);
    if (it == states.end()) return not_found("no run " + id);
    auto m = messages.find(id);
    return RunState{it->second, m == messages.end() ? "" : m->second};
  }
  Status set_run_state(const std::string& id, State state, const std::string& message) override {
    states[id] = state;
    messages[id] = message;
    logs_when_set[id] = logs[id].size();
    return Status::ok();
  }
  Status send_logs(const std::string& id, const std::vector<std::string>& lines) override {
    logs[id].insert(logs[id].end(), lines.begin(), lines.end());
    return Status::ok();
  }
  Status report_infrastructure(const std::string& id, const Infrastructure& i) override {
    infra[id] = i;
    return Status::ok();
  }
  Result<std::vector<UnfinishedRun>> list_unfinished_runs(const std::string&) override { return unfinished; }

  std::string registered_type;
  std::vector<std::string> claim_types;
  std::deque<ClaimedRun> queue;
  std::map<std::string, State> states;
  std::map<std::string, std::string> messages;
  std::map<std::string, Infrastructure> infra;
  std::vector<UnfinishedRun> unfinished;
  std::map<std::string, std::vector<std::string>> logs;
  std::map<std::string, size_t> logs_when_set;  // log lines the run had when its state was last set
};

ClaimedRun claimed(const std::string& id) {
  return ClaimedRun{id, "flow-1", "etl", "run-token-" + id, R"({"type":"ecs","image":"acme/etl:1"})"};
}

// The real agent loop driving the ECS launcher: the task ARN is reported as the run's
// infrastructure, a stopped task crashes its run with ECS's reason, a cancel stops the
// task and the run ends Cancelled, a run that reported its own end is left alone.
TEST(EcsAgent, ReportsTheTaskArnCrashesAndCancelsThroughTheAgentLoop) {
  Fixture f;
  auto launcher = f.launcher();
  FakeAgentApi api;
  AgentOptions o;
  o.name = "ecs-1";
  o.api_url = "http://culvert.internal:4200";
  o.run_async = [](std::function<void()> work) { work(); };  // stops run inline
  Agent agent(o, api, api, *launcher, f.clock);
  ASSERT_TRUE(agent.register_self().is_ok());
  EXPECT_EQ(api.registered_type, "ecs");
  for (const char* id : {"crash", "cancel", "done"}) api.queue.push_back(claimed(id));
  ASSERT_EQ(*agent.claim_and_launch(Millis(0)), 3);
  EXPECT_EQ(api.claim_types, std::vector<std::string>{"ecs"});
  for (const char* id : {"crash", "cancel", "done"}) {
    EXPECT_EQ(api.infra[id].kind, "ecs-task");
    EXPECT_TRUE(api.infra[id].id.starts_with("arn:aws:ecs:eu-west-1:123456789012:task/flows/")) << api.infra[id].id;
  }
  // The run's own token in the task's environment, never in the definition.
  for (const auto& run : f.ecs.calls("RunTask"))
    EXPECT_EQ(env_value(run.body, "CULVERT_API_TOKEN"), "run-token-" + env_value(run.body, "CULVERT_FLOW_RUN_ID"));
  for (const char* id : {"crash", "cancel", "done"}) f.ecs.set_task(api.infra[id].id, json::parse(R"({"lastStatus":"RUNNING"})"));

  size_t describes = f.ecs.calls("DescribeTasks").size();
  agent.monitor_once(false);
  EXPECT_EQ(f.ecs.calls("DescribeTasks").size(), describes + 1);  // one call for the three
  EXPECT_EQ(agent.active_runs(), 3u);

  f.ecs.set_task(api.infra["crash"].id, json::parse(R"({"lastStatus":"STOPPED","stopCode":"EssentialContainerExited",
      "stoppedReason":"Essential container in task exited","containers":[{"name":"flow","exitCode":2}]})"));
  api.states["cancel"] = State::kCancelling;
  api.messages["cancel"] = "cancel requested by alice-oncall (user token)";
  api.states["done"] = State::kSuccess;  // it reported its end; its task lingers
  agent.monitor_once(true);
  EXPECT_EQ(api.states["crash"], State::kCrashed);
  EXPECT_NE(api.messages["crash"].find("Essential container in task exited; container flow exited with code 2"),
            std::string::npos)
      << api.messages["crash"];
  auto stops = f.ecs.calls("StopTask");
  std::set<std::string> stopped;
  for (const auto& st : stops) {
    stopped.insert(st.body["task"]);
    // The cancelled run's StopTask names who cancelled it.
    if (st.body["task"] == api.infra["cancel"].id)
      EXPECT_EQ(st.body["reason"], "Culvert: flow run cancel cancelled (cancel requested by alice-oncall (user token))");
  }
  EXPECT_EQ(stopped, (std::set<std::string>{api.infra["cancel"].id, api.infra["done"].id}));
  agent.monitor_once(true);  // the stopped tasks are STOPPED now
  EXPECT_EQ(api.states["cancel"], State::kCancelled);
  EXPECT_EQ(api.states["done"], State::kSuccess);
  EXPECT_EQ(agent.active_runs(), 0u);
}

// The log tail of a task that never ran is in the run's log before the run is Crashed.
TEST(EcsAgent, TheLogTailReachesTheRunBeforeItsCrash) {
  Fixture f;
  EcsDefaults d = Fixture::defaults();
  d.log_group = "/culvert/flows";
  auto launcher = f.launcher(d);
  FakeAgentApi api;
  AgentOptions o;
  o.name = "ecs-1";
  Agent agent(o, api, api, *launcher, f.clock);
  ASSERT_TRUE(agent.register_self().is_ok());
  api.queue.push_back(claimed("r1"));
  ASSERT_EQ(*agent.claim_and_launch(Millis(0)), 1);
  std::string arn = api.infra["r1"].id;
  f.ecs.log_streams["/culvert/flows|culvert/flow/" + arn.substr(arn.rfind('/') + 1)] = {"exec /usr/local/bin/culvert: no such file"};
  f.ecs.set_task(arn, json::parse(R"({"lastStatus":"STOPPED","stopCode":"EssentialContainerExited",
      "stoppedReason":"Essential container in task exited","containers":[{"name":"flow","exitCode":127}]})"));
  agent.monitor_once(false);
  agent.monitor_once(false);
  EXPECT_EQ(api.states["r1"], State::kCrashed);
  ASSERT_EQ(api.logs["r1"].size(), 2u);
  EXPECT_EQ(api.logs["r1"][1], "exec /usr/local/bin/culvert: no such file");
  EXPECT_EQ(api.logs_when_set["r1"], 2u);  // the lines came first
  EXPECT_NE(api.messages["r1"].find("exited with code 127"), std::string::npos) << api.messages["r1"];
}

// A restarted agent adopts the runs the server still has on it by their task ARNs.
TEST(EcsAgent, ARestartedAgentAdoptsItsTasks) {
  Fixture f;
  Infrastructure running, gone;
  {
    auto first = f.launcher();
    running = must(first->launch(Fixture::spec("r-running")))->infrastructure();
    gone = must(first->launch(Fixture::spec("r-gone")))->infrastructure();
  }
  f.ecs.set_task(running.id, json::parse(R"({"lastStatus":"RUNNING"})"));
  f.ecs.forget_task(gone.id);
  auto launcher = f.launcher();
  FakeAgentApi api;
  api.states = {{"r-running", State::kRunning}, {"r-gone", State::kSubmitted}};
  api.unfinished = {UnfinishedRun{claimed("r-running"), State::kRunning, running},
                    UnfinishedRun{claimed("r-gone"), State::kSubmitted, gone}};
  AgentOptions o;
  o.name = "ecs-1";
  o.run_async = [](std::function<void()> work) { work(); };
  Agent agent(o, api, api, *launcher, f.clock);
  ASSERT_TRUE(agent.register_self().is_ok());
  auto adopted = agent.adopt_unfinished();
  ASSERT_TRUE(adopted) << adopted.status().to_string();
  EXPECT_EQ(*adopted, 1);
  EXPECT_EQ(api.states["r-gone"], State::kCrashed);
  EXPECT_NE(api.messages["r-gone"].find("is gone from cluster flows"), std::string::npos) << api.messages["r-gone"];
  api.states["r-running"] = State::kCancelling;
  agent.monitor_once(true);
  agent.monitor_once(true);
  EXPECT_EQ(api.states["r-running"], State::kCancelled);
  EXPECT_EQ(f.ecs.calls("RunTask").size(), 2u);  // nothing launched again
}

// A task started by an earlier process that ended before it reported the task is found
// by its tags among the tasks this agent started, adopted and reported.
TEST(EcsAgent, ATaskThatWasNeverReportedIsFoundByItsTags) {
  Fixture f;
  std::string arn;
  {
    auto first = f.launcher();
    arn = must(first->launch(Fixture::spec("r-unreported")))->infrastructure().id;
    (void)must(first->launch(Fixture::spec("r-other")));
  }
  auto launcher = f.launcher();
  FakeAgentApi api;
  api.states = {{"r-unreported", State::kSubmitted}, {"r-lost", State::kSubmitted}};
  api.unfinished = {UnfinishedRun{claimed("r-unreported"), State::kSubmitted, std::nullopt},
                    UnfinishedRun{claimed("r-lost"), State::kSubmitted, std::nullopt}};
  AgentOptions o;
  o.name = "ecs-1";
  Agent agent(o, api, api, *launcher, f.clock);
  ASSERT_TRUE(agent.register_self().is_ok());
  auto adopted = agent.adopt_unfinished();
  ASSERT_TRUE(adopted) << adopted.status().to_string();
  EXPECT_EQ(*adopted, 1);
  EXPECT_EQ(api.infra["r-unreported"].id, arn);  // reported now
  EXPECT_EQ(api.states["r-unreported"], State::kSubmitted);
  EXPECT_EQ(api.states["r-lost"], State::kCrashed);  // nothing of it anywhere
  auto lists = f.ecs.calls("ListTasks");
  ASSERT_FALSE(lists.empty());
  EXPECT_EQ(lists[0].body["startedBy"], "culvert-ecs-1");
  EXPECT_EQ(lists[0].body["cluster"], "flows");
  EXPECT_EQ(f.ecs.calls("RunTask").size(), 2u);
}

// The interpreter with the newest botocore among `python3` on PATH and Debian's.
std::string newest_botocore_python() {
  std::string best;
  std::vector<int> best_version;
  for (const char* py : {"python3", "/usr/bin/python3"}) {
    std::string cmd = std::string(py) + " -c 'import botocore; print(botocore.__version__)' 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) continue;
    char buf[64] = {0};
    std::string out = std::fgets(buf, sizeof(buf), p) ? buf : "";
    if (::pclose(p) != 0 || out.empty()) continue;
    std::vector<int> v;
    size_t i = 0;
    while (i < out.size() && std::isdigit(static_cast<unsigned char>(out[i]))) {
      v.push_back(std::atoi(out.c_str() + i));
      while (i < out.size() && std::isdigit(static_cast<unsigned char>(out[i]))) ++i;
      if (i < out.size() && out[i] == '.') ++i;
    }
    if (best.empty() || v > best_version) {
      best = py;
      best_version = v;
    }
  }
  return best;
}

// Runs last (tests run in the order written): every request above, checked by botocore's
// own parameter validator against its ECS model.
TEST(EcsLauncherZ, BotocoreAcceptsEveryRequest) {
  std::vector<SentRequest> all;
  {
    std::lock_guard lock(g_all_mu);
    all = g_all_requests;
  }
  ASSERT_GT(all.size(), 20u) << "run the whole test binary";
  std::set<std::string> actions;
  auto path = std::filesystem::temp_directory_path() / ("ecs-requests-" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream out(path);
    std::set<std::string> seen;
    for (const auto& [service, action, body] : all) {
      actions.insert(action);
      std::string line = json{{"service", service}, {"action", action}, {"params", body}}.dump();
      if (seen.insert(line).second) out << line << "\n";  // the 1,000-run test repeats itself
    }
  }
  EXPECT_EQ(actions, (std::set<std::string>{"DescribeTaskDefinition", "DescribeTasks", "RegisterTaskDefinition",
                                            "RunTask", "StopTask", "GetLogEvents", "ListTasks"}));
  // EC2 (query protocol): our form bodies against botocore's serialization of the
  // parameters they stand for.
  {
    std::ofstream out(path, std::ios::app);
    out << json{{"service", "ec2"}, {"action", "DescribeVpcs"},
                {"params", {{"Filters", {{{"Name", "is-default"}, {"Values", {"true"}}}}}}},
                {"form", "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=is-default&Filter.1.Value.1=true"}}
               .dump()
        << "\n";
    out << json{{"service", "ec2"}, {"action", "DescribeSubnets"},
                {"params", {{"Filters", {{{"Name", "vpc-id"}, {"Values", {"vpc-0d"}}}}}}},
                {"form", "Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0d"}}
               .dump()
        << "\n";
  }
  std::string py = newest_botocore_python();
  ASSERT_FALSE(py.empty()) << "no Python with botocore: install python3-botocore (scripts/install-deps.sh)";
  std::string cmd = py + " " + CULVERT_SOURCE_DIR + "/tests/support/botocore_validate.py ecs " + path.string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string report;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p)) report += buf;
  int rc = ::pclose(p);
  std::filesystem::remove(path);
  EXPECT_EQ(rc, 0) << report;
  EXPECT_NE(report.find("0 invalid"), std::string::npos) << report;
}

}  // namespace
}  // namespace culvert::agent::ecs
