// End to end with real processes: `culvert server start` (SQLite), `culvert agent start
// --type local`, a flow binary registered to file:// storage, `culvert run`.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "core/timefmt.hpp"
#include "cli_runs.hpp"
#include "harness.hpp"

namespace culvert::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class LocalAgentE2E : public ::testing::Test {
 protected:
  static std::vector<std::string> server_args() {
    return {"--heartbeat-interval", "1s", "--liveness-interval", "200ms", "--scheduler-interval", "200ms"};
  }

  void SetUp() override {
    server_ = std::make_unique<TestServer>(sandbox_, server_args());
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    ASSERT_FALSE(server_->admin_token().empty()) << "no admin token in the profile";
    storage_ = "file://" + (sandbox_.dir() / "flows").string();
    auto r = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo",
                               "--storage", storage_, "--output", "json"},
                              api_env());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  std::map<std::string, std::string> api_env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()}};
  }

  std::unique_ptr<Process> start_agent(const std::string& name, const std::vector<std::string>& labels,
                                       int max_concurrent = 4) {
    std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "local", "--name", name,
                                     "--max-concurrent", std::to_string(max_concurrent),
                                     "--heartbeat-seconds", "1"};
    for (const auto& l : labels) argv.insert(argv.end(), {"--label", l});
    auto env = sandbox_.env(api_env());
    env["CULVERT_HEARTBEAT_SECONDS"] = "1";
    env["CULVERT_CANCEL_POLL_MS"] = "200";
    return std::make_unique<Process>(argv, env, sandbox_.dir() / (name + ".log"));
  }

  // Creates a run; returns its id.
  std::string create_run(const std::vector<std::string>& extra = {}) {
    std::string id = cli_create_run(sandbox_, api_env(), "e2e", "demo", extra);
    EXPECT_FALSE(id.empty());
    return id;
  }

  json get_run(const std::string& id) { return cli_inspect_run(sandbox_, api_env(), id); }

  std::string state_of(const std::string& id) { return get_run(id).value("state", ""); }

  // Creates a run that works for a minute and waits until it is Running; returns its id
  // and the flow process's pid (0 when it did not get there).
  std::pair<std::string, pid_t> start_long_run(Process& agent) {
    fs::path marker = sandbox_.dir() / ("marker-" + std::to_string(++long_runs_));
    std::string id = create_run({"--param", "sleep_ms=60000", "--param", "marker=" + marker.string()});
    if (!wait_until([&] { return state_of(id) == "Running" && fs::exists(marker); }, 60s)) {
      ADD_FAILURE() << "run " << id << " is " << state_of(id) << "\n" << agent.output();
      return {id, 0};
    }
    return {id, flow_pid(id)};
  }

  // The pid of the flow process, from the line its first task logs ("... pid N").
  pid_t flow_pid(const std::string& id) {
    pid_t pid = 0;
    wait_until([&] {
      auto logs = sandbox_.culvert({"get", "logs", id}, api_env());
      auto pos = logs.out.find(" pid ");
      if (pos == std::string::npos) return false;
      pid = std::atoi(logs.out.c_str() + pos + 5);
      return pid > 0;
    }, 30s);
    return pid;
  }

  Sandbox sandbox_;
  std::unique_ptr<TestServer> server_;
  std::string storage_;
  int long_runs_ = 0;
};

TEST_F(LocalAgentE2E, RunWatchSucceedsAndLogsReachTheServer) {
  auto agent = start_agent("a1", {});
  auto r = sandbox_.culvert({"run", "e2e", "--project", "demo", "--watch"}, api_env(), 120s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << "\nagent:\n" << agent->output();
  EXPECT_NE(r.out.find("Success"), std::string::npos) << r.out;
  std::string id = create_run();
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Success"; }, 60s)) << state_of(id) << agent->output();
  auto logs = sandbox_.culvert({"get", "logs", id}, api_env());
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("hello from the e2e flow, run " + id), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("work done"), std::string::npos) << logs.out;
  // Task runs reported in batches.
  auto tr = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                          server_->url() + "/api/v1/flow-runs/" + id + "/task-runs"});
  ASSERT_EQ(tr.exit_code, 0) << tr.err;
  EXPECT_NE(tr.out.find("\"work\""), std::string::npos) << tr.out;
  EXPECT_NE(tr.out.find("\"Success\""), std::string::npos) << tr.out;
  // The version's first run went through `culvert execute` (which fetched and verified
  // the artifact); the second started the cached artifact directly.
  const std::string out = agent->output();
  auto launch_line = [&](const std::string& run_id) {
    auto at = out.find("run " + run_id + ": started `");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  auto created = r.out.find("flow run ");
  ASSERT_NE(created, std::string::npos) << r.out;
  std::string first = r.out.substr(created + 9, 36);
  EXPECT_NE(launch_line(first).find(" execute`"), std::string::npos) << out;
  EXPECT_EQ(launch_line(first).find("/.culvert/artifacts/"), std::string::npos) << launch_line(first);
  EXPECT_NE(launch_line(id).find("/.culvert/artifacts/"), std::string::npos) << out;
}

