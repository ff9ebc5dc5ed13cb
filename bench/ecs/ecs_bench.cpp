// ecs_bench [--runs N]: the ECS agent's overhead, without the network.
//
// An Agent (the real claim loop code) with the real ECS launcher, against an API and an
// ECS that answer at once in-process, so what is measured is the agent's own work per
// run: decoding the run config, building and hashing the task definition, building,
// signing and sending RunTask, reading its answer, reporting the infrastructure.
//   1. claim → RunTask sent, task definition known: per run, p50 / p99 over --runs runs.
//   2. AWS calls per run in steady state: RunTask, RegisterTaskDefinition, and
//      DescribeTasks per run per poll with all those runs' tasks watched.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/agent.hpp"
#include "agent/ecs/ecs_launcher.hpp"

using namespace culvert;
using namespace culvert::agent;
using nlohmann::json;
using Clk = std::chrono::steady_clock;

namespace {

// ECS answering at once; stamps when each RunTask arrives.
class InstantEcs final : public aws::HttpTransport {
 public:
  Result<aws::HttpResponse> send(const aws::HttpRequest& r) override {
    std::lock_guard lock(mu);
    std::string target;
    for (const auto& [k, v] : r.headers)
      if (k == "X-Amz-Target") target = v;
    std::string action = target.substr(target.find('.') + 1);
    ++calls[action];
    json b = json::parse(r.body);
    if (action == "DescribeTaskDefinition")
      return aws::HttpResponse{400, {}, R"({"__type":"ClientException","message":"Unable to describe task definition."})"};
    if (action == "RegisterTaskDefinition")
      return ok({{"taskDefinition", {{"taskDefinitionArn", "arn:aws:ecs:r:1:task-definition/" + b["family"].get<std::string>() + ":1"},
                                     {"status", "ACTIVE"}}}});
    if (action == "RunTask") {
      run_task_sent = Clk::now();
      std::string arn = "arn:aws:ecs:r:1:task/c/t" + std::to_string(++tasks);
      return ok({{"tasks", {{{"taskArn", arn}, {"lastStatus", "PROVISIONING"}}}}, {"failures", json::array()}});
    }
    if (action == "DescribeTasks") {
      json out = json::array();
      for (const auto& arn : b["tasks"]) out.push_back({{"taskArn", arn}, {"lastStatus", "RUNNING"}});
      return ok({{"tasks", out}, {"failures", json::array()}});
    }
    return aws::HttpResponse{400, {}, "{}"};
  }
  static aws::HttpResponse ok(const json& j) { return {200, {}, j.dump()}; }
  std::mutex mu;
  std::map<std::string, int> calls;
  int tasks = 0;
  Clk::time_point run_task_sent;
};

class InstantApi final : public AgentApi {
 public:
  Result<std::string> register_agent(const std::string&, const std::string&, const std::vector<std::string>&,
                                     int) override {
    return std::string("a1");
  }
  Status deregister_agent(const std::string&) override { return Status::ok(); }
  Status heartbeat(const std::string&) override { return Status::ok(); }
  Result<std::vector<ClaimedRun>> claim(const std::string&, const std::vector<std::string>&, int max, Millis) override {
    claimed_at = Clk::now();
    std::vector<ClaimedRun> out;
    while (!queue.empty() && static_cast<int>(out.size()) < max) {
      out.push_back(queue.front());
      queue.pop_front();
    }
    return out;
  }
  Result<RunState> get_run_state(const std::string&) override { return RunState{State::kSubmitted, ""}; }
  Status set_run_state(const std::string&, State, const std::string&) override { return Status::ok(); }
  Status send_logs(const std::string&, const std::vector<std::string>&) override { return Status::ok(); }
  Status report_infrastructure(const std::string&, const Infrastructure&) override { return Status::ok(); }
  Result<std::vector<UnfinishedRun>> list_unfinished_runs(const std::string&) override {
    return std::vector<UnfinishedRun>{};
  }
  std::deque<ClaimedRun> queue;
  Clk::time_point claimed_at;
};

int arg(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = std::max(10, arg(argc, argv, "--runs", 1000));
  spdlog::set_level(spdlog::level::warn);
  InstantEcs ecs;
  ManualClock clock;
  ecs::EcsLauncherOptions o;
  o.defaults.cluster = "c";
  o.defaults.subnets = {"subnet-1"};
  o.defaults.security_groups = {"sg-1"};
  o.defaults.execution_role_arn = "arn:aws:iam::1:role/exec";
  o.agent_name = "bench";
  o.region = "eu-west-1";
  o.endpoint_url = "http://ecs.bench";
  o.credentials = std::make_unique<aws::StaticCredentialsProvider>(aws::Credentials{"AKID", "secret", "", {}});
  o.clock = &clock;
  o.transport = &ecs;
  ecs::EcsLauncher launcher(std::move(o));
  InstantApi api;
  AgentOptions ao;
  ao.name = "bench";
  ao.max_concurrent = runs + 10;
  ao.api_url = "http://culvert:4200";
  Agent agent(ao, api, api, launcher, clock);
  if (!agent.register_self().is_ok()) return 1;
  auto run = [](int i) {
    return ClaimedRun{"run-" + std::to_string(i), "flow-1", "etl", "token-" + std::to_string(i),
                      R"({"type":"ecs","image":"acme/etl:1","cpu":"1024","memory":"2048","env":{"STAGE":"prod"}})"};
  };
  api.queue.push_back(run(0));  // the first run registers the definition
  if (*agent.claim_and_launch(Millis(0)) != 1) return 1;

  std::vector<double> us;
  us.reserve(runs);
  for (int i = 1; i <= runs; ++i) {
    api.queue.push_back(run(i));
    auto n = agent.claim_and_launch(Millis(0));
    if (!n || *n != 1) return 1;
    us.push_back(std::chrono::duration<double, std::micro>(ecs.run_task_sent - api.claimed_at).count());
  }
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[std::min(us.size() - 1, static_cast<size_t>(p * static_cast<double>(us.size())))]; };
  fmt::print("claim -> RunTask sent, definition known ({} runs): p50 {:.1f} us, p99 {:.1f} us, max {:.1f} us\n", runs,
             pct(0.50), pct(0.99), us.back());

  const int before_describe = ecs.calls["DescribeTasks"];
  agent.monitor_once(false);  // one poll of every active task
  const int describes = ecs.calls["DescribeTasks"] - before_describe;
  const int launched = runs + 1;
  fmt::print("AWS calls: {} RunTask for {} runs, {} RegisterTaskDefinition, {} DescribeTaskDefinition; "
             "one poll of {} tasks: {} DescribeTasks ({:.3f} per run per poll)\n",
             ecs.calls["RunTask"], launched, ecs.calls["RegisterTaskDefinition"], ecs.calls["DescribeTaskDefinition"],
             launched, describes, static_cast<double>(describes) / launched);
  return 0;
}
