// Builds on the example binaries (build/examples/): runs them as a user would and
// checks their JSON summaries, exit statuses and side effects, including failure paths.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fcntl.h>
#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

using json = nlohmann::json;

namespace {

const std::string kBin = std::string(CULVERT_BINARY_DIR) + "/examples/";

struct Outcome {
  int exit_code = -1;
  std::string out;
};

// Runs a shell command line; stdout captured, stderr to `err_file` when given.
Outcome sh(const std::string& cmd) {
  Outcome o;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  int st = ::pclose(p);
  o.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

json run_json(const std::string& cmd, int expected_exit) {
  Outcome o = sh(cmd + " 2>/dev/null");
  EXPECT_EQ(o.exit_code, expected_exit) << cmd << "\n" << o.out;
  json j = json::parse(o.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not one JSON document: " << o.out;
  return j;
}

const json* task_run(const json& summary, const std::string& task, int map_index = -1) {
  for (const auto& t : summary["task_runs"])
    if (t["task"] == task && t["map_index"] == map_index) return &t;
  ADD_FAILURE() << "no task run " << task << "[" << map_index << "]";
  static const json none = json::object();
  return &none;
}

bool alive(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string all;
  std::getline(stat, all);
  size_t close = all.rfind(')');
  return close != std::string::npos && close + 2 < all.size() && all[close + 2] != 'Z';
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/culvert-examples-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

// Signal delivery is asynchronous: a SIGKILLed process may still be on its way out when
// kill() returns. Waits (bounded) until `pid` is gone or a zombie.
bool gone(int pid) {
  for (int i = 0; i < 500; ++i) {
    if (!alive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(Examples, EtlRunsAndDescribes) {
  TempDir dir;
  json s = run_json("CULVERT_CACHE_URI=file://" + dir.path + " " + kBin + "etl run --param rows=5 --output json", 0);
  EXPECT_EQ(s["flow"], "etl");
  EXPECT_EQ(s["state"], "Success");
  ASSERT_EQ(s["task_runs"].size(), 4u);
  for (const auto& t : s["task_runs"]) {
    EXPECT_EQ(t["map_index"], -1);
    EXPECT_EQ(t["state"], "Success");
    EXPECT_EQ(t["attempts"], 1);
    EXPECT_TRUE(t["duration_ms"].is_number_integer());
    EXPECT_TRUE(t["message"].is_string());
  }
  json d = json::parse(sh(kBin + "etl describe").out);
  EXPECT_EQ(d["name"], "etl");
  // What a local agent labelled dev runs; the storage is named when registering.
  EXPECT_EQ(d["run_config"]["type"], "local");
  EXPECT_EQ(d["labels"], json::array({"dev"}));
  EXPECT_TRUE(d["storage"].is_null());
  EXPECT_EQ(d["schedule"]["cron"], "0 6 * * *");
  EXPECT_EQ(d["parameters"][0]["default"], 1000);
  Outcome dot = sh(kBin + "etl graph --dot");
  EXPECT_EQ(dot.exit_code, 0);
  EXPECT_NE(dot.out.find("\"extract\" -> \"transform\";"), std::string::npos);
}

TEST(Examples, BadUsageExitsTwo) {
  for (const char* args : {"bogus", "run --bogus", "run --param fail=maybe", "run --param nosuch=1",
                           "run --param novalue", "run --workers x", "run --output yaml", "graph --svg", ""}) {
    Outcome o = sh(kBin + "triggers " + args + " 2>&1");
    EXPECT_EQ(o.exit_code, 2) << args << ": " << o.out;
    EXPECT_FALSE(o.out.empty()) << args;
  }
}

TEST(Examples, TaskFailsTwiceThenSucceeds) {
  json s = run_json(kBin + "retries run --output json", 0);
  EXPECT_EQ(s["state"], "Success");
  EXPECT_EQ((*task_run(s, "flaky"))["attempts"], 3);
  EXPECT_EQ((*task_run(s, "flaky"))["state"], "Success");
  json f = run_json(kBin + "retries run --param failures=5 --output json", 1);
  EXPECT_EQ(f["state"], "Failed");
  EXPECT_EQ((*task_run(f, "flaky"))["attempts"], 4);
  EXPECT_EQ((*task_run(f, "report"))["state"], "TriggerFailed");
}

TEST(Examples, TimeoutKillsSleepWithinASecond) {
  TempDir dir;
  std::string err = dir.path + "/stderr";
  Outcome o = sh("SLEEP_SECONDS=60 TIMEOUT_SECONDS=1 " + kBin + "commands run --output json 2>" + err);
  EXPECT_EQ(o.exit_code, 0);  // "always" is the reference task
  json s = json::parse(o.out);
  const json& slow = *task_run(s, "slow");
  EXPECT_EQ(slow["state"], "TimedOut");
  EXPECT_GE(slow["duration_ms"].get<int>(), 1000);
  EXPECT_LE(slow["duration_ms"].get<int>(), 2000);
  EXPECT_EQ((*task_run(s, "fails"))["state"], "Failed");
  EXPECT_EQ((*task_run(s, "fails"))["message"], "command exited with status 4");
  EXPECT_EQ((*task_run(s, "hello"))["state"], "Success");
  // The sleep's pid is logged by the command; it must be gone.
  std::ifstream in(err);
  std::string line;
  int pid = 0;
  while (std::getline(in, line)) {
    auto at = line.find(" slow INFO ");
    if (at != std::string::npos) pid = std::stoi(line.substr(at + 11));
  }
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(gone(pid));
}

TEST(Examples, StubbornCppTaskIsAbandonedAfterTheGrace) {
  // "stubborn" sleeps an hour ignoring its token: the run reports it TimedOut after
  // timeout + grace (800 ms) and the process exits without waiting for it.
  json s = run_json(kBin + "timeouts run --output json", 0);
  EXPECT_EQ(s["state"], "Success");  // "cleanup" is the reference task
  const json& stubborn = *task_run(s, "stubborn");
  EXPECT_EQ(stubborn["state"], "TimedOut");
  EXPECT_NE(stubborn["message"].get<std::string>().find("abandoned"), std::string::npos) << stubborn;
  EXPECT_GE(stubborn["duration_ms"].get<int>(), 800);
  EXPECT_EQ((*task_run(s, "polite"))["state"], "TimedOut");
  EXPECT_EQ((*task_run(s, "cleanup"))["state"], "Success");
  json ok = run_json(kBin + "timeouts run --param hang_s=0 --output json", 0);
  EXPECT_EQ((*task_run(ok, "stubborn"))["state"], "Success");
}

TEST(Examples, TriggersAfterFailureAndReferenceTask) {
  json ok = run_json(kBin + "triggers run --output json", 0);
  EXPECT_EQ(ok["state"], "Success");
  EXPECT_EQ((*task_run(ok, "notify"))["state"], "Skipped");
  json f = run_json(kBin + "triggers run --param fail=true --output json --workers 2", 1);
  EXPECT_EQ(f["state"], "Failed");
  EXPECT_EQ((*task_run(f, "work"))["state"], "Failed");
  EXPECT_EQ((*task_run(f, "downstream"))["state"], "TriggerFailed");
  EXPECT_EQ((*task_run(f, "cleanup"))["state"], "Success");
  EXPECT_EQ((*task_run(f, "notify"))["state"], "Success");
}

TEST(Examples, MappingWithFailureAndAtScale) {
  json f = run_json(kBin + "mapping run --param n=3 --param fail_at=1 --output json", 1);
  EXPECT_EQ((*task_run(f, "measure", 1))["state"], "Failed");
  EXPECT_EQ((*task_run(f, "measure", 2))["state"], "Success");
  EXPECT_EQ((*task_run(f, "total"))["state"], "TriggerFailed");
  json s = run_json(kBin + "mapping run --param n=1000 --workers 2 --output json", 0);
  EXPECT_EQ(s["task_runs"].size(), 1002u);
  EXPECT_EQ(s["state"], "Success");
}

TEST(Examples, CachingSecondRunIsCached) {
  TempDir dir;
  std::string env = "CACHING_STORE=file://" + dir.path + " ";
  json a = run_json(env + kBin + "caching run --output json", 0);
  EXPECT_EQ((*task_run(a, "squares"))["state"], "Success");
  json b = run_json(env + kBin + "caching run --output json", 0);
  EXPECT_EQ((*task_run(b, "squares"))["state"], "Cached");
  EXPECT_EQ((*task_run(b, "report"))["state"], "Cached");
  json c = run_json(env + kBin + "caching run --param n=11 --output json", 0);
  EXPECT_EQ((*task_run(c, "squares"))["state"], "Success");  // other input
  std::string results = dir.path + "/results/" + a["flow_run_id"].get<std::string>() + "/squares";
  EXPECT_TRUE(std::filesystem::exists(results)) << results;
}

TEST(Examples, SigintCancelsTheRun) {
  TempDir dir;
  std::string out_file = dir.path + "/out.json";
  int err_pipe[2];
  ASSERT_EQ(::pipe(err_pipe), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawn_file_actions_addclose(&fa, err_pipe[0]);
  std::string bin = kBin + "cancel";
  std::vector<std::string> args = {bin, "run", "--workers", "2", "--output", "json"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(err_pipe[1]);
  FILE* err = ::fdopen(err_pipe[0], "r");
  char line[4096];
  bool waiting = false;
  int sleep_pid = 0;
  std::string all;
  // Wait (on the child's own output) until both tasks are running.
  while ((!waiting || sleep_pid == 0) && std::fgets(line, sizeof line, err) != nullptr) {
    std::string l(line);
    all += l;
    if (l.find("waiting for cancellation") != std::string::npos) waiting = true;
    auto at = l.find(" sleeper INFO ");
    if (at != std::string::npos) sleep_pid = std::stoi(l.substr(at + 14));
  }
  ASSERT_TRUE(waiting && sleep_pid > 0) << all;
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  while (std::fgets(line, sizeof line, err) != nullptr) all += line;
  std::fclose(err);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << all;
  EXPECT_EQ(WEXITSTATUS(st), 1);
  std::ifstream in(out_file);
  json s = json::parse(in);
  EXPECT_EQ(s["state"], "Cancelled");
  EXPECT_EQ((*task_run(s, "sleeper"))["state"], "Cancelled");
  EXPECT_EQ((*task_run(s, "waiter"))["state"], "Cancelled");
  EXPECT_TRUE(gone(sleep_pid));
  EXPECT_NE(all.find("received SIGINT"), std::string::npos);
}

}  // namespace