// A flow without flow.storage() registers with --storage, through `culvert flow
// register` and through its own `register`, and an agent runs it.
TEST_F(LocalAgentE2E, AFlowWithoutStorageRegistersWithTheStorageFlag) {
  auto env = api_env();
  env["E2E_NO_STORAGE"] = "1";
  auto d = sandbox_.run({build_path("tests/e2e/e2e_flow"), "describe"}, env);
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ASSERT_NE(d.out.find("\"storage\":null"), std::string::npos) << d.out;
  auto cli = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo",
                               "--storage", storage_, "--label", "no-storage"},
                              env);
  ASSERT_EQ(cli.exit_code, 0) << cli.out << cli.err;
  EXPECT_NE(cli.out.find("registered flow 'e2e' version 2"), std::string::npos) << cli.out;
  auto own = sandbox_.run({build_path("tests/e2e/e2e_flow"), "register", "--project", "demo", "--storage", storage_,
                           "--label", "no-storage-2", "--output", "json"},
                          env);
  ASSERT_EQ(own.exit_code, 0) << own.out << own.err;
  auto j = json::parse(own.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << own.out;
  EXPECT_EQ(j["version"], 3) << own.out;
  auto agent = start_agent("a-no-storage", {"no-storage-2"});
  std::string id = create_run();
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(wait_until([&] { return state_of(id) == "Success"; }, 60s)) << state_of(id) << agent->output();
}

// The tour of README.md and SDK.md as written: examples/etl registered with --storage
// and run by a local agent labelled dev.
TEST_F(LocalAgentE2E, TheEtlExampleRunsAsTheDocsSay) {
  const std::string etl = build_path("examples/etl");
  if (!fs::exists(etl)) GTEST_SKIP() << "examples are not built";
  auto reg = sandbox_.culvert({"flow", "register", etl, "--project", "demo", "--storage", storage_}, api_env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto agent = start_agent("a-dev", {"dev"});
  auto run = sandbox_.culvert({"run", "etl", "--project", "demo", "--param", "rows=5", "--watch"}, api_env(),
                              std::chrono::seconds(90));
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err << agent->output();
  EXPECT_NE(run.out.find("Success"), std::string::npos) << run.out;
}

TEST_F(LocalAgentE2E, UncoveredLabelsStayScheduledAndInspectNamesThem) {
  auto other = start_agent("cpu-agent", {"cpu"});
  std::string id = create_run({"--label", "gpu", "--label", "cpu"});
  ASSERT_FALSE(id.empty());
  // The agent is live and long-polling; the run must not be taken.
  ASSERT_TRUE(wait_until([&] {
    auto r = sandbox_.culvert({"get", "agents", "--output", "json"}, api_env());
    return r.out.find("cpu-agent") != std::string::npos;
  }, 30s));
  auto inspect = sandbox_.culvert({"run", "inspect", id}, api_env());
  EXPECT_EQ(state_of(id), "Scheduled");
  EXPECT_NE(inspect.out.find("gpu"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("cpu-agent"), std::string::npos) << inspect.out;
  auto gpu = start_agent("gpu-agent", {"gpu", "cpu"});
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Success"; }, 60s))
      << state_of(id) << gpu->output();
}

// A9: a local agent does not claim a run whose run config is of a type it does not
// launch (it used to claim it and set it Crashed); `run inspect` names the mismatch.
TEST_F(LocalAgentE2E, ARunOfAnotherRunConfigTypeIsNotClaimedAndInspectSaysWhy) {
  auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "containers",
                               "--storage", storage_, "--run-config",
                               json({{"type", "docker"}, {"image", "etl:1"}}).dump(), "--output", "json"},
                              api_env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto docker_run = sandbox_.culvert({"run", "e2e", "--project", "containers", "--output", "json"}, api_env());
  ASSERT_EQ(docker_run.exit_code, 0) << docker_run.out << docker_run.err;
  std::string docker_id = json::parse(docker_run.out).value("id", "");
  ASSERT_FALSE(docker_id.empty()) << docker_run.out;
  std::string local_id = create_run();  // due after the docker run: claims take the oldest due first
  auto agent = start_agent("laptop", {});
  ASSERT_TRUE(wait_until([&] { return state_of(local_id) == "Success"; }, 60s))
      << state_of(local_id) << agent->output();
  EXPECT_EQ(state_of(docker_id), "Scheduled") << agent->output();
  auto inspect = sandbox_.culvert({"run", "inspect", docker_id}, api_env());
  EXPECT_NE(inspect.out.find("agent laptop launches local; run needs docker"), std::string::npos) << inspect.out;
  EXPECT_EQ(agent->output().find(docker_id), std::string::npos) << agent->output();  // never launched
}

TEST_F(LocalAgentE2E, KilledFlowProcessIsCrashedWithAReason) {
  auto agent = start_agent("a1", {});
  // Find the flow process by the pid it logged, and kill it hard.
  auto [id, pid] = start_long_run(*agent);
  ASSERT_GT(pid, 0) << "the long run never started: " << agent->output();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Crashed"; }, 3s)) << state_of(id);
  auto run = get_run(id);
  EXPECT_NE(run.value("state_message", "").find("signal 9"), std::string::npos) << run.dump();
}

TEST_F(LocalAgentE2E, KilledRunIsRunAgainWhenTheFlowAllowsRunRetries) {
  // Version 2 of the flow allows one run retry.
  auto env = api_env();
  env["E2E_RUN_RETRIES"] = "1";
  auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo",
                               "--storage", storage_}, env);
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto agent = start_agent("a1", {});
  fs::path marker = sandbox_.dir() / "marker-retry";
  fs::path once = sandbox_.dir() / "once-retry";
  std::string id = create_run({"--param", "sleep_ms=60000", "--param", "marker=" + marker.string(),
                               "--param", "once_marker=" + once.string()});
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Running" && fs::exists(once); }, 60s)) << state_of(id);
  pid_t pid = flow_pid(id);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  // The agent reports Crashed; the server schedules attempt 2, which finishes at once.
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Success"; }, 60s)) << state_of(id) << agent->output();
  std::string lines = read_file(marker);
  EXPECT_EQ(lines, id + "\n" + id + "\n");  // executed twice
  auto history = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                               server_->url() + "/api/v1/flow-runs/" + id + "/history"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  EXPECT_NE(history.out.find("killed by signal 9"), std::string::npos) << history.out;
  EXPECT_NE(history.out.find("rescheduled after a crash: attempt 2 of 2"), std::string::npos) << history.out;
}

