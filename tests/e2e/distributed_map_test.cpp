// Distributed maps end to end on local agents: a real server (SQLite), `culvert agent
// start --type local`, the flow binary map_flow registered to file:// storage; its
// mapped task fans out over child runs that the agent launches as processes.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cli_runs.hpp"
#include "harness.hpp"

namespace culvert::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class DistributedMapE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(
        sandbox_, std::vector<std::string>{"--heartbeat-interval", "1s", "--liveness-interval", "200ms"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    fs::create_directories(sandbox_.dir() / "maps");
    map_storage_ = "file://" + (sandbox_.dir() / "maps").string();
    auto r = sandbox_.culvert({"flow", "register", build_path("tests/e2e/map_flow"), "--project", "demo",
                               "--storage", "file://" + (sandbox_.dir() / "flows").string()},
                              flow_env());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  std::map<std::string, std::string> api_env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()}};
  }
  std::map<std::string, std::string> flow_env() const {
    auto env = api_env();
    env["MAP_FLOW_STORAGE"] = map_storage_;
    return env;
  }

  // One local agent that takes the parent and 20 children at once, one thread each.
  std::unique_ptr<Process> start_agent(int max_concurrent = 21) {
    std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "local", "--name", "workers",
                                     "--max-concurrent", std::to_string(max_concurrent), "--workers", "1",
                                     "--heartbeat-seconds", "1"};
    auto env = sandbox_.env(flow_env());
    env["CULVERT_CANCEL_POLL_MS"] = "200";
    return std::make_unique<Process>(argv, env, sandbox_.dir() / "agent.log");
  }

  std::string create_run(const std::vector<std::string>& params) {
    std::vector<std::string> extra;
    for (const auto& p : params) extra.insert(extra.end(), {"--param", p});
    return cli_create_run(sandbox_, api_env(), "fanout", "demo", extra);
  }
  json get_run(const std::string& id) { return cli_inspect_run(sandbox_, api_env(), id); }
  std::string state_of(const std::string& id) { return get_run(id).value("state", ""); }

  json api_get(const std::string& path) {
    auto r = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                           server_->url() + path});
    if (r.exit_code != 0) return json();
    return json::parse(r.out, nullptr, false);
  }
  json children_of(const std::string& id) { return api_get("/api/v1/flow-runs/" + id + "/children"); }

  // How often each element ran, from the lines the flow appended to `file`.
  std::map<int, int> executions(const fs::path& file) {
    std::map<int, int> out;
    std::ifstream in(file);
    int index = 0;
    long pid = 0;
    while (in >> index >> pid) ++out[index];
    return out;
  }
  std::set<long> element_pids(const fs::path& file) {
    std::set<long> out;
    std::ifstream in(file);
    int index = 0;
    long pid = 0;
    while (in >> index >> pid) out.insert(pid);
    return out;
  }

  Sandbox sandbox_;
  std::unique_ptr<TestServer> server_;
  std::string map_storage_;
};

TEST_F(DistributedMapE2E, TwoHundredElementsOverTwentyChildRunsEachExecutedOnce) {
  auto agent = start_agent();
  const fs::path counts = sandbox_.dir() / "counts.txt";
  const auto started = std::chrono::steady_clock::now();
  std::string id = create_run({"n=200", "sleep_ms=1000", "count_file=" + counts.string()});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 240s))
      << state_of(id) << "\n" << agent->output();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(state_of(id), "Success") << get_run(id).dump(2) << "\n" << agent->output();
  std::printf("200 elements of 1 s over 20 child runs: %.1f s from creating the run to its end\n", seconds);
  RecordProperty("wall_seconds", std::to_string(seconds));
  // Every element exactly once, counted from the flow's side.
  auto runs = executions(counts);
  EXPECT_EQ(runs.size(), 200u);
  for (const auto& [i, n] : runs) EXPECT_EQ(n, 1) << "element " << i;
  // 20 children, each Success, each a process of its own.
  json children = children_of(id);
  ASSERT_TRUE(children.is_object()) << children;
  ASSERT_EQ(children["children"].size(), 20u) << children.dump(2);
  EXPECT_EQ(children["final"], 20);
  std::set<std::string> infra;
  for (const auto& c : children["children"]) {
    EXPECT_EQ(c["state"], "Success") << c.dump();
    if (c["infrastructure"].is_object()) infra.insert(c["infrastructure"].value("id", ""));
  }
  EXPECT_EQ(infra.size(), 20u);
  EXPECT_GE(element_pids(counts).size(), 20u);  // ran in 20 processes, not the parent's
  // The elements' task runs are the parent's, by absolute map index.
  json tr = api_get("/api/v1/flow-runs/" + id + "/task-runs?task=score&state=Success&limit=1000");
  ASSERT_TRUE(tr.is_object()) << tr;
  EXPECT_EQ(tr["task_runs"].size(), 200u);
  EXPECT_EQ(tr["task_runs"][199]["map_index"], 199);
  auto logs = sandbox_.culvert({"get", "logs", id}, api_env());
  EXPECT_NE(logs.out.find("reduced 200 outputs in order, sum 19900"), std::string::npos) << logs.out;
  // The data stayed in storage: the server's database never saw it (nor does the
  // storage keep the chunks once read).
  for (const auto& entry : fs::directory_iterator(sandbox_.dir())) {
    if (entry.path().filename().string().find(".db") == std::string::npos) continue;
    std::string bytes = read_file(entry.path());
    EXPECT_EQ(bytes.find("culvert-secret-payload"), std::string::npos) << entry.path();
    EXPECT_EQ(bytes.find("-out"), std::string::npos) << entry.path();
  }
  size_t left = 0;
  for (auto it = fs::recursive_directory_iterator(sandbox_.dir() / "maps"); it != fs::recursive_directory_iterator();
       ++it)
    left += it->is_regular_file();
  EXPECT_EQ(left, 0u);
}

