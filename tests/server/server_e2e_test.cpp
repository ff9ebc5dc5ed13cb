// End to end: the real `culvert server start` binary on a free port, with a temporary
// HOME, over real HTTP. Built twice: against SQLite and against PostgreSQL
// (CULVERT_E2E_BACKEND).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "core/crypto.hpp"
#include "server_process.hpp"

#ifndef CULVERT_E2E_BACKEND
#error "CULVERT_E2E_BACKEND must name the backend"
#endif

namespace culvert::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The string value of `key = "..."` (or '...') in TOML text; "" when absent.
std::string toml_value(const std::string& text, const std::string& key) {
  auto at = text.find(key + " = ");
  if (at == std::string::npos) return "";
  at += key.size() + 3;
  if (at >= text.size() || (text[at] != '"' && text[at] != '\'')) return "";
  char q = text[at];
  auto end = text.find(q, at + 1);
  return end == std::string::npos ? "" : text.substr(at + 1, end - at - 1);
}

class ServerE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = make_test_db(CULVERT_E2E_BACKEND);
    ASSERT_FALSE(db_.url.empty());
    start({"--max-body", "65536"});
  }

  void start(const std::vector<std::string>& extra) {
    server_ = ServerProcess::start(home_.path(), db_.url, extra);
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<HttpClient>(server_->url());
    if (admin_.empty()) {
      // The first start printed the admin token and saved it to the profile.
      auto cfg = read_file(home_.path() + "/.culvert/config.toml");
      admin_ = toml_value(cfg, "api_token");
      ASSERT_FALSE(admin_.empty()) << cfg;
    }
  }

  // Polls GET /metrics until it shows `line` (up to `tries` reads); whether it did.
  bool metrics_show(const std::string& line, int tries = 2000) {
    for (int i = 0; i < tries; ++i) {
      if (client_->get("/metrics").text.find(line) != std::string::npos) return true;
      std::this_thread::yield();
    }
    return false;
  }

  std::string token(const std::string& scope) {
    auto r = client_->post("/api/v1/tokens", {{"name", scope}, {"scope", scope}}, admin_);
    EXPECT_EQ(r.status, 201) << r.text;
    return r.body.value("token", "");
  }

  json flow_body(const std::string& name, std::vector<std::string> labels) {
    return {{"project", "e2e"},
            {"name", name},
            {"artifact", {{"uri", "file:///flows/" + name}, {"sha256", sha256_hex(name)}}},
            {"tasks", {{{"name", "extract"}}, {{"name", "load"}}}},
            {"edges", {{{"from", "extract"}, {"to", "load"}}}},
            {"parameters", {{{"name", "rows"}, {"type", "int"}, {"default", 10}}}},
            {"run_config", {{"type", "local"}, {"labels", labels}}}};
  }

  TempDir home_;
  TestDb db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
  std::string admin_;
};