// A task that fails once and then succeeds, under a real agent: the server keeps its
// Retrying state (the reason and the next attempt's start time) in the task runs'
// history, and `run inspect` shows it. The retry comes 200 ms after the failure, so the
// Retrying and the next states usually travel in one reporter batch.
TEST_F(LocalAgentE2E, TaskRetryReachesTheServerWithItsReasonAndNextStartTime) {
  auto agent = start_agent("a1", {});
  fs::path flaky = sandbox_.dir() / "flaky";
  std::string id = create_run({"--param", "flaky_marker=" + flaky.string()});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Success"; }, 60s)) << state_of(id) << agent->output();
  auto r = sandbox_.culvert({"run", "inspect", id, "--output", "json"}, api_env());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto doc = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  const json* work = nullptr;
  for (const auto& t : doc["task_runs"])
    if (t["task"] == "work") work = &t;
  ASSERT_NE(work, nullptr) << doc.dump();
  EXPECT_EQ((*work)["state"], "Success");
  EXPECT_EQ((*work)["attempts"], 2);
  EXPECT_TRUE((*work)["next_start_time"].is_null()) << work->dump();
  ASSERT_TRUE(doc.contains("task_run_history")) << doc.dump();
  ASSERT_EQ(doc["task_run_history"].size(), 1u) << doc.dump();
  const json& h = doc["task_run_history"][0];
  EXPECT_EQ(h["task"], "work");
  EXPECT_EQ(h["state"], "Retrying");
  EXPECT_EQ(h["message"], "503 from sensor API (retry 1/1 in 200ms)");
  EXPECT_EQ(h["attempts"], 1);
  EXPECT_EQ(h["run_attempt"], 1);
  auto at = parse_rfc3339(h.value("timestamp", ""));
  auto next = parse_rfc3339(h["next_start_time"].is_string() ? h["next_start_time"].get<std::string>() : "");
  ASSERT_TRUE(at && next) << h.dump();
  EXPECT_EQ(*next - *at, std::chrono::milliseconds(200));
  // The text form names the reason and the next start.
  auto text = sandbox_.culvert({"run", "inspect", id}, api_env());
  EXPECT_NE(text.out.find("503 from sensor API (retry 1/1 in 200ms)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(format_rfc3339(*next)), std::string::npos) << text.out;
}

// `culvert run retry` of a run that failed: the second attempt succeeds with its own
// start and end times (the first attempt's stay readable in `run inspect`), and the
// two attempts' log lines and task runs are told apart by their run attempt.
TEST_F(LocalAgentE2E, RetriedRunHasItsOwnTimesAndItsAttemptsLogsApart) {
  auto agent = start_agent("a1", {});
  fs::path fail_once = sandbox_.dir() / "fail-once";
  std::string id = create_run({"--param", "fail_marker=" + fail_once.string()});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Failed"; }, 60s)) << state_of(id) << agent->output();
  json first = get_run(id);
  ASSERT_EQ(first.value("run_count", 0), 1) << first.dump();
  auto retry = sandbox_.culvert({"run", "retry", id}, api_env());
  ASSERT_EQ(retry.exit_code, 0) << retry.out << retry.err;
  json second;
  ASSERT_TRUE(wait_until([&] {
    second = get_run(id);
    return second.value("state", "") == "Success";
  }, 60s)) << second.dump() << agent->output();
  EXPECT_EQ(second.value("run_count", 0), 2) << second.dump();

  auto time_of = [](const json& doc, const char* key) {
    return parse_rfc3339(doc.contains(key) && doc[key].is_string() ? doc[key].get<std::string>() : "");
  };
  auto start1 = time_of(first, "start_time"), end1 = time_of(first, "end_time");
  auto start2 = time_of(second, "start_time"), end2 = time_of(second, "end_time");
  ASSERT_TRUE(start1 && end1 && start2 && end2) << first.dump() << second.dump();
  EXPECT_GE(*start2, *end1) << "the run shows the second attempt's start, not the first's";
  EXPECT_GE(*end2, *start2);
  // Both attempts, each with its own times, state and agent.
  ASSERT_TRUE(second.contains("attempts") && second["attempts"].is_array()) << second.dump();
  const json& attempts = second["attempts"];
  ASSERT_EQ(attempts.size(), 2u) << attempts.dump();
  EXPECT_EQ(attempts[0]["attempt"], 1);
  EXPECT_EQ(attempts[0]["state"], "Failed");
  EXPECT_EQ(attempts[1]["attempt"], 2);
  EXPECT_EQ(attempts[1]["state"], "Success");
  EXPECT_EQ(attempts[0]["message"], first["state_message"]) << attempts.dump();
  EXPECT_EQ(time_of(attempts[0], "start_time"), start1);
  EXPECT_EQ(time_of(attempts[0], "end_time"), end1);
  EXPECT_EQ(time_of(attempts[1], "start_time"), start2);
  EXPECT_EQ(time_of(attempts[1], "end_time"), end2);
  for (const auto& a : attempts) EXPECT_EQ(a.value("agent_id", ""), second.value("agent_id", "x")) << a.dump();

  auto logs_of = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"get", "logs", id, "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = sandbox_.culvert(args, api_env());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() || !j.contains("logs") ? json::array() : j["logs"];
  };
  // Each attempt said hello once; only the second finished its work.
  std::map<int, int> hellos, done;
  for (const auto& l : logs_of({})) {
    ASSERT_TRUE(l.contains("run_attempt") && l["run_attempt"].is_number_integer()) << l.dump();
    const int at = l["run_attempt"].get<int>();
    const std::string m = l.value("message", "");
    if (m.find("hello from the e2e flow") != std::string::npos) ++hellos[at];
    if (m.find("work done") != std::string::npos) ++done[at];
  }
  EXPECT_EQ(hellos, (std::map<int, int>{{1, 1}, {2, 1}}));
  EXPECT_EQ(done, (std::map<int, int>{{2, 1}}));
  for (int attempt : {1, 2}) {
    json only = logs_of({"--attempt", std::to_string(attempt)});
    EXPECT_FALSE(only.empty()) << attempt;
    for (const auto& l : only) EXPECT_EQ(l.value("run_attempt", 0), attempt) << l.dump();
  }
  // The text form puts a line between the attempts.
  auto text = sandbox_.culvert({"get", "logs", id}, api_env());
  ASSERT_EQ(text.exit_code, 0) << text.err;
  const size_t hello1 = text.out.find("hello from the e2e flow"), sep = text.out.find("--- attempt 2 ---");
  ASSERT_NE(sep, std::string::npos) << text.out;
  EXPECT_LT(hello1, sep) << text.out;
  EXPECT_NE(text.out.find("hello from the e2e flow", sep), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("--- attempt 1 ---"), std::string::npos) << text.out;
  auto only2 = sandbox_.culvert({"get", "logs", id, "--attempt", "2"}, api_env());
  ASSERT_EQ(only2.exit_code, 0) << only2.err;
  EXPECT_EQ(only2.out.rfind("--- attempt 2 ---\n", 0), 0u) << only2.out;  // says which attempt it is
  EXPECT_EQ(only2.out.find("--- attempt 1 ---"), std::string::npos) << only2.out;
  EXPECT_NE(only2.out.find("work done"), std::string::npos) << only2.out;
  // The task runs are the second attempt's.
  ASSERT_TRUE(second.contains("task_runs") && !second["task_runs"].empty()) << second.dump();
  for (const auto& tr : second["task_runs"]) {
    EXPECT_EQ(tr.value("run_attempt", 0), 2) << tr.dump();
    EXPECT_EQ(tr.value("state", ""), "Success") << tr.dump();
  }
  // `run inspect` lists the attempts.
  auto inspect = sandbox_.culvert({"run", "inspect", id}, api_env());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("attempts:"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find(format_rfc3339(*start1)), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find(format_rfc3339(*end2)), std::string::npos) << inspect.out;
}

TEST_F(LocalAgentE2E, SilentRunIsMarkedCrashedByTheServerAfterMissedHeartbeats) {
  // Real seconds: runs heartbeat every second, the server allows 3 missed ones.
  auto agent = start_agent("a1", {});
  auto [id, pid] = start_long_run(*agent);
  ASSERT_GT(pid, 0) << "the long run never started: " << agent->output();
  // Freeze the flow process: it neither exits nor heartbeats, so only the server's
  // liveness service can notice.
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  EXPECT_TRUE(wait_until([&] { return state_of(id) == "Crashed"; }, 20s)) << state_of(id);
  auto run = get_run(id);
  EXPECT_NE(run.value("state_message", "").find("heartbeat"), std::string::npos) << run.dump();
  ::kill(pid, SIGKILL);
  ::kill(pid, SIGCONT);
}

TEST_F(LocalAgentE2E, ServerKilledMidRunAndRestartedLosesNothing) {
  auto agent = start_agent("a1", {});
  fs::path marker = sandbox_.dir() / "marker-restart";
  std::string id = create_run({"--param", "sleep_ms=2500", "--param", "marker=" + marker.string()});
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Running" && fs::exists(marker); }, 60s)) << state_of(id);
  std::string port = server_->url().substr(server_->url().rfind(':') + 1);
  server_->process().signal(SIGKILL);
  ASSERT_TRUE(server_->process().wait(10s).has_value());
  // Down for 6 s: the flow ends meanwhile, and its last heartbeat gets older than the
  // three heartbeats (1 s each) the server allows.
  std::this_thread::sleep_for(6s);
  server_ = std::make_unique<TestServer>(sandbox_, server_args(), "", "127.0.0.1:" + port);
  ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
  std::string state;
  ASSERT_TRUE(wait_until([&] {
    state = state_of(id);
    return state == "Success" || state == "Failed" || state == "Crashed" || state == "Cancelled";
  }, 60s)) << state;
  auto run = get_run(id);
  EXPECT_EQ(state, "Success") << run.dump() << "\n" << agent->output();
  ASSERT_TRUE(run.contains("task_runs")) << run.dump();
  EXPECT_EQ(run["task_runs"].size(), 2u) << run.dump();
  for (const auto& t : run["task_runs"]) EXPECT_EQ(t["state"], "Success") << t.dump();
  auto logs = sandbox_.culvert({"get", "logs", id}, api_env());
  EXPECT_NE(logs.out.find("work done after 2500 ms"), std::string::npos) << logs.out;
  EXPECT_EQ(read_file(marker), id + "\n");  // executed once
}

// A run whose log lines pass the server's per-run quota: the server refuses them (413),
// the flow process warns once and stops sending lines, and the run still succeeds with
// its task runs reported.
TEST_F(LocalAgentE2E, ARunPastTheServersLogQuotaStillSucceeds) {
  server_->stop();
  auto args = server_args();
  args.insert(args.end(), {"--max-log-bytes-per-run", "20000"});
  server_ = std::make_unique<TestServer>(sandbox_, args);
  ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
  auto agent = start_agent("a1", {});
  std::string id = create_run({"--param", "log_lines=300"});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Success"; }, 60s)) << state_of(id) << agent->output();
  auto run = get_run(id);
  ASSERT_EQ(run["task_runs"].size(), 2u) << run.dump();
  for (const auto& t : run["task_runs"]) EXPECT_EQ(t["state"], "Success") << t.dump();
  auto logs = sandbox_.culvert({"get", "logs", id, "-o", "json"}, api_env());
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  size_t bytes = 0;
  for (const auto& l : json::parse(logs.out)["logs"]) bytes += l["message"].get<std::string>().size();
  EXPECT_LE(bytes, 20000u);
  EXPECT_EQ(logs.out.find("log line 299"), std::string::npos);
  const std::string out = agent->output();
  const std::string warning = "the server refuses further log lines of this run: flow run " + id +
                              " has reached its log quota of 20000 bytes";
  auto at = out.find(warning);
  EXPECT_NE(at, std::string::npos) << out;
  if (at != std::string::npos) EXPECT_EQ(out.find(warning, at + 1), std::string::npos) << out;  // once
}

TEST_F(LocalAgentE2E, CancelStopsTheProcess) {
  auto agent = start_agent("a1", {});
  auto [id, pid] = start_long_run(*agent);
  ASSERT_GT(pid, 0) << "the long run never started: " << agent->output();
  auto c = sandbox_.culvert({"run", "cancel", id}, api_env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Cancelled"; }, 20s)) << state_of(id) << agent->output();
  ASSERT_TRUE(wait_until([&] { return ::kill(pid, 0) != 0; }, 20s)) << "flow process " << pid << " still alive";
}

TEST_F(LocalAgentE2E, ScheduledFlowIsRunByTheAgentWithoutAnyoneAsking) {
  fs::path marker = sandbox_.dir() / "scheduled";
  auto env = api_env();
  env["E2E_INTERVAL_SECONDS"] = "1";
  env["E2E_SCHEDULE_MARKER"] = marker.string();
  auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "sched",
                               "--storage", storage_, "--output", "json"}, env);
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  auto agent = start_agent("a1", {});
  auto count_lines = [&] {
    std::string s = read_file(marker);
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  };
  ASSERT_TRUE(wait_until([&] { return count_lines() >= 3; }, 60s)) << count_lines() << agent->output();
  // Those runs came from the schedule. (A run writes its marker line before it reports
  // Success: wait for the third to get there.)
  std::string listed;
  auto scheduled_successes = [&] {
    auto runs = sandbox_.culvert({"get", "runs", "--state", "Success", "--output", "json"}, api_env());
    listed = runs.out;
    auto j = json::parse(runs.out, nullptr, false);
    const json& arr = j.is_array() ? j : (j.is_object() && j.contains("runs") ? j["runs"] : json::array());
    int scheduled = 0;
    for (const auto& r : arr)
      if (r.value("auto_scheduled", false)) ++scheduled;
    return scheduled;
  };
  EXPECT_TRUE(wait_until([&] { return scheduled_successes() >= 3; }, 30s)) << listed;
  // Pausing the schedule stops new runs being created.
  auto flow = json::parse(reg.out);
  auto pause = sandbox_.culvert({"flow", "set-schedule", flow["id"].get<std::string>(), "--paused"}, api_env());
  EXPECT_EQ(pause.exit_code, 0) << pause.out << pause.err;
}

