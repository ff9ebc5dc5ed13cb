// YAML flow files end to end: `culvert flow register FILE.yaml` to file:// and to s3://
// (s3rver), run by a real local agent through `culvert execute`, states and logs on the
// server; a broken file refused at registration naming its line; a failing command
// Failed after its retries; a run cancelled while its command sleeps.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "cli_runs.hpp"
#include "harness.hpp"

namespace culvert::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

constexpr const char* kNightly = R"(name: nightly
description: a YAML flow of command tasks
parameters:
  day: {type: string, required: true}
  rows: {type: int, default: 3}
run_config: {type: local, labels: [yaml-e2e]}
tasks:
  extract:
    command: "echo extracting {{ rows }} rows for {{ day }}; printf 'day=[%s]\n' {{ day }}"
    retries: 1
    timeout: 1m
  load:
    command: ./load.sh
    after: [extract]
    env: {MODE: full}
)";

class YamlFlowE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(sandbox_, std::vector<std::string>{"--heartbeat-interval", "1s"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    work_ = sandbox_.dir() / "work";
    fs::create_directories(work_);
    std::ofstream(work_ / "load.sh") << "#!/bin/sh\necho \"loading in mode $MODE for $CULVERT_PARAM_day\"\n";
    fs::permissions(work_ / "load.sh", fs::perms::owner_all);
    if (const char* s3 = std::getenv("CULVERT_S3RVER_DIR"))
      s3_endpoint_ = "http://127.0.0.1:" + trim(read_file(fs::path(s3) / "port"));
  }

  std::map<std::string, std::string> env() const {
    std::map<std::string, std::string> e = {{"CULVERT_API_URL", server_->url()},
                                            {"CULVERT_API_TOKEN", server_->admin_token()}};
    if (!s3_endpoint_.empty()) {
      e.insert({{"CULVERT_S3_ENDPOINT", s3_endpoint_}, {"AWS_ACCESS_KEY_ID", "S3RVER"},
                {"AWS_SECRET_ACCESS_KEY", "S3RVER"}, {"AWS_REGION", "us-east-1"},
                {"AWS_EC2_METADATA_DISABLED", "true"}});
    }
    return e;
  }

  fs::path write(const std::string& name, const std::string& text) {
    fs::path p = sandbox_.dir() / name;
    std::ofstream(p) << text;
    return p;
  }

  std::unique_ptr<Process> start_agent(const std::vector<std::string>& labels = {"yaml-e2e"}) {
    std::vector<std::string> argv = {culvert_binary(), "agent",         "start", "--type", "local", "--name", "y1",
                                     "--working-dir",  work_.string(), "--heartbeat-seconds", "1"};
    for (const auto& l : labels) argv.insert(argv.end(), {"--label", l});
    auto e = sandbox_.env(env());
    e["CULVERT_HEARTBEAT_SECONDS"] = "1";
    e["CULVERT_CANCEL_POLL_MS"] = "200";
    return std::make_unique<Process>(argv, e, sandbox_.dir() / "agent.log");
  }

  std::string create_run(const std::string& flow, const std::vector<std::string>& extra) {
    std::string id = cli_create_run(sandbox_, env(), flow, "yaml", extra);
    EXPECT_FALSE(id.empty());
    return id;
  }

  // The whole `run inspect` document (the run, its task runs, ...).
  json inspect(const std::string& id) {
    auto r = sandbox_.culvert({"run", "inspect", id, "--output", "json"}, env());
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  std::string state_of(const std::string& id) { return cli_inspect_run(sandbox_, env(), id).value("state", ""); }
  bool final_state(const std::string& id, std::string* state) {
    return wait_until([&] {
      *state = state_of(id);
      return *state == "Success" || *state == "Failed" || *state == "Crashed" || *state == "Cancelled" ||
             *state == "TimedOut";
    }, 90s);
  }
  std::string logs(const std::string& id) { return sandbox_.culvert({"get", "logs", id}, env()).out; }

  // Registers kNightly to `storage`, runs it twice with one agent (the second run finds
  // the artifact in the agent's cache), and checks both end Success with their logs.
  void register_and_run_twice(const std::string& storage) {
    fs::path file = write("nightly.yaml", kNightly);
    auto reg = sandbox_.culvert({"flow", "register", file.string(), "--project", "yaml", "--storage", storage,
                                 "--output", "json"},
                                env());
    ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
    json flow = json::parse(reg.out);
    EXPECT_EQ(flow["artifact"]["kind"], "yaml");
    EXPECT_EQ(flow["name"], "nightly");
    EXPECT_EQ(flow["labels"], json({"yaml-e2e"}));
    auto agent = start_agent();
    for (int i = 0; i < 2; ++i) {
      const std::string day = i == 0 ? "2026-03-01" : "a b; echo INJECTED";
      std::string id = create_run("nightly", {"--param", "day=" + day});
      ASSERT_FALSE(id.empty());
      std::string state;
      ASSERT_TRUE(final_state(id, &state)) << state << "\n" << agent->output();
      const std::string out = logs(id);
      ASSERT_EQ(state, "Success") << out << "\nagent:\n" << agent->output();
      EXPECT_NE(out.find("extracting 3 rows for " + day), std::string::npos) << out;
      EXPECT_NE(out.find("day=[" + day + "]"), std::string::npos) << out;
      EXPECT_NE(out.find("loading in mode full for " + day), std::string::npos) << out;
      EXPECT_EQ(out.find("\nINJECTED"), std::string::npos) << out;
      json j = inspect(id);
      std::string text = j.dump();
      EXPECT_NE(text.find("\"extract\""), std::string::npos) << text;
      EXPECT_NE(text.find("\"load\""), std::string::npos) << text;
    }
  }

  Sandbox sandbox_;
  std::unique_ptr<TestServer> server_;
  fs::path work_;
  std::string s3_endpoint_;
};

TEST_F(YamlFlowE2E, RegisteredToFileRunByALocalAgentToSuccessWithItsLogs) {
  register_and_run_twice("file://" + (sandbox_.dir() / "flows").string());
}

TEST_F(YamlFlowE2E, RegisteredToS3RunByALocalAgentToSuccessWithItsLogs) {
  ASSERT_FALSE(s3_endpoint_.empty()) << "run through ctest (the s3rver fixture)";
  const std::string bucket = "s3://culvert-e2e/yaml-" + sandbox_.dir().filename().string();
  register_and_run_twice(bucket + "/flows");
  auto ls = sandbox_.run({"/usr/bin/aws", "--endpoint-url", s3_endpoint_, "s3", "ls", "--recursive", bucket + "/"},
                         env());
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("/flows/nightly/"), std::string::npos) << ls.out;
}

