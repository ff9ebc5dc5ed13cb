// The client-side commands, run in-process against an in-test HTTP server that answers
// like the Culvert API (docs/SERVER.md): exit codes, --output json documents, request bodies,
// profile handling, --watch and `run inspect` diagnostics.
#include "cli/client_cmds.hpp"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include <culvert/clock.hpp>

#include "client/profile.hpp"
#include "test_http_server.hpp"

namespace culvert::cli {
namespace {

namespace fs = std::filesystem;
using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;
using json = nlohmann::json;

struct Outcome {
  int code = 0;
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "culvert-cli-XXXXXX").string();
    home_ = ::mkdtemp(tmpl.data());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(home_, ec);
  }

  // Runs `culvert ARGS...` as main() would, with HOME = a temporary directory.
  Outcome run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    env.emplace("HOME", home_.string());
    std::ostringstream out, err;
    CliContext ctx;
    ctx.env = [env](const std::string& k) -> std::optional<std::string> {
      auto it = env.find(k);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    ctx.out = &out;
    ctx.err = &err;
    ctx.clock = &clock_;
    CLI::App app{"culvert"};
    app.require_subcommand(1);
    add_client_commands(app, ctx);
    args.insert(args.begin(), "culvert");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    Outcome o;
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
      o.code = ctx.exit_code;
    } catch (const CLI::ParseError& e) {
      o.code = e.get_exit_code() == 0 ? 0 : 2;
      err << e.what();
    }
    o.out = out.str();
    o.err = err.str();
    return o;
  }

  std::map<std::string, std::string> at(const TestHttpServer& s) {
    return {{"CULVERT_API_URL", s.url()}, {"CULVERT_API_TOKEN", "cvt_test"}};
  }

  fs::path home_;
  ManualClock clock_{SysTime(std::chrono::seconds(1798761600))};  // 2027-01-01T00:00:00Z
};

json parse_one(const std::string& out) {
  // Exactly one JSON document on stdout.
  auto j = json::parse(out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << out;
  return j;
}

const char* kFlowId = "11111111-2222-3333-4444-555555555555";
const char* kRunId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

TEST_F(CliTest, ProjectCreateAndList) {
  std::atomic<int> creates{0};
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.headers.count("authorization") == 0 || r.headers.at("authorization") != "Bearer cvt_test")
      return {401, R"({"error":{"code":"unauthenticated","message":"missing or bad token"}})"};
    if (r.method == "POST" && r.target == "/api/v1/projects") {
      if (creates++ > 0)
        return {409, R"({"error":{"code":"conflict","message":"project 'etl' already exists"}})"};
      auto b = json::parse(r.body);
      return {201, json{{"id", "p-1"}, {"name", b["name"]}, {"description", b["description"]}}.dump()};
    }
    if (r.target == "/api/v1/projects")
      return {200, R"({"projects":[{"id":"p-1","name":"etl","description":"nightly"}]})"};
    return {404, R"({"error":{"code":"not_found","message":"no route"}})"};
  });
  auto o = run({"project", "create", "etl", "--description", "nightly", "--output", "json"}, at(server));
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(parse_one(o.out)["id"], "p-1");
  o = run({"project", "create", "etl"}, at(server));
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("project 'etl' already exists"), std::string::npos) << o.err;
  o = run({"project", "create", "etl", "--skip-if-exists", "-o", "json"}, at(server));
  EXPECT_EQ(o.code, 0) << o.err;
  auto j = parse_one(o.out);
  EXPECT_EQ(j["created"], false);
  EXPECT_EQ(j["description"], "nightly");
  o = run({"project", "list"}, at(server));
  EXPECT_EQ(o.code, 0);
  EXPECT_NE(o.out.find("NAME"), std::string::npos);
  EXPECT_NE(o.out.find("etl   nightly"), std::string::npos) << o.out;
  // Without a token the server's message reaches the user.
  o = run({"project", "list"}, {{"CULVERT_API_URL", server.url()}});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("missing or bad token"), std::string::npos);
}

TEST_F(CliTest, RunSendsParametersLabelsAndKey) {
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.method == "POST" && r.target == "/api/v1/flow-runs")
      return {201, json{{"id", kRunId}, {"state", "Scheduled"}, {"request", json::parse(r.body)}}.dump()};
    return {404, "{}"};
  });
  auto o = run({"run", "etl", "--project", "p", "--param", "rows=5", "--param", "day=mon", "--param",
                "cfg={\"a\":[1]}", "--label", "gpu", "--label", "s3", "--idempotency-key", "k1", "-o", "json"},
               at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  auto body = parse_one(o.out)["request"];
  EXPECT_EQ(body, (json{{"project", "p"}, {"flow", "etl"},
                        {"parameters", {{"rows", 5}, {"day", "mon"}, {"cfg", {{"a", {1}}}}}},
                        {"labels", {"gpu", "s3"}}, {"idempotency_key", "k1"}}));
  o = run({"run", kFlowId}, at(server));
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find(std::string("flow run ") + kRunId + " created (Scheduled)"), std::string::npos);
  EXPECT_EQ(json::parse(server.requests().back().body)["flow_id"], kFlowId);
}