// Executing a run needs no time-zone database: a flow with a cron schedule in
// Europe/Berlin, run by an agent (and so `culvert execute` and the flow's `execute`) in a
// mount namespace whose /usr/share/zoneinfo is an empty folder, reaches Success. (The
// date library reads only that fixed folder; it has no TZDIR.) Registering it, where the
// zone is checked, happens outside, with the database.
TEST_F(LocalAgentE2E, ARunExecutesWithoutTheTimeZoneDatabase) {
  auto probe = sandbox_.run({"/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                             "mount -t tmpfs culvert-no-tz /usr/share/zoneinfo && test -z \"$(ls /usr/share/zoneinfo)\""});
  if (probe.exit_code != 0) GTEST_SKIP() << "cannot hide /usr/share/zoneinfo in a mount namespace (needs root): " << probe.err;
  auto env = api_env();
  env["E2E_CRON_ZONE"] = "Europe/Berlin";
  auto reg = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "tz",
                               "--storage", storage_, "--label", "no-tz", "--output", "json"}, env);
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  ASSERT_NE(reg.out.find("Europe/Berlin"), std::string::npos) << reg.out;
  // Without the database, describing the flow names what is missing.
  auto described = sandbox_.run({"/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                                 "mount -t tmpfs culvert-no-tz /usr/share/zoneinfo && exec \"$0\" describe",
                                 build_path("tests/e2e/e2e_flow")}, env);
  EXPECT_EQ(described.exit_code, 2) << described.out;
  EXPECT_NE(described.err.find("no time-zone database"), std::string::npos) << described.err;

  std::vector<std::string> argv = {"/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                                   "mount -t tmpfs culvert-no-tz /usr/share/zoneinfo && exec \"$@\"", "sh",
                                   culvert_binary(), "agent", "start", "--type", "local", "--name", "no-tz",
                                   "--label", "no-tz", "--env", "E2E_CRON_ZONE=Europe/Berlin"};
  Process agent(argv, sandbox_.env(api_env()), sandbox_.dir() / "no-tz.log");
  // Twice: the first run goes through `culvert execute`, the second starts the cached
  // artifact directly.
  for (int i = 0; i < 2; ++i) {
    auto run = sandbox_.culvert({"run", "e2e", "--project", "tz", "--watch"}, api_env(), 120s);
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err << "\nagent:\n" << agent.output();
    EXPECT_NE(run.out.find("Success"), std::string::npos) << run.out;
  }
}