TEST_F(YamlFlowE2E, ABrokenFileIsRefusedAtRegistrationNamingItsLine) {
  fs::path file = write("broken.yaml", "name: broken\ntasks:\n  extract:\n    command: ./x.sh\n    retries: two\n");
  auto reg = sandbox_.culvert({"flow", "register", file.string(), "--project", "yaml", "--storage",
                               "file://" + (sandbox_.dir() / "flows").string()},
                              env());
  EXPECT_EQ(reg.exit_code, 2) << reg.out << reg.err;
  EXPECT_NE(reg.err.find(file.string() + ":5: tasks.extract.retries: must be a whole number from 0 to 1000, got 'two'"),
            std::string::npos)
      << reg.err;
  EXPECT_FALSE(fs::exists(sandbox_.dir() / "flows")) << "nothing is uploaded";
  fs::path typo = write("typo.yaml", "name: typo\ntasks:\n  a: {command: x, aftr: [b]}\n");
  reg = sandbox_.culvert({"flow", "register", typo.string(), "--project", "yaml", "--storage",
                          "file://" + (sandbox_.dir() / "flows").string()},
                         env());
  EXPECT_EQ(reg.exit_code, 2) << reg.out << reg.err;
  EXPECT_NE(reg.err.find(typo.string() + ":3: tasks.a.aftr: unknown key 'aftr'"), std::string::npos) << reg.err;
  auto list = sandbox_.culvert({"flow", "list", "--project", "yaml", "--output", "json"}, env());
  EXPECT_EQ(list.out.find("broken"), std::string::npos) << list.out;
}