TEST_F(CliTest, BadUsageExitsTwoAndNamesTheProblem) {
  TestHttpServer server([&](const TestRequest&) -> TestResponse { return {200, "{}"}; });
  struct Case { std::vector<std::string> args; std::string want; };
  const Case cases[] = {
      {{"run", "etl", "--project", "p", "--param", "rows"}, "--param 'rows' must be NAME=VALUE"},
      {{"run", "etl"}, "--project is required with a flow name"},
      {{"run"}, "give FLOW"},
      {{"flow", "backfill", "etl", "--from", "yesterday", "--to", "2026-01-01T00:00:00Z"}, "--from 'yesterday'"},
      {{"flow", "backfill", "etl", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "--from must be before --to"},
      {{"flow", "set-schedule", "etl"}, "give --active or --paused"},
      {{"flow", "set-schedule", "etl", "--active", "--paused"}, "--paused"},
      {{"get", "runs", "--state", "Sleeping"}, "--state 'Sleeping' is not a state"},
      {{"get", "runs", "--limit", "abc"}, "--limit"},
      {{"get", "runs", "--frobnicate"}, "--frobnicate"},
      {{"auth", "create-token", "--name", "x", "--scope", "god"}, "--scope"},
      {{"auth", "create-token", "--name", "x", "--scope", "user", "--expires", "soon"}, "--expires 'soon'"},
      {{"project", "list", "--output", "yaml"}, "--output"},
      {{"config", "set", "api-url", "localhost:4200"}, "must start with http:// or https://"},
  };
  for (const auto& c : cases) {
    auto o = run(c.args, at(server));
    std::string cmd;
    for (const auto& a : c.args) cmd += a + " ";
    EXPECT_EQ(o.code, 2) << cmd << "\n" << o.err;
    EXPECT_NE(o.err.find(c.want), std::string::npos) << cmd << "\n" << o.err;
  }
  EXPECT_TRUE(server.requests().empty());  // nothing reached the server
}

TEST_F(CliTest, WatchFollowsStatesAndLogsUntilFinal) {
  for (std::string final_state : {"Success", "Failed"}) {
    std::mutex mu;
    int gets = 0;
    int log_calls = 0;
    TestHttpServer server([&](const TestRequest& r) -> TestResponse {
      std::lock_guard<std::mutex> lock(mu);
      if (r.method == "POST" && r.target == "/api/v1/flow-runs")
        return {201, json{{"id", kRunId}, {"state", "Scheduled"}}.dump()};
      if (r.target == std::string("/api/v1/flow-runs/") + kRunId) {
        static const char* seq[] = {"Pending", "Running", "Running"};
        std::string s = gets < 3 ? seq[gets] : final_state;
        ++gets;
        return {200, json{{"id", kRunId}, {"state", s}}.dump()};
      }
      if (r.target.rfind(std::string("/api/v1/flow-runs/") + kRunId + "/logs?after=", 0) == 0) {
        ++log_calls;
        if (r.target.find("after=0") != std::string::npos)
          return {200, R"({"logs":[{"id":1,"level":"INFO","task":"extract","message":"loading","timestamp":"t1"},
                                   {"id":2,"level":"ERROR","message":"boom","timestamp":"t2"}],"next_cursor":"2"})"};
        return {200, R"({"logs":[],"next_cursor":"2"})"};
      }
      return {404, "{}"};
    });
    auto o = run({"run", "etl", "--project", "p", "--watch"}, at(server));
    EXPECT_EQ(o.code, final_state == "Success" ? 0 : 1) << o.out << o.err;
    EXPECT_NE(o.out.find("state: Pending\n"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("state: Running\n"), std::string::npos);
    EXPECT_NE(o.out.find("state: " + final_state + "\n"), std::string::npos);
    EXPECT_NE(o.out.find("t1 INFO [extract] loading\n"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("t2 ERROR boom\n"), std::string::npos);
    EXPECT_EQ(o.out.find("state: Running\nstate: Running"), std::string::npos);  // changes only
    EXPECT_NE(o.out.find("finished: " + final_state), std::string::npos);
    // With --output json: progress on stderr, one document on stdout.
    {
      std::lock_guard<std::mutex> lock(mu);
      gets = 0;
    }
    o = run({"run", "etl", "--project", "p", "--watch", "-o", "json"}, at(server));
    EXPECT_EQ(o.code, final_state == "Success" ? 0 : 1);
    EXPECT_EQ(parse_one(o.out)["state"], final_state);
    EXPECT_NE(o.err.find("state: Pending"), std::string::npos);
  }
}

TEST_F(CliTest, WatchPrintsStatesPassedBetweenPolls) {
  // The run goes Submitted -> Running -> Success between two polls: the history names Running.
  std::mutex mu;
  int gets = 0;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    std::lock_guard<std::mutex> lock(mu);
    const std::string base = std::string("/api/v1/flow-runs/") + kRunId;
    if (r.method == "POST" && r.target == "/api/v1/flow-runs")
      return {201, json{{"id", kRunId}, {"state", "Scheduled"}, {"version", 1}}.dump()};
    json history = json::array({json{{"state", "Scheduled"}, {"version", 1}, {"message", ""}},
                                json{{"state", "Submitted"}, {"version", 2}, {"message", "claimed"}}});
    if (gets > 1) {
      history.push_back({{"state", "Running"}, {"version", 3}, {"message", "started"}});
      history.push_back({{"state", "Success"}, {"version", 4}, {"message", "done"}});
    }
    if (r.target == base) {
      ++gets;
      return {200, (gets == 1 ? json{{"id", kRunId}, {"state", "Submitted"}, {"version", 2}}
                              : json{{"id", kRunId}, {"state", "Success"}, {"version", 4}}).dump()};
    }
    if (r.target.rfind(base + "/history?", 0) == 0) return {200, json{{"history", history}}.dump()};
    if (r.target.rfind(base + "/logs?after=", 0) == 0) return {200, R"({"logs":[],"next_cursor":"0"})"};
    return {404, "{}"};
  });
  auto o = run({"run", "etl", "--project", "p", "--watch"}, at(server));
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("state: Scheduled\nstate: Submitted (claimed)\nstate: Running (started)\nstate: Success (done)\n"),
            std::string::npos) << o.out;
}