TEST_F(ServerE2E, FirstStartCreatesAnAdminTokenAndProfile) {
  EXPECT_THAT(server_->banner(), HasSubstr("admin token"));
  EXPECT_THAT(server_->banner(), HasSubstr(admin_));
  struct stat st {};
  ASSERT_EQ(stat((home_.path() + "/.culvert/config.toml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto cfg = read_file(home_.path() + "/.culvert/config.toml");
  EXPECT_EQ(toml_value(cfg, "active_profile"), "default");
  EXPECT_THAT(cfg, HasSubstr("[profiles.default]"));
  EXPECT_EQ(toml_value(cfg, "api_url"), server_->url());
  EXPECT_EQ(client_->get("/api/v1/tokens", admin_).status, 200);
  // A restart on the same database creates no second token.
  EXPECT_EQ(server_->terminate(), 0);
  start({});
  EXPECT_THAT(server_->banner(), ::testing::Not(HasSubstr("admin token")));
  EXPECT_EQ(client_->get("/api/v1/tokens", admin_).status, 200);
  auto health = client_->get("/api/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body["status"], "ok");
}

TEST_F(ServerE2E, EveryErrorClass) {
  std::string runner = token("runner");
  std::string user = token("user");
  auto expect_error = [](const Reply& r, long status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.text;
    ASSERT_TRUE(r.body.is_object()) << r.text;
    EXPECT_EQ(r.body["error"]["code"], code) << r.text;
    EXPECT_FALSE(r.body["error"]["message"].get<std::string>().empty());
  };
  expect_error(client_->request("POST", "/api/v1/projects", "{not json", user), 400, "bad_request");
  expect_error(client_->get("/api/v1/projects"), 401, "unauthenticated");
  expect_error(client_->get("/api/v1/projects", "cvt_wrong"), 401, "unauthenticated");
  expect_error(client_->post("/api/v1/projects", {{"name", "x"}}, runner), 403, "forbidden");
  expect_error(client_->get("/api/v1/nothing-here", runner), 404, "not_found");
  expect_error(client_->get("/api/v1/flow-runs/00000000-0000-0000-0000-000000000000", runner), 404, "not_found");
  expect_error(client_->request("POST", "/api/v1/logs", std::string(70000, ' '), runner), 413, "payload_too_large");
  expect_error(client_->post("/api/v1/projects", {{"name", json::array()}}, user), 422, "unprocessable");
  ASSERT_EQ(client_->post("/api/v1/projects", {{"name", "p"}}, user).status, 201);
  expect_error(client_->post("/api/v1/projects", {{"name", "p"}}, user), 409, "conflict");
  // The server is still fine after the 413 closed that connection.
  EXPECT_EQ(client_->get("/api/health").status, 200);
}

TEST_F(ServerE2E, RegisterRunClaimExecuteSucceed) {
  std::string user = token("user");
  std::string runner = token("runner");
  auto flow = client_->post("/api/v1/flows", flow_body("etl", {"dev"}), user);
  ASSERT_EQ(flow.status, 201) << flow.text;
  auto agent = client_->post("/api/v1/agents", {{"name", "agent-1"}, {"type", "local"}, {"labels", {"dev", "x"}}},
                             runner);
  ASSERT_EQ(agent.status, 201) << agent.text;
  std::string agent_id = agent.body["id"];

  // An agent long-polls before there is work; creating the run wakes it.
  Reply claim;
  auto t0 = std::chrono::steady_clock::now();
  std::thread poller([&] {
    HttpClient c(server_->url());
    claim = c.post("/api/v1/agents/" + agent_id + "/claim", {{"max", 1}, {"wait_ms", 60000}}, runner);
  });
  // Make sure the claim is parked before the run exists (the metric counts it).
  (void)metrics_show("culvert_long_polls_parked 1");
  auto run = client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "etl"}, {"parameters", {{"rows", 5}}}},
                           user);
  ASSERT_EQ(run.status, 201) << run.text;
  poller.join();
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(claim.status, 200) << claim.text;
  ASSERT_EQ(claim.body["runs"].size(), 1u) << claim.text;
  EXPECT_LT(waited, std::chrono::seconds(30));  // woken by the run, far before its 60 s deadline
  std::string id = run.body["id"];
  EXPECT_EQ(claim.body["runs"][0]["id"], id);
  EXPECT_EQ(claim.body["runs"][0]["state"], "Submitted");
  std::string rt = claim.body["runs"][0]["token"];

  // The launched run works with its run token only.
  HttpClient runc(server_->url());
  EXPECT_EQ(runc.get("/api/v1/flows/" + flow.body["id"].get<std::string>(), rt).status, 200);
  auto running = runc.post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, rt);
  ASSERT_EQ(running.status, 200) << running.text;
  EXPECT_EQ(runc.post("/api/v1/flow-runs/" + id + "/heartbeat", nullptr, rt).body["state"], "Running");
  auto batch = runc.post("/api/v1/task-runs/states",
                         json::array({{{"flow_run_id", id}, {"task", "extract"}, {"state", "Success"}},
                                      {{"flow_run_id", id}, {"task", "load"}, {"state", "Running"}}}),
                         rt);
  ASSERT_EQ(batch.status, 200) << batch.text;

  // A follower long-polls the logs; appending wakes it.
  Reply follow;
  std::thread follower([&] {
    HttpClient c(server_->url());
    follow = c.get("/api/v1/flow-runs/" + id + "/logs?after=0&wait_ms=60000", user);
  });
  auto logs = runc.post("/api/v1/logs",
                        json::array({{{"flow_run_id", id}, {"task", "extract"}, {"level", "INFO"}, {"message", "read 5 rows"}},
                                     {{"flow_run_id", id}, {"level", "WARNING"}, {"message", "slow disk"}}}),
                        rt);
  ASSERT_EQ(logs.status, 201) << logs.text;
  follower.join();
  ASSERT_EQ(follow.status, 200) << follow.text;
  ASSERT_GE(follow.body["logs"].size(), 1u);
  EXPECT_EQ(follow.body["logs"][0]["message"], "read 5 rows");

  ASSERT_EQ(runc.post("/api/v1/task-runs/states", json::array({{{"flow_run_id", id}, {"task", "load"}, {"state", "Success"}}}),
                      rt).status,
            200);
  auto done = runc.post("/api/v1/flow-runs/" + id + "/state",
                        {{"state", "Success"}, {"expected_version", running.body["version"]}}, rt);
  ASSERT_EQ(done.status, 200) << done.text;

  auto final_run = client_->get("/api/v1/flow-runs/" + id, user);
  EXPECT_EQ(final_run.body["state"], "Success");
  auto tasks = client_->get("/api/v1/flow-runs/" + id + "/task-runs", user);
  ASSERT_EQ(tasks.body["task_runs"].size(), 2u);
  for (const auto& t : tasks.body["task_runs"]) EXPECT_EQ(t["state"], "Success");
  auto all_logs = client_->get("/api/v1/flow-runs/" + id + "/logs", user);
  EXPECT_EQ(all_logs.body["logs"].size(), 2u);
  EXPECT_EQ(all_logs.body["flow_run_state"], "Success");
  auto history = client_->get("/api/v1/flow-runs/" + id + "/history", user);
  std::vector<std::string> states;
  for (const auto& h : history.body["history"]) states.push_back(h["state"]);
  EXPECT_EQ(states, (std::vector<std::string>{"Scheduled", "Submitted", "Running", "Success"}));
  // A final state is final.
  auto again = runc.post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, rt);
  EXPECT_EQ(again.status, 409);
  EXPECT_THAT(again.text, HasSubstr("Success"));
  // Metrics saw it.
  auto metrics = client_->get("/metrics");
  EXPECT_THAT(metrics.text, HasSubstr("culvert_flow_runs{state=\"Success\"} 1"));
  EXPECT_THAT(metrics.text, HasSubstr("culvert_claimed_runs_total 1"));
}