TEST_F(YamlFlowE2E, AFailingCommandIsFailedAfterItsRetriesAndATimeoutIsTimedOut) {
  fs::path file = write("failing.yaml", R"(name: failing
run_config: {type: local, labels: [yaml-e2e]}
tasks:
  flaky: {command: "echo attempt; exit 3", retries: 2, retry_delay: 100ms}
  slow: {command: "sleep 60", timeout: 1s, kill_grace: 1s}
)");
  auto reg = sandbox_.culvert({"flow", "register", file.string(), "--project", "yaml", "--storage",
                               "file://" + (sandbox_.dir() / "flows").string()},
                              env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto agent = start_agent();
  std::string id = create_run("failing", {});
  std::string state;
  ASSERT_TRUE(final_state(id, &state)) << state << agent->output();
  EXPECT_EQ(state, "Failed") << logs(id);
  json j = inspect(id);
  std::map<std::string, json> tasks;
  for (const auto& t : j.value("task_runs", json::array())) tasks[t.value("task", t.value("name", ""))] = t;
  if (tasks.empty())
    for (const auto& t : j.value("tasks", json::array())) tasks[t.value("task", t.value("name", ""))] = t;
  const std::string text = j.dump();
  EXPECT_NE(text.find("command exited with status 3"), std::string::npos) << text;
  EXPECT_NE(text.find("TimedOut"), std::string::npos) << text;
  const std::string out = logs(id);
  size_t attempts = 0;
  for (size_t at = out.find("attempt"); at != std::string::npos; at = out.find("attempt", at + 1))
    if (out.compare(at, 8, "attempt\n") == 0 || at + 7 == out.size()) ++attempts;
  EXPECT_EQ(attempts, 3u) << out;
}

// An agent started without --workers passes no CULVERT_WORKERS: each run uses the
// cores of the machine it runs on (for a remote launcher, not the agent's).
TEST_F(YamlFlowE2E, WithoutWorkersTheAgentLeavesTheWorkerCountToTheRunsMachine) {
  fs::path file = write("workers.yaml", "name: workers\nrun_config: {type: local, labels: [yaml-e2e]}\ntasks:\n"
                                        "  show: {command: 'echo \"workers=[${CULVERT_WORKERS:-unset}]\"'}\n");
  auto reg = sandbox_.culvert({"flow", "register", file.string(), "--project", "yaml", "--storage",
                               "file://" + (sandbox_.dir() / "flows").string()},
                              env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto agent = start_agent();
  std::string id = create_run("workers", {});
  std::string state;
  ASSERT_TRUE(final_state(id, &state)) << state << agent->output();
  EXPECT_EQ(state, "Success") << logs(id);
  EXPECT_NE(logs(id).find("workers=[unset]"), std::string::npos) << logs(id);
}

TEST_F(YamlFlowE2E, ACancelledRunStopsItsCommand) {
  fs::path marker = sandbox_.dir() / "started";
  fs::path file = write("sleepy.yaml", "name: sleepy\nrun_config: {type: local, labels: [yaml-e2e]}\ntasks:\n"
                                       "  nap: {command: \"touch " + marker.string() + "; exec sleep 300\"}\n");
  auto reg = sandbox_.culvert({"flow", "register", file.string(), "--project", "yaml", "--storage",
                               "file://" + (sandbox_.dir() / "flows").string()},
                              env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto agent = start_agent();
  std::string id = create_run("sleepy", {});
  ASSERT_TRUE(wait_until([&] { return fs::exists(marker) && state_of(id) == "Running"; }, 60s))
      << state_of(id) << agent->output();
  auto cancel = sandbox_.culvert({"run", "cancel", id}, env());
  ASSERT_EQ(cancel.exit_code, 0) << cancel.out << cancel.err;
  std::string state;
  ASSERT_TRUE(final_state(id, &state)) << state << agent->output();
  EXPECT_EQ(state, "Cancelled") << logs(id) << agent->output();
}

}  // namespace
}  // namespace culvert::e2e