TEST_F(LocalAgentE2E, TwoAgentsRunEveryRunExactlyOnce) {
  constexpr int kRuns = 500;
  fs::path marker = sandbox_.dir() / "executions";
  auto a1 = start_agent("twin-1", {"twin"}, 8);
  auto a2 = start_agent("twin-2", {"twin"}, 8);
  std::set<std::string> ids;
  // Create the runs through the API in one process to keep the test fast.
  std::ostringstream script;
  script << "for i in $(seq 1 " << kRuns << "); do curl -sf -X POST -H 'Authorization: Bearer "
         << server_->admin_token() << "' -H 'Content-Type: application/json' -d '{\"project\":\"demo\",\"flow\":\"e2e\","
         << "\"labels\":[\"twin\"],\"parameters\":{\"marker\":\"" << marker.string() << "\"}}' " << server_->url()
         << "/api/v1/flow-runs || exit 1; echo; done";
  auto created = sandbox_.run({"/bin/sh", "-c", script.str()}, {}, 300s);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::istringstream lines(created.out);
  for (std::string line; std::getline(lines, line);) {
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("id")) ids.insert(j["id"].get<std::string>());
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kRuns));
  auto count_lines = [&] {
    std::string s = read_file(marker);
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  };
  ASSERT_TRUE(wait_until([&] { return count_lines() >= kRuns; }, 600s)) << count_lines();
  // Let any duplicate execution surface before counting.
  ASSERT_TRUE(wait_until([&] {
    auto r = sandbox_.culvert({"get", "runs", "--state", "Success", "--limit", "1000", "--output", "json"}, api_env());
    auto j = json::parse(r.out, nullptr, false);
    const json& arr = j.is_array() ? j : (j.is_object() && j.contains("runs") ? j["runs"] : json::array());
    return arr.size() >= static_cast<size_t>(kRuns);
  }, 120s));
  std::string s = read_file(marker);
  std::istringstream in(s);
  std::map<std::string, int> executions;
  for (std::string id; std::getline(in, id);) executions[id]++;
  EXPECT_EQ(executions.size(), static_cast<size_t>(kRuns));
  for (const auto& [id, n] : executions) {
    EXPECT_EQ(n, 1) << "run " << id << " executed " << n << " times";
    EXPECT_TRUE(ids.count(id)) << "unknown run " << id;
  }
}