TEST_F(ServerE2E, RunTokenCannotTouchAnotherRun) {
  std::string user = token("user");
  std::string runner = token("runner");
  ASSERT_EQ(client_->post("/api/v1/flows", flow_body("f", {}), user).status, 201);
  auto a = client_->post("/api/v1/agents", {{"name", "a"}, {"type", "local"}}, runner);
  std::string r1 = client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "f"}}, user).body["id"];
  std::string r2 = client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "f"}}, user).body["id"];
  auto claim = client_->post("/api/v1/agents/" + a.body["id"].get<std::string>() + "/claim", {{"max", 2}}, runner);
  ASSERT_EQ(claim.body["runs"].size(), 2u);
  std::map<std::string, std::string> tokens;
  for (const auto& r : claim.body["runs"]) tokens[r["id"]] = r["token"];
  ASSERT_NE(tokens[r1], tokens[r2]);
  EXPECT_EQ(client_->get("/api/v1/flow-runs/" + r1, tokens[r1]).status, 200);
  EXPECT_EQ(client_->get("/api/v1/flow-runs/" + r2, tokens[r1]).status, 403);
  EXPECT_EQ(client_->post("/api/v1/flow-runs/" + r2 + "/state", {{"state", "Running"}}, tokens[r1]).status, 403);
  EXPECT_EQ(client_->post("/api/v1/logs", json::array({{{"flow_run_id", r2}, {"message", "x"}}}), tokens[r1]).status, 403);
  EXPECT_EQ(client_->get("/api/v1/flow-runs", tokens[r1]).status, 403);
  EXPECT_EQ(client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "f"}}, tokens[r1]).status, 403);
  EXPECT_EQ(client_->get("/api/v1/tokens", tokens[r1]).status, 403);
  // r2 was not touched.
  EXPECT_EQ(client_->get("/api/v1/flow-runs/" + r2, user).body["state"], "Submitted");
}