TEST_F(DistributedMapE2E, AWorkerKilledMidChunkIsRunAgainAndTheRunSucceeds) {
  auto agent = start_agent();
  const fs::path counts = sandbox_.dir() / "counts.txt";
  const fs::path marker = sandbox_.dir() / "killed-once";
  std::string id = create_run({"n=40", "sleep_ms=100", "count_file=" + counts.string(), "kill_index=25",
                               "kill_marker=" + marker.string()});
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 180s)) << state_of(id) << agent->output();
  ASSERT_EQ(state_of(id), "Success") << get_run(id).dump(2) << "\n" << agent->output();
  EXPECT_TRUE(fs::exists(marker));
  auto runs = executions(counts);
  ASSERT_EQ(runs.size(), 40u);
  // Chunk 2 (elements 20..29) ran twice: once to the kill at 25, then whole; the rest once.
  for (const auto& [i, n] : runs) {
    if (i >= 20 && i <= 25) EXPECT_EQ(n, 2) << "element " << i;
    else EXPECT_EQ(n, 1) << "element " << i;
  }
  json children = children_of(id);
  bool found = false;
  for (const auto& c : children["children"]) {
    if (c["chunk"] != 2) continue;
    found = true;
    EXPECT_EQ(c["state"], "Success");
    EXPECT_EQ(c["run_count"], 2) << c.dump();
  }
  EXPECT_TRUE(found) << children.dump(2);
  auto logs = sandbox_.culvert({"get", "logs", id}, api_env());
  EXPECT_NE(logs.out.find("reduced 40 outputs in order, sum 780"), std::string::npos) << logs.out;
}

TEST_F(DistributedMapE2E, AFailedElementFailsTheMapAndTheRun) {
  auto agent = start_agent();
  std::string id = create_run({"n=30", "fail_index=17"});
  ASSERT_TRUE(wait_until([&] { return is_final_state(state_of(id)); }, 180s)) << state_of(id) << agent->output();
  json run = get_run(id);
  EXPECT_EQ(run["state"], "Failed") << run.dump(2);
  EXPECT_NE(run.value("state_message", "").find("upstream task 'score' ended Failed"), std::string::npos) << run.dump(2);
  // The chunk with the failure ended Failed, the others Success; every child wrote its outcomes.
  json children = children_of(id);
  ASSERT_EQ(children["children"].size(), 3u) << children.dump(2);
  for (const auto& c : children["children"]) EXPECT_EQ(c["state"], c["chunk"] == 1 ? "Failed" : "Success") << c.dump();
  json failed = api_get("/api/v1/flow-runs/" + id + "/task-runs?task=score&state=Failed");
  ASSERT_EQ(failed["task_runs"].size(), 1u) << failed;
  EXPECT_EQ(failed["task_runs"][0]["map_index"], 17);
  EXPECT_NE(failed["task_runs"][0].value("message", "").find("element 17 fails"), std::string::npos) << failed;
}

TEST_F(DistributedMapE2E, CancellingTheParentStopsEveryWorker) {
  auto agent = start_agent();
  const fs::path counts = sandbox_.dir() / "counts.txt";
  std::string id = create_run({"n=40", "sleep_ms=120000", "count_file=" + counts.string()});
  // Wait until every child is Running and each has started an element.
  ASSERT_TRUE(wait_until([&] {
    json c = children_of(id);
    if (!c.is_object() || c["children"].size() != 4) return false;
    for (const auto& ch : c["children"])
      if (ch["state"] != "Running") return false;
    return element_pids(counts).size() >= 4;
  }, 120s)) << children_of(id).dump(2) << agent->output();
  std::set<long> pids = element_pids(counts);
  auto c = sandbox_.culvert({"run", "cancel", id}, api_env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Cancelled"; }, 60s)) << get_run(id).dump(2) << agent->output();
  ASSERT_TRUE(wait_until([&] {
    for (const auto& ch : children_of(id)["children"])
      if (ch["state"] != "Cancelled") return false;
    return true;
  }, 60s)) << children_of(id).dump(2);
  // Every worker process is gone.
  ASSERT_TRUE(wait_until([&] {
    for (long pid : pids)
      if (::kill(static_cast<pid_t>(pid), 0) == 0) return false;
    return true;
  }, 30s));
}

}  // namespace
}  // namespace culvert::e2e