// A revoked token ends the agent with a clear message and status 1, instead of
// retrying forever.
TEST_F(LocalAgentE2E, AnAgentWhoseTokenIsRevokedExitsWithAClearMessage) {
  auto created = sandbox_.run({"/usr/bin/curl", "-sf", "-X", "POST", "-H",
                               "Authorization: Bearer " + server_->admin_token(), "-H",
                               "Content-Type: application/json", "-d", R"({"name":"doomed","scope":"runner"})",
                               server_->url() + "/api/v1/tokens"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto tok = json::parse(created.out, nullptr, false);
  ASSERT_TRUE(tok.is_object() && tok["token"].is_string() && tok["id"].is_string()) << created.out;
  std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "local", "--name", "doomed",
                                   "--heartbeat-seconds", "1"};
  auto env = sandbox_.env({{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", tok["token"].get<std::string>()}});
  Process agent(argv, env, sandbox_.dir() / "doomed.log");
  ASSERT_TRUE(wait_until([&] { return agent.output().find("registered as") != std::string::npos; }, 60s))
      << agent.output();
  auto revoked = sandbox_.run({"/usr/bin/curl", "-sf", "-X", "DELETE", "-H",
                               "Authorization: Bearer " + server_->admin_token(),
                               server_->url() + "/api/v1/tokens/" + tok["id"].get<std::string>()});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  auto code = agent.wait(60s);
  ASSERT_TRUE(code.has_value()) << "the agent kept running with a revoked token\n" << agent.output();
  EXPECT_EQ(*code, 1);
  EXPECT_NE(agent.output().find("refuses this agent's token"), std::string::npos) << agent.output();
}

}  // namespace
}  // namespace culvert::e2e

namespace culvert::e2e {
namespace {

TEST(AgentInstallService, WritesASystemdUnitThatStartsTheSameAgent) {
  Sandbox sandbox;
  fs::path dir = sandbox.dir() / "units";
  fs::create_directories(dir);
  auto r = sandbox.culvert({"agent", "install-service", "--type", "local", "--label", "dev", "--label",
                            "gpu box", "--name", "a1", "--max-concurrent", "3", "--user", "nobody",
                            "--workers", "5", "--run-output-dir", "/var/log/runs", "--output", dir.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string unit = read_file(dir / "culvert-agent.service");
  EXPECT_NE(unit.find("ExecStart=" + culvert_binary() +
                      " agent start --type local --label dev --label 'gpu box' --name a1 --max-concurrent 3"),
            std::string::npos)
      << unit;
  EXPECT_NE(unit.find("Restart=always"), std::string::npos);
  EXPECT_NE(unit.find("KillMode=process"), std::string::npos);
  EXPECT_NE(unit.find(" --workers 5"), std::string::npos) << unit;
  EXPECT_NE(unit.find(" --run-output-dir /var/log/runs"), std::string::npos) << unit;
  EXPECT_NE(unit.find("User=nobody"), std::string::npos);
  // The unit's HOME is the user's, from the password database, not the caller's.
  struct passwd* pw = ::getpwnam("nobody");
  ASSERT_NE(pw, nullptr);
  EXPECT_NE(unit.find(std::string("Environment=HOME=") + pw->pw_dir + "\n"), std::string::npos) << unit;
  EXPECT_EQ(unit.find("Environment=HOME=" + sandbox.home().string()), std::string::npos) << unit;
  EXPECT_EQ(sandbox.culvert({"agent", "install-service", "--user", "no-such-user-here"}).exit_code, 2);
  // Every launcher type's flags are re-emitted; another type's flag is refused.
  auto docker = sandbox.culvert({"agent", "install-service", "--type", "docker", "--docker-host", "/run/d.sock"});
  ASSERT_EQ(docker.exit_code, 0) << docker.err;
  EXPECT_NE(docker.out.find("agent start --type docker --max-concurrent 4 --docker-host /run/d.sock"),
            std::string::npos)
      << docker.out;
  auto wrong = sandbox.culvert({"agent", "install-service", "--type", "local", "--docker-host", "/run/d.sock"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("--docker-host is not a flag of --type local"), std::string::npos) << wrong.err;
  EXPECT_EQ(sandbox.culvert({"agent", "start", "--type", "kubernetes"}).exit_code, 2);
  // A unit of the user's own systemd (a Slurm login node): no User=, the default target.
  auto slurm = sandbox.culvert({"agent", "install-service", "--systemd-user", "--type", "slurm", "--partition",
                                "batch", "--sbatch-option", "--constraint=x"});
  ASSERT_EQ(slurm.exit_code, 0) << slurm.err;
  EXPECT_NE(slurm.out.find("agent start --type slurm --max-concurrent 4 --partition batch --sbatch-option "
                           "--constraint=x"),
            std::string::npos)
      << slurm.out;
  EXPECT_NE(slurm.out.find("WantedBy=default.target"), std::string::npos) << slurm.out;
  EXPECT_EQ(slurm.out.find("User="), std::string::npos) << slurm.out;
  EXPECT_EQ(slurm.out.find("network-online"), std::string::npos) << slurm.out;
  EXPECT_EQ(sandbox.culvert({"agent", "install-service", "--systemd-user", "--user", "nobody"}).exit_code, 2);
  // Repeatable flags are re-emitted once per value, switches without a value.
  auto ecs = sandbox.culvert({"agent", "install-service", "--type", "ecs", "--subnet", "subnet-a", "--subnet",
                              "subnet-b", "--assign-public-ip", "--cluster", "prod"});
  ASSERT_EQ(ecs.exit_code, 0) << ecs.err;
  EXPECT_NE(ecs.out.find("agent start --type ecs --max-concurrent 4 --assign-public-ip --cluster prod --subnet "
                         "subnet-a --subnet subnet-b"),
            std::string::npos)
      << ecs.out;
  EXPECT_NE(unit.find("WantedBy=multi-user.target"), std::string::npos);
  // Printed when no output is given; bad flags are bad usage.
  auto printed = sandbox.culvert({"agent", "install-service", "--label", "dev"});
  EXPECT_EQ(printed.exit_code, 0);
  EXPECT_NE(printed.out.find("[Service]"), std::string::npos);
  EXPECT_EQ(sandbox.culvert({"agent", "install-service", "--max-concurrent", "0"}).exit_code, 2);
}

}  // namespace
}  // namespace culvert::e2e