// The attack probe's finding B4 over real HTTP: a second runner token can neither
// re-register another token's agent (changing its labels), nor claim, heartbeat,
// deregister or report infrastructure as it; the binding survives a restart of the server.
TEST_F(ServerE2E, ARunnerTokenCannotActAsAnAgentRegisteredByAnother) {
  std::string user = token("user");
  std::string owner = token("runner");
  std::string intruder = token("runner");
  ASSERT_EQ(client_->post("/api/v1/flows", flow_body("f", {"dev"}), user).status, 201);
  auto a = client_->post("/api/v1/agents", {{"name", "a1"}, {"type", "local"}, {"labels", {"dev"}}}, owner);
  ASSERT_EQ(a.status, 201) << a.text;
  std::string agent = a.body["id"];
  std::string run = client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "f"}}, user).body["id"];
  EXPECT_EQ(server_->terminate(), 0);
  start({});
  auto hijack = client_->post("/api/v1/agents", {{"name", "a1"}, {"type", "local"}, {"labels", {"dev", "x"}}}, intruder);
  EXPECT_EQ(hijack.status, 409) << hijack.text;
  EXPECT_EQ(hijack.body["error"]["code"], "conflict") << hijack.text;
  auto claim = client_->request("POST", "/api/v1/agents/" + agent + "/claim", R"({"max":10})", intruder);
  EXPECT_EQ(claim.status, 403) << claim.text;
  EXPECT_EQ(claim.text.find("cvt_run_"), std::string::npos);
  EXPECT_EQ(client_->post("/api/v1/agents/" + agent + "/heartbeat", nullptr, intruder).status, 403);
  EXPECT_EQ(client_->request("DELETE", "/api/v1/agents/" + agent, "", intruder).status, 403);
  EXPECT_EQ(client_->get("/api/v1/flow-runs/" + run, user).body["state"], "Scheduled");
  auto agents = client_->get("/api/v1/agents", owner).body["agents"];
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_EQ(agents[0]["labels"], json({"dev"}));
  EXPECT_EQ(agents[0]["status"], "live");
  // The owner claims, reports what runs the run, and deregisters.
  auto mine = client_->post("/api/v1/agents/" + agent + "/claim", {{"max", 10}, {"types", {"local"}}}, owner);
  ASSERT_EQ(mine.status, 200) << mine.text;
  ASSERT_EQ(mine.body["runs"].size(), 1u);
  const std::string infra = "/api/v1/flow-runs/" + run + "/infrastructure";
  EXPECT_EQ(client_->post(infra, {{"kind", "process"}, {"id", "1"}}, intruder).status, 403);
  EXPECT_EQ(client_->post("/api/v1/flow-runs/" + run + "/state", {{"state", "Failed"}}, intruder).status, 403);
  EXPECT_EQ(client_->get("/api/v1/flow-runs/" + run, user).body["state"], "Submitted");
  auto reported = client_->post(infra, {{"kind", "process"}, {"id", "4242"}}, owner);
  ASSERT_EQ(reported.status, 200) << reported.text;
  EXPECT_EQ(reported.body["infrastructure"]["agent_id"], agent);
  auto unfinished = client_->get("/api/v1/flow-runs?agent_id=" + agent + "&state=Submitted&state=Running", owner);
  ASSERT_EQ(unfinished.body["runs"].size(), 1u) << unfinished.text;
  EXPECT_EQ(unfinished.body["runs"][0]["infrastructure"]["id"], "4242");
  EXPECT_EQ(unfinished.body["runs"][0]["run_config"]["type"], "local");
  EXPECT_EQ(client_->request("DELETE", "/api/v1/agents/" + agent, "", owner).status, 200);
  EXPECT_EQ(client_->get("/api/v1/agents", owner).body["agents"][0]["status"], "stopped");
}