TEST_F(CliTest, InspectExplainsWhyARunWaits) {
  json agents = json::array();
  std::mutex mu;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    std::lock_guard<std::mutex> lock(mu);
    if (r.target == std::string("/api/v1/flow-runs/") + kRunId)
      return {200, json{{"id", kRunId}, {"flow_name", "etl"}, {"state", "Pending"},
                        {"labels", {"gpu", "s3"}}, {"scheduled_start_time", "2026-12-31T23:00:00.000Z"}}.dump()};
    if (r.target.rfind(std::string("/api/v1/flow-runs/") + kRunId + "/task-runs?", 0) == 0) return {200, R"({"task_runs":[]})"};
    if (r.target == "/api/v1/agents") return {200, json{{"agents", agents}}.dump()};
    return {404, "{}"};
  });
  auto set_agents = [&](json a) {
    std::lock_guard<std::mutex> lock(mu);
    agents = std::move(a);
  };

  auto o = run({"run", "inspect", kRunId}, at(server));
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("no agent is registered"), std::string::npos) << o.out;

  set_agents({{{"id", "a1"}, {"name", "old"}, {"labels", {"gpu", "s3"}}, {"health", "unhealthy"}}});
  o = run({"run", "inspect", kRunId}, at(server));
  EXPECT_NE(o.out.find("no healthy agent"), std::string::npos) << o.out;

  set_agents({{{"id", "a1"}, {"name", "old"}, {"labels", {"gpu", "s3"}}, {"health", "unhealthy"}},
              {{"id", "a2"}, {"name", "cpu-box"}, {"labels", {"cpu"}}, {"health", "healthy"}},
              {{"id", "a3"}, {"name", "gpu-box"}, {"labels", {"gpu"}}, {"health", "healthy"}}});
  o = run({"run", "inspect", kRunId}, at(server));
  EXPECT_NE(o.out.find("no healthy agent has all of the run's labels"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("agent 'cpu-box' lacks labels gpu, s3"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("agent 'gpu-box' lacks label s3"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("'old'"), std::string::npos);  // unhealthy agents are not candidates

  o = run({"run", "inspect", kRunId, "-o", "json"}, at(server));
  auto j = parse_one(o.out);
  EXPECT_EQ(j["state"], "Pending");
  EXPECT_EQ(j["diagnosis"]["agents"][2]["missing_labels"], (json{"s3"}));
  EXPECT_EQ(j["diagnosis"]["agents"][2]["can_take"], false);
  EXPECT_TRUE(j["task_runs"].is_array());

  set_agents({{{"id", "a4"}, {"name", "big"}, {"labels", {"gpu", "s3", "x"}}, {"health", "healthy"}}});
  o = run({"run", "inspect", kRunId}, at(server));
  EXPECT_NE(o.out.find("agent 'big' can take it"), std::string::npos) << o.out;
}

// A run whose run-config type no healthy agent launches is explained like a missing label.
TEST_F(CliTest, InspectNamesAnAgentThatLaunchesAnotherRunConfigType) {
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.target == std::string("/api/v1/flow-runs/") + kRunId)
      return {200, json{{"id", kRunId}, {"flow_name", "etl"}, {"state", "Scheduled"}, {"labels", json::array()},
                        {"scheduled_start_time", "2026-01-01T00:00:00.000Z"},
                        {"run_config", {{"type", "docker"}, {"image", "etl:1"}}}}.dump()};
    if (r.target.rfind(std::string("/api/v1/flow-runs/") + kRunId + "/task-runs?", 0) == 0) return {200, R"({"task_runs":[]})"};
    if (r.target == "/api/v1/agents")
      return {200, json{{"agents",
                         {{{"id", "a1"}, {"name", "a1"}, {"type", "local"}, {"labels", json::array()},
                           {"health", "healthy"}, {"status", "live"}, {"run_config_types", {"local"}}},
                          {{"id", "a2"}, {"name", "old"}, {"type", "local"}, {"labels", json::array()},
                           {"health", "healthy"}}}}}.dump()};
    return {404, "{}"};
  });
  auto o = run({"run", "inspect", kRunId}, at(server));
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("no healthy agent with the run's labels launches its run-config type, docker"),
            std::string::npos) << o.out;
  EXPECT_NE(o.out.find("  - agent a1 launches local; run needs docker\n"), std::string::npos) << o.out;
  // An agent that lists no run-config types launches its own type.
  EXPECT_NE(o.out.find("  - agent old launches local; run needs docker\n"), std::string::npos) << o.out;
  o = run({"run", "inspect", kRunId, "-o", "json"}, at(server));
  auto j = parse_one(o.out);
  EXPECT_EQ(j["diagnosis"]["agents"][0]["type_mismatch"], "agent a1 launches local; run needs docker");
  EXPECT_EQ(j["diagnosis"]["agents"][0]["can_take"], false);
  EXPECT_EQ(j["run_config"]["type"], "docker");
}