TEST_F(ServerE2E, KillNineLosesNoAcknowledgedWrite) {
  std::string user = token("user");
  std::string runner = token("runner");
  ASSERT_EQ(client_->post("/api/v1/flows", flow_body("dur", {}), user).status, 201);
  auto a = client_->post("/api/v1/agents", {{"name", "a"}, {"type", "local"}}, runner);
  std::string agent = a.body["id"];

  // Writers: create a run, claim it, Running, Success, and a log line; every 2xx is
  // recorded as (run -> last acknowledged state, version) and log ids.
  struct Ack {
    std::string state;
    int64_t version = 0;
  };
  std::mutex mu;
  std::map<std::string, Ack> acked;
  std::vector<std::pair<std::string, std::string>> acked_logs;  // run, message
  std::atomic<int> writes{0};
  std::atomic<bool> stop{false};
  auto writer = [&](int w) {
    HttpClient c(server_->url());
    for (int i = 0; !stop; ++i) {
      auto run = c.post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "dur"}}, user);
      if (run.status != 201) return;
      std::string id = run.body["id"];
      {
        std::lock_guard<std::mutex> lock(mu);
        acked[id] = {"Scheduled", run.body["version"]};
      }
      ++writes;
      for (const char* s : {"Pending", "Running", "Success"}) {
        auto r = c.post("/api/v1/flow-runs/" + id + "/state", {{"state", s}}, runner);
        if (r.status != 200) return;
        std::lock_guard<std::mutex> lock(mu);
        acked[id] = {s, r.body["version"]};
        ++writes;
      }
      std::string msg = "w" + std::to_string(w) + " line " + std::to_string(i);
      auto l = c.post("/api/v1/logs", json::array({{{"flow_run_id", id}, {"message", msg}}}), runner);
      if (l.status != 201) return;
      std::lock_guard<std::mutex> lock(mu);
      acked_logs.emplace_back(id, msg);
      ++writes;
    }
  };
  std::thread w1(writer, 1), w2(writer, 2);
  while (writes < 300) std::this_thread::yield();
  server_->kill9();  // mid-stream: writers see failures and stop
  stop = true;
  w1.join();
  w2.join();

  start({});
  ASSERT_GE(acked.size(), 10u);
  for (const auto& [id, ack] : acked) {
    auto r = client_->get("/api/v1/flow-runs/" + id, user);
    ASSERT_EQ(r.status, 200) << "acknowledged run " << id << " is missing";
    EXPECT_GE(r.body["version"].get<int64_t>(), ack.version) << id;
    if (r.body["version"].get<int64_t>() == ack.version) {
      EXPECT_EQ(r.body["state"], ack.state) << id;
    }
  }
  for (const auto& [id, msg] : acked_logs) {
    auto r = client_->get("/api/v1/flow-runs/" + id + "/logs", user);
    ASSERT_EQ(r.status, 200);
    bool found = false;
    for (const auto& l : r.body["logs"]) found |= l["message"] == msg;
    EXPECT_TRUE(found) << "acknowledged log line lost: " << msg;
  }
}

TEST_F(ServerE2E, TwoReplicasOnOneDatabaseHandOverWorkExactlyOnce) {
  std::string user = token("user");
  std::string runner = token("runner");
  ASSERT_EQ(client_->post("/api/v1/flows", flow_body("multi", {}), user).status, 201);
  // A second server process on the same database.
  TempDir home2;
  auto replica = ServerProcess::start(home2.path(), db_.url, {"--poll-interval", "100ms"});
  ASSERT_NE(replica, nullptr);
  std::string a1 = client_->post("/api/v1/agents", {{"name", "a1"}, {"type", "local"}}, runner).body["id"];
  std::string a2 = client_->post("/api/v1/agents", {{"name", "a2"}, {"type", "local"}}, runner).body["id"];
  constexpr int kRuns = 40;
  std::mutex mu;
  std::map<std::string, int> claimed;  // run id -> times claimed
  std::atomic<int> total{0};
  auto agent = [&](const std::string& url, const std::string& id) {
    HttpClient c(url);
    while (total < kRuns) {
      auto r = c.post("/api/v1/agents/" + id + "/claim", {{"max", 3}, {"wait_ms", 500}}, runner);
      if (r.status != 200) return;
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& run : r.body["runs"]) {
        ++claimed[run["id"].get<std::string>()];
        ++total;
      }
    }
  };
  // Agent 1 polls this server, agent 2 the replica; runs are created on this server
  // only, so the replica learns of them from the database alone.
  std::thread t1(agent, server_->url(), a1), t2(agent, replica->url(), a2);
  for (int i = 0; i < kRuns; ++i)
    ASSERT_EQ(client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "multi"}}, user).status, 201);
  t1.join();
  t2.join();
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kRuns));
  for (const auto& [id, n] : claimed) EXPECT_EQ(n, 1) << id << " claimed twice";
  auto runs = client_->get("/api/v1/flow-runs?state=Submitted&limit=1000", user);
  EXPECT_EQ(runs.body["runs"].size(), static_cast<size_t>(kRuns));
  EXPECT_EQ(replica->terminate(), 0);
}