TEST_F(CliTest, ProfileCommandsAndPrecedence) {
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.headers.count("authorization") && r.headers.at("authorization") == "Bearer cvt_login")
      return {200, R"({"agents":[{"id":"a1","name":"box","type":"local","labels":["dev"],"health":"healthy"}]})"};
    return {401, R"({"error":{"code":"unauthenticated","message":"bad token"}})"};
  });
  auto o = run({"config", "set", "api-url", server.url()});
  ASSERT_EQ(o.code, 0) << o.err;
  o = run({"auth", "login", "--token", "cvt_login"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto cfg = client::load_profile_config(home_ / ".culvert" / "config.toml");
  ASSERT_TRUE(cfg.is_ok());
  EXPECT_EQ(cfg->profiles["default"].api_token, "cvt_login");
  EXPECT_EQ(cfg->profiles["default"].api_url, server.url());

  o = run({"get", "agents"});  // from the profile
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("box   local  dev     healthy"), std::string::npos) << o.out;
  o = run({"get", "agents"}, {{"CULVERT_API_TOKEN", "cvt_other"}});  // env beats profile
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("bad token"), std::string::npos);
  o = run({"get", "agents", "--api-token", "cvt_login"}, {{"CULVERT_API_TOKEN", "cvt_other"}});  // flag beats env
  EXPECT_EQ(o.code, 0) << o.err;
  o = run({"get", "agents", "--profile", "other"});  // an empty profile: default URL, no token
  EXPECT_EQ(o.code, 1);

  o = run({"config", "show", "-o", "json"}, {{"CULVERT_API_URL", "http://env:1"}});
  auto j = parse_one(o.out);
  EXPECT_EQ(j["api_url"], "http://env:1");
  EXPECT_EQ(j["api_url_source"], "env CULVERT_API_URL");
  EXPECT_EQ(j["api_token_set"], true);
  EXPECT_EQ(o.out.find("cvt_login"), std::string::npos);  // never prints the token
}

TEST_F(CliTest, FlowListAndNameResolutionReadEveryPage) {
  std::vector<std::string> targets;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.target.rfind("/api/v1/flows?", 0) != 0) return {404, "{}"};
    targets.push_back(r.target);
    const bool second = r.target.find("cursor=f-a") != std::string::npos;
    if (!second)
      return {200, R"({"flows":[{"id":"f-a","name":"a","version":1,"project":"p"}],"next_cursor":"f-a"})"};
    return {200, R"({"flows":[{"id":"f-b","name":"b","version":3,"project":"p"}],"next_cursor":null})"};
  });
  auto o = run({"flow", "list", "--project", "p", "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  auto j = parse_one(o.out);
  ASSERT_EQ(j["flows"].size(), 2u) << o.out;
  EXPECT_EQ(j["flows"][1]["name"], "b");
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0], "/api/v1/flows?project=p");
  EXPECT_EQ(targets[1], "/api/v1/flows?project=p&cursor=f-a");
  // A name is resolved by the server's name filter, through every page.
  targets.clear();
  o = run({"flow", "show", "b", "--project", "p", "-o", "json"}, at(server));
  EXPECT_EQ(targets.size(), 2u);
  ASSERT_FALSE(targets.empty());
  EXPECT_EQ(targets[0], "/api/v1/flows?project=p&name=b");
}

TEST_F(CliTest, FlowShowResolvesNamesAndListsNextFireTimes) {
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.target == "/api/v1/flows" || r.target.rfind("/api/v1/flows?", 0) == 0)
      return {200, json{{"flows",
                         {{{"id", "f-old"}, {"name", "etl"}, {"version", 1}, {"project", "p"}, {"archived", true}},
                          {{"id", kFlowId}, {"name", "etl"}, {"version", 2}, {"project", "p"}, {"archived", false},
                           {"schedule", {{"type", "cron"}, {"cron", "0 6 * * *"}, {"timezone", "Europe/Berlin"}}},
                           {"schedule_active", true}}}}}.dump()};
    if (r.method == "POST" && r.target == std::string("/api/v1/flows/") + kFlowId + "/schedule")
      return {200, json{{"id", kFlowId}, {"schedule_active", json::parse(r.body)["active"]}}.dump()};
    if (r.method == "POST" && r.target == "/api/v1/flow-runs") {
      auto b = json::parse(r.body);
      return {201, json{{"id", "run-" + b["scheduled_start_time"].get<std::string>()}, {"state", "Pending"},
                        {"scheduled_start_time", b["scheduled_start_time"]}, {"request", b}}.dump()};
    }
    return {404, R"({"error":{"code":"not_found","message":"no such thing"}})"};
  });
  auto o = run({"flow", "show", "etl", "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  auto j = parse_one(o.out);
  EXPECT_EQ(j["id"], kFlowId);
  // The clock says 2027-01-01T00:00Z; 06:00 in Berlin (CET) is 05:00Z.
  ASSERT_EQ(j["next_fire_times"].size(), 5u);
  EXPECT_EQ(j["next_fire_times"][0], "2027-01-01T05:00:00.000Z");
  o = run({"flow", "show", "nope"}, at(server));
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("flow 'nope' not found"), std::string::npos);
  o = run({"flow", "set-schedule", "etl", "--paused", "-o", "json"}, at(server));
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(parse_one(o.out)["schedule_active"], false);
  // 06:00 Berlin on Dec 1 and Dec 2 ([from, to) holds two fire times).
  o = run({"flow", "backfill", "etl", "--project", "p", "--from", "2026-12-01T00:00:00+01:00", "--to",
           "2026-12-03T00:00:00+01:00", "-o", "json"},
          at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  j = parse_one(o.out);
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["request"],
            (json{{"flow_id", kFlowId}, {"parameters", json::object()},
                  {"idempotency_key", std::string("sched:") + kFlowId + ":2026-12-01T05:00:00Z"},
                  {"scheduled_start_time", "2026-12-01T05:00:00.000Z"}}));
  EXPECT_EQ(j["runs"][1]["scheduled_start_time"], "2026-12-02T05:00:00.000Z");
  o = run({"flow", "backfill", "etl", "--from", "2026-12-01T00:00:00Z", "--to", "2027-02-01T00:00:00Z"}, at(server));
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("in the future"), std::string::npos) << o.err;
  o = run({"flow", "list"}, at(server));
  EXPECT_NE(o.out.find("0 6 * * * Europe/Berlin"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("f-old"), std::string::npos);  // archived versions hidden
}

TEST_F(CliTest, GetLogsAndRunsAsJson) {
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.target.find("/logs?after=0") != std::string::npos)
      return {200, R"({"logs":[{"id":1,"level":"INFO","message":"a","timestamp":"t"}],"next_cursor":"1"})"};
    if (r.target.find("/logs?after=1") != std::string::npos) return {200, R"({"logs":[],"next_cursor":"1"})"};
    if (r.target.rfind("/api/v1/flow-runs?", 0) == 0)
      return {200, json{{"runs", {{{"id", "r1"}, {"state", "Failed"}}}}, {"next_cursor", ""}, {"q", r.target}}.dump()};
    return {404, "{}"};
  });
  auto o = run({"get", "logs", kRunId, "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(parse_one(o.out)["logs"].size(), 1u);
  o = run({"get", "runs", "--state", "Failed", "--limit", "3", "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(parse_one(o.out)["q"], "/api/v1/flow-runs?state=Failed&limit=3");
}


// A retried run: `get logs` puts a line between its attempts and `--attempt N` asks the
// server for one attempt's lines; `run inspect` lists the attempts with their times.
TEST_F(CliTest, LogsAndInspectKeepTheAttemptsOfARetriedRunApart) {
  std::mutex mu;
  std::vector<std::string> log_targets;
  const std::string base = std::string("/api/v1/flow-runs/") + kRunId;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    if (r.target.rfind(base + "/logs?", 0) == 0) {
      {
        std::lock_guard<std::mutex> lock(mu);
        log_targets.push_back(r.target);
      }
      if (r.target.find("after=0") == std::string::npos) return {200, R"({"logs":[],"next_cursor":"9"})"};
      if (r.target.find("&run_attempt=2") != std::string::npos)
        return {200, R"({"logs":[{"id":3,"level":"INFO","message":"c","timestamp":"t3","run_attempt":2}],
                         "next_cursor":"3"})"};
      return {200, R"({"logs":[{"id":1,"level":"INFO","message":"a","timestamp":"t1","run_attempt":1},
                               {"id":2,"level":"ERROR","message":"b","timestamp":"t2","run_attempt":1},
                               {"id":3,"level":"INFO","message":"c","timestamp":"t3","run_attempt":2}],
                      "next_cursor":"3"})"};
    }
    if (r.target == base)
      return {200, json{{"id", kRunId}, {"flow_name", "etl"}, {"state", "Success"}, {"run_count", 2},
                        {"start_time", "2027-01-01T00:10:00.000Z"}, {"end_time", "2027-01-01T00:11:00.000Z"}}
                       .dump()};
    if (r.target == base + "/attempts")
      return {200, R"({"attempts":[
          {"attempt":1,"state":"Failed","message":"task work failed","agent_id":"a1",
           "start_time":"2027-01-01T00:00:00.000Z","end_time":"2027-01-01T00:01:00.000Z"},
          {"attempt":2,"state":"Success","message":"","agent_id":"a1",
           "start_time":"2027-01-01T00:10:00.000Z","end_time":"2027-01-01T00:11:00.000Z"}]})"};
    if (r.target.rfind(base + "/task-runs?", 0) == 0)
      return {200, R"({"task_runs":[{"task":"work","map_index":-1,"state":"Success","attempts":1,"run_attempt":2}]})"};
    return {404, "{}"};
  });
  auto o = run({"get", "logs", kRunId}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "t1 INFO a\nt2 ERROR b\n--- attempt 2 ---\nt3 INFO c\n");
  o = run({"get", "logs", kRunId, "--attempt", "2"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "--- attempt 2 ---\nt3 INFO c\n");
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_FALSE(log_targets.empty());
    EXPECT_NE(log_targets.back().find("&run_attempt=2"), std::string::npos) << log_targets.back();
  }
  o = run({"get", "logs", kRunId, "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  auto j = parse_one(o.out);
  ASSERT_EQ(j["logs"].size(), 3u);
  EXPECT_EQ(j["logs"][2]["run_attempt"], 2);
  EXPECT_EQ(run({"get", "logs", kRunId, "--attempt", "0"}, at(server)).code, 2);

  o = run({"run", "inspect", kRunId}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("attempts:"), std::string::npos) << o.out;
  for (const char* t : {"2027-01-01T00:00:00.000Z", "2027-01-01T00:01:00.000Z", "2027-01-01T00:10:00.000Z",
                        "task work failed"})
    EXPECT_NE(o.out.find(t), std::string::npos) << t << "\n" << o.out;
  EXPECT_NE(o.out.find("RUN ATTEMPT"), std::string::npos) << o.out;
  o = run({"run", "inspect", kRunId, "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  j = parse_one(o.out);
  ASSERT_EQ(j["attempts"].size(), 2u) << j.dump();
  EXPECT_EQ(j["attempts"][0]["end_time"], "2027-01-01T00:01:00.000Z");
  EXPECT_EQ(j["task_runs"][0]["run_attempt"], 2);
}

TEST_F(CliTest, MalformedServerAnswersFailCleanly) {
  // Every command against a server whose answers have the right routes and the wrong
  // shapes: exit 1 and the field named, never a crash.
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    const std::string run = std::string("/api/v1/flow-runs/") + kRunId;
    if (r.method == "POST" && r.target == "/api/v1/projects") return {201, R"(["p-1"])"};
    if (r.target == "/api/v1/projects") return {200, R"({"projects":{"id":"p"}})"};
    if (r.target.rfind("/api/v1/flows", 0) == 0) return {200, R"({"flows":[{"id":"f","name":"etl","version":"2"}]})"};
    if (r.target == run) return {200, R"({"id":"x","state":null})"};
    if (r.method == "POST" && r.target == "/api/v1/flow-runs") return {201, R"({"id":17,"state":"Scheduled"})"};
    if (r.target.rfind("/api/v1/flow-runs?", 0) == 0) return {200, R"({"runs":[{"id":"r","state":"Sleeping"}]})"};
    if (r.target == run + "/cancel") return {200, R"({"state":"Cancelled"})"};
    if (r.target.rfind(run + "/logs", 0) == 0) return {200, R"({"logs":[{"id":"1","message":"m"}]})"};
    if (r.target.rfind(run + "/task-runs?", 0) == 0)
      return {200, R"({"task_runs":[],"mapped_tasks":[{"task":"m","states":{"Done":3}}]})"};
    if (r.target == "/api/v1/agents") return {200, R"({"agents":[{"id":"a","health":"fine"}]})"};
    if (r.method == "POST" && r.target == "/api/v1/tokens") return {201, R"({"id":"t","name":"ci"})"};
    if (r.target == "/api/v1/tokens") return {200, R"({"tokens":[{"id":"t","revoked":"no"}]})"};
    return {200, "not json at all"};
  });
  struct Case { std::vector<std::string> args; std::string want; };
  const Case cases[] = {
      {{"project", "list"}, "projects must be an array, not an object"},
      {{"project", "create", "etl"}, "the answer must be an object, not an array"},
      {{"flow", "list"}, "flows[0].version must be an integer, not a string"},
      {{"flow", "show", "etl"}, "flows[0].version must be an integer"},
      {{"run", "inspect", kRunId}, "state must not be null"},
      {{"run", "etl", "--project", "p"}, "id must be a string, not an integer"},
      {{"run", "cancel", kRunId}, "id is missing"},
      {{"get", "runs"}, "runs[0].state is not a known state: 'Sleeping'"},
      {{"get", "logs", kRunId}, "logs[0].id must be an integer, not a string"},
      {{"get", "task-runs", kRunId}, "mapped_tasks[0].states names an unknown state: 'Done'"},
      {{"get", "agents"}, "agents[0].health must be healthy, unhealthy or stopped"},
      {{"auth", "list-tokens"}, "tokens[0].revoked must be a boolean, not a string"},
      {{"auth", "create-token", "--name", "ci", "--scope", "user"}, "token is missing"},
      {{"auth", "revoke-token", "t"}, "the server's answer is not JSON"},
  };
  for (const auto& c : cases) {
    for (const char* output : {"table", "json"}) {
      auto args = c.args;
      args.insert(args.end(), {"-o", output});
      auto o = run(args, at(server));
      std::string cmd;
      for (const auto& a : args) cmd += a + " ";
      EXPECT_EQ(o.code, 1) << cmd << "\n" << o.out << o.err;
      EXPECT_NE(o.err.find(c.want), std::string::npos) << cmd << "\n" << o.err;
      EXPECT_TRUE(o.out.empty()) << cmd << "\n" << o.out;
    }
  }
}

TEST_F(CliTest, WatchReadsEveryPageOfTheHistory) {
  std::vector<std::string> history_targets;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    const std::string base = std::string("/api/v1/flow-runs/") + kRunId;
    if (r.method == "POST" && r.target == "/api/v1/flow-runs") return {201, json{{"id", kRunId}, {"state", "Scheduled"}}.dump()};
    if (r.target == base) return {200, json{{"id", kRunId}, {"state", "Success"}, {"version", 4}}.dump()};
    if (r.target == base + "/history?after=0") {
      history_targets.push_back(r.target);
      return {200, R"({"history":[{"id":1,"version":1,"state":"Scheduled"},{"id":2,"version":2,"state":"Submitted"}],)"
                   R"("next_cursor":"2"})"};
    }
    if (r.target == base + "/history?after=2") {
      history_targets.push_back(r.target);
      return {200, R"({"history":[{"id":3,"version":3,"state":"Running"},{"id":4,"version":4,"state":"Success"}],)"
                   R"("next_cursor":""})"};
    }
    if (r.target.rfind(base + "/logs?after=", 0) == 0) return {200, R"({"logs":[],"next_cursor":"0"})"};
    return {404, "{}"};
  });
  auto o = run({"run", "etl", "--project", "p", "--watch"}, at(server));
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("state: Scheduled\nstate: Submitted\nstate: Running\nstate: Success\n"), std::string::npos)
      << o.out;
  EXPECT_EQ(history_targets.size(), 2u);
}