TEST_F(ServerE2E, TwoReplicasAndEightClaimersTakeTwoThousandDueRunsExactlyOnce) {
  std::string user = token("user");
  std::string runner = token("runner");
  ASSERT_EQ(client_->post("/api/v1/flows", flow_body("backlog", {}), user).status, 201);
  constexpr int kRuns = 2000;
  for (int i = 0; i < kRuns; ++i)
    ASSERT_EQ(client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "backlog"}}, user).status, 201);
  TempDir home2;
  auto replica = ServerProcess::start(home2.path(), db_.url, {"--poll-interval", "100ms"});
  ASSERT_NE(replica, nullptr);
  std::mutex mu;
  std::map<std::string, int> claimed;  // run id -> times claimed
  std::atomic<int> total{0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  auto claimer = [&](const std::string& url, const std::string& id) {
    HttpClient c(url);
    while (total < kRuns && std::chrono::steady_clock::now() < deadline) {
      auto r = c.post("/api/v1/agents/" + id + "/claim", {{"max", 10}, {"wait_ms", 200}}, runner);
      if (r.status != 200) return;
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& run : r.body["runs"]) {
        ++claimed[run["id"].get<std::string>()];
        ++total;
      }
    }
  };
  // Eight agents, four on each server process, all claiming at once.
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    std::string name = "claimer-" + std::to_string(i);
    std::string id = client_->post("/api/v1/agents", {{"name", name}, {"type", "local"}}, runner).body["id"];
    threads.emplace_back(claimer, i % 2 == 0 ? server_->url() : replica->url(), id);
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kRuns));
  int twice = 0;
  for (const auto& [id, n] : claimed) twice += n > 1;
  EXPECT_EQ(twice, 0) << twice << " runs were claimed more than once";
  EXPECT_EQ(replica->terminate(), 0);
}

// Sends one HTTP request on a fresh connection and closes it without reading the
// answer: an agent that dies during its long poll.
void post_and_hang_up(const std::string& base_url, const std::string& target, const std::string& body,
                      const std::string& token) {
  int port = std::stoi(base_url.substr(base_url.rfind(':') + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string req = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  ::close(fd);
}

// An agent that closed its connection while its claim was parked gets nothing: the
// next run goes to a live agent at once, not after the Submitted deadline.
TEST_F(ServerE2E, ClaimOfAVanishedAgentTakesNothing) {
  std::string user = token("user");
  std::string runner = token("runner");
  ASSERT_EQ(client_->post("/api/v1/flows", flow_body("etl", {}), user).status, 201);
  auto dead = client_->post("/api/v1/agents", {{"name", "dead"}, {"type", "local"}}, runner);
  auto live = client_->post("/api/v1/agents", {{"name", "live"}, {"type", "local"}}, runner);
  std::string dead_id = dead.body["id"], live_id = live.body["id"];
  post_and_hang_up(server_->url(), "/api/v1/agents/" + dead_id + "/claim", R"({"max":1,"wait_ms":60000})", runner);
  // The server notices the closed connection while the claim is parked.
  ASSERT_TRUE(metrics_show("culvert_claims_abandoned_total 1", 5000)) << client_->get("/metrics").text;
  auto run = client_->post("/api/v1/flow-runs", {{"project", "e2e"}, {"flow", "etl"}}, user);
  ASSERT_EQ(run.status, 201) << run.text;
  auto claim = client_->post("/api/v1/agents/" + live_id + "/claim", {{"max", 1}, {"wait_ms", 2000}}, runner);
  ASSERT_EQ(claim.status, 200) << claim.text;
  ASSERT_EQ(claim.body["runs"].size(), 1u) << claim.text;
  EXPECT_EQ(claim.body["runs"][0]["id"], run.body["id"]);
  EXPECT_EQ(claim.body["runs"][0]["agent_id"], live_id);
}

TEST_F(ServerE2E, SigtermAnswersParkedPollsAndExitsCleanly) {
  std::string runner = token("runner");
  auto a = client_->post("/api/v1/agents", {{"name", "a"}, {"type", "local"}}, runner);
  Reply claim;
  std::thread poller([&] {
    HttpClient c(server_->url());
    claim = c.post("/api/v1/agents/" + a.body["id"].get<std::string>() + "/claim", {{"wait_ms", 60000}}, runner);
  });
  (void)metrics_show("culvert_long_polls_parked 1");
  EXPECT_EQ(server_->terminate(), 0);
  poller.join();
  EXPECT_EQ(claim.status, 200) << claim.text;
  EXPECT_EQ(claim.body["runs"].size(), 0u);
}

}  // namespace
}  // namespace culvert::testing