TEST_F(CliTest, WatchFailsOnAMalformedHistory) {
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    const std::string base = std::string("/api/v1/flow-runs/") + kRunId;
    if (r.method == "POST" && r.target == "/api/v1/flow-runs") return {201, json{{"id", kRunId}, {"state", "Scheduled"}}.dump()};
    if (r.target == base) return {200, json{{"id", kRunId}, {"state", "Running"}, {"version", 3}}.dump()};
    if (r.target.rfind(base + "/history?", 0) == 0) return {200, R"({"history":[{"version":1,"state":"Begun"}]})"};
    return {200, R"({"logs":[],"next_cursor":"0"})"};
  });
  auto o = run({"run", "etl", "--project", "p", "--watch"}, at(server));
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  EXPECT_NE(o.err.find("history[0].state is not a known state: 'Begun'"), std::string::npos) << o.err;
}

TEST_F(CliTest, AgentsShowStoppedAndInspectShowsInfrastructure) {
  json run_doc = {{"id", kRunId}, {"flow_name", "etl"}, {"state", "Running"}, {"agent_id", "a1"}};
  std::mutex mu;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    std::lock_guard<std::mutex> lock(mu);
    if (r.target == "/api/v1/agents")
      return {200, R"({"agents":[
        {"id":"a1","name":"live","type":"local","labels":["dev"],"last_heartbeat":"t1","health":"healthy",
         "max_concurrent":8},
        {"id":"a2","name":"quiet","type":"local","labels":[],"last_heartbeat":"t0","health":"unhealthy"},
        {"id":"a3","name":"gone","type":"docker","labels":[],"last_heartbeat":"t2","health":"healthy",
         "status":"stopped"}]})"};
    if (r.target == std::string("/api/v1/flow-runs/") + kRunId) return {200, run_doc.dump()};
    if (r.target.rfind(std::string("/api/v1/flow-runs/") + kRunId + "/task-runs?", 0) == 0) return {200, R"({"task_runs":[]})"};
    return {404, "{}"};
  });
  auto o = run({"get", "agents"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("live   local   dev     healthy"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("quiet  local           unhealthy"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("gone   docker          stopped"), std::string::npos) << o.out;
  // Max concurrent: as the agent said, "-" when it did not.
  EXPECT_NE(o.out.find("healthy    8               t1"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("unhealthy  -               t0"), std::string::npos) << o.out;

  o = run({"run", "inspect", kRunId}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out.find("infrastructure:"), std::string::npos) << o.out;  // not reported yet
  {
    std::lock_guard<std::mutex> lock(mu);
    run_doc["infrastructure"] = {{"kind", "container"}, {"id", "3f2a9c"}, {"agent_id", "a1"},
                                 {"reported_at", "2027-01-01T00:00:01.000Z"}};
  }
  o = run({"run", "inspect", kRunId}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("infrastructure: container 3f2a9c (agent a1, reported 2027-01-01T00:00:01.000Z)\n"),
            std::string::npos) << o.out;
  o = run({"run", "inspect", kRunId, "-o", "json"}, at(server));
  EXPECT_EQ(parse_one(o.out)["infrastructure"]["id"], "3f2a9c");

  // A waiting run with only a stopped agent: no healthy agent, and it says why.
  {
    std::lock_guard<std::mutex> lock(mu);
    run_doc = {{"id", kRunId}, {"state", "Pending"}, {"labels", json::array()}};
  }
  o = run({"run", "inspect", kRunId, "-o", "json"}, at(server));
  auto j = parse_one(o.out);
  EXPECT_EQ(j["diagnosis"]["agents"][2]["status"], "stopped");
  EXPECT_EQ(j["diagnosis"]["agents"][2]["can_take"], false);
  EXPECT_EQ(j["diagnosis"]["agents"][0]["can_take"], true);
}

// `get task-runs` pages the tasks (mapped ones as counts by state) and one task's task
// runs; `run inspect` follows every page of tasks.
TEST_F(CliTest, GetTaskRunsPagesTasksAndATasksTaskRuns) {
  std::vector<std::string> targets;
  std::mutex mu;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    std::lock_guard<std::mutex> lock(mu);
    const std::string base = std::string("/api/v1/flow-runs/") + kRunId;
    if (r.target == base)
      return {200, json{{"id", kRunId}, {"flow_name", "etl"}, {"state", "Running"}}.dump()};
    if (r.target.rfind(base + "/task-runs/history", 0) == 0) return {200, R"({"history":[],"next_cursor":""})"};
    if (r.target.rfind(base + "/task-runs?", 0) == 0) {
      targets.push_back(r.target.substr(base.size()));
      json tr = {{"id", "x"}, {"task", "extract"}, {"map_index", -1}, {"state", "Success"}, {"attempts", 1}};
      if (r.target.find("task=m") != std::string::npos) {
        bool second = r.target.find("cursor=2") != std::string::npos;
        json items = json::array();
        for (int i = second ? 2 : 0; i < (second ? 3 : 2); ++i)
          items.push_back({{"id", "m" + std::to_string(i)}, {"task", "m"}, {"map_index", i}, {"state", "Failed"},
                           {"attempts", 2}, {"message", "boom"}});
        return {200, json{{"task_runs", items}, {"next_cursor", second ? json(nullptr) : json("2")}}.dump()};
      }
      if (r.target.find("cursor=6578") == std::string::npos)
        return {200, json{{"task_runs", {tr}}, {"mapped_tasks", json::array()}, {"next_cursor", "6578"}}.dump()};
      json m = {{"task", "m"}, {"count", 3000}, {"max_map_index", 2999}, {"states", {{"Success", 2990}, {"Failed", 10}}}};
      return {200, json{{"task_runs", json::array()}, {"mapped_tasks", {m}}, {"next_cursor", nullptr}}.dump()};
    }
    return {404, "{}"};
  });
  auto o = run({"run", "inspect", kRunId}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("extract  -1       Success"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("m        0..2999  2990 Success, 10 Failed                         3000 task runs"), std::string::npos) << o.out;
  o = run({"run", "inspect", kRunId, "-o", "json"}, at(server));
  auto j = parse_one(o.out);
  EXPECT_EQ(j["task_runs"].size(), 1u);
  EXPECT_EQ(j["mapped_tasks"][0]["count"], 3000);

  // One page, with the cursor to go on.
  o = run({"get", "task-runs", kRunId, "--limit", "1"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("extract"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("next cursor: 6578 (more: repeat with --cursor 6578)"), std::string::npos) << o.out;
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(targets.back(), "/task-runs?limit=1");
  }
  o = run({"get", "task-runs", kRunId, "--all", "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  j = parse_one(o.out);
  EXPECT_EQ(j["task_runs"].size(), 1u);
  EXPECT_EQ(j["mapped_tasks"].size(), 1u);
  EXPECT_TRUE(j["next_cursor"].is_null());

  // A task's task runs, in a state, every page.
  o = run({"get", "task-runs", kRunId, "--task", "m", "--state", "Failed", "--all"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("m     2    Failed  2"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("next cursor"), std::string::npos) << o.out;
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(targets.back(), "/task-runs?task=m&state=Failed&limit=100&cursor=2");
  }
  EXPECT_EQ(run({"get", "task-runs", kRunId, "--state", "Failed"}, at(server)).code, 2);
  EXPECT_EQ(run({"get", "task-runs", kRunId, "--task", "m", "--state", "Sleeping"}, at(server)).code, 2);
  EXPECT_EQ(run({"get", "task-runs", kRunId, "--limit", "1001"}, at(server)).code, 2);
}

TEST_F(CliTest, GetRunsPagesWithCursorAndAll) {
  // 2,345 runs behind the server's cursors, newest first, at most 1000 per page.
  constexpr int kRuns = 2345;
  std::mutex mu;
  std::vector<std::string> targets;
  TestHttpServer server([&](const TestRequest& r) -> TestResponse {
    std::lock_guard<std::mutex> lock(mu);
    if (r.target.rfind("/api/v1/flow-runs?", 0) != 0) return {404, "{}"};
    targets.push_back(r.target);
    int limit = 50, from = 0;
    if (auto p = r.target.find("limit="); p != std::string::npos) limit = std::stoi(r.target.substr(p + 6));
    if (auto p = r.target.find("cursor=c"); p != std::string::npos) from = std::stoi(r.target.substr(p + 8));
    json runs = json::array();
    for (int i = from; i < std::min(kRuns, from + limit); ++i)
      runs.push_back({{"id", "run-" + std::to_string(i)}, {"flow_name", "etl"}, {"state", "Success"}});
    json next = from + limit < kRuns ? json("c" + std::to_string(from + limit)) : json(nullptr);
    return {200, json{{"runs", runs}, {"next_cursor", next}}.dump()};
  });
  auto o = run({"get", "runs", "--limit", "1000"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("run-999 "), std::string::npos);
  EXPECT_EQ(o.out.find("run-1000 "), std::string::npos);
  EXPECT_NE(o.out.find("next cursor: c1000 (more runs: repeat with --cursor c1000)\n"), std::string::npos) << o.out;

  o = run({"get", "runs", "--limit", "1000", "--cursor", "c2000"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("run-2344 "), std::string::npos);
  EXPECT_EQ(o.out.find("next cursor"), std::string::npos) << o.out;  // the last page
  EXPECT_EQ(targets.back(), "/api/v1/flow-runs?limit=1000&cursor=c2000");

  o = run({"get", "runs", "--cursor", "c40", "-o", "json"}, at(server));
  auto page = parse_one(o.out);
  EXPECT_EQ(page["runs"].size(), 20u);
  EXPECT_EQ(page["runs"][0]["id"], "run-40");
  EXPECT_EQ(page["next_cursor"], "c60");

  targets.clear();
  o = run({"get", "runs", "--all", "-o", "json"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  auto all = parse_one(o.out);
  ASSERT_EQ(all["runs"].size(), static_cast<size_t>(kRuns));
  for (int i = 0; i < kRuns; ++i) ASSERT_EQ(all["runs"][i]["id"], "run-" + std::to_string(i));
  EXPECT_TRUE(all["next_cursor"].is_null());
  EXPECT_EQ(targets, (std::vector<std::string>{"/api/v1/flow-runs?limit=1000",
                                               "/api/v1/flow-runs?limit=1000&cursor=c1000",
                                               "/api/v1/flow-runs?limit=1000&cursor=c2000"}));
  o = run({"get", "runs", "--all", "--limit", "500", "--cursor", "c2000"}, at(server));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("run-2000 "), std::string::npos);
  EXPECT_NE(o.out.find("run-2344 "), std::string::npos);
  EXPECT_EQ(o.out.find("run-1999 "), std::string::npos);
  EXPECT_EQ(o.out.find("next cursor"), std::string::npos);

  o = run({"get", "runs", "--cursor", "has space"}, at(server));
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("--cursor 'has space' is not a cursor"), std::string::npos) << o.err;
}

TEST_F(CliTest, GetRunsAllStopsOnACursorThatRepeats) {
  TestHttpServer server([&](const TestRequest&) -> TestResponse {
    return {200, R"({"runs":[{"id":"r","state":"Success"}],"next_cursor":"same"})"};
  });
  auto o = run({"get", "runs", "--all"}, at(server));
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("next_cursor 'same' repeats an earlier page"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace culvert::cli
