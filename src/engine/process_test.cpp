// Command tasks against real processes (e2e): output capture, environment, working
// directory, exit status, and killing the whole process group on timeout and cancel.
#include <culvert/culvert.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <signal.h>
#include <thread>

#include "core/crypto.hpp"

namespace culvert {
namespace {

using namespace std::chrono_literals;

class Logs final : public RunObserver {
 public:
  void on_log(const LogEvent& ev) override {
    std::lock_guard lk(mu);
    lines.push_back(std::string(log_level_name(ev.level)) + " " + std::string(ev.message));
    cv.notify_all();
  }
  // The first INFO line that is a number (a pid printed by the command).
  int wait_for_pid() {
    std::unique_lock lk(mu);
    int pid = 0;
    cv.wait(lk, [&] {
      for (const auto& l : lines)
        if (l.starts_with("INFO ") && l.size() > 5 && std::isdigit(static_cast<unsigned char>(l[5]))) {
          pid = std::stoi(l.substr(5));
          return true;
        }
      return false;
    });
    return pid;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> lines;
};

// True while `pid` is a live (non-zombie) process.
bool alive(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string all;
  std::getline(stat, all);
  size_t close = all.rfind(')');
  return close != std::string::npos && close + 2 < all.size() && all[close + 2] != 'Z';
}

// Signal delivery is asynchronous: a SIGKILLed process may still be on its way out when
// kill() returns. Waits (bounded) until `pid` is gone or a zombie.
bool gone(int pid) {
  for (int i = 0; i < 500; ++i) {
    if (!alive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(CommandTask, CapturesOutputEnvAndWorkingDir) {
  auto dir = std::filesystem::temp_directory_path() / ("culvert-sh-" + new_uuid());
  std::filesystem::create_directories(dir);
  Flow flow("shell");
  flow.shell("hello", "echo out-line; echo err-line >&2; printf 'no newline'; echo \"$GREETING $CULVERT_TASK_NAME\" >&2; pwd")
      .env("GREETING", "hi")
      .working_dir(dir.string());
  Logs logs;
  Executor ex;
  auto r = ex.run(flow, {.observers = {&logs}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess) << r->to_text();
  std::sort(logs.lines.begin(), logs.lines.end());
  std::vector<std::string> expected = {"INFO no newline" + dir.string(), "INFO out-line", "WARNING err-line",
                                       "WARNING hi hello"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(logs.lines, expected);
  std::filesystem::remove_all(dir);
}

// A command task sees the run's parameter values (defaults included) as
// CULVERT_PARAM_<name>, each exactly as given: the shell does not parse a value.
TEST(CommandTask, SeesTheRunsParametersAsEnvironmentVariables) {
  Flow flow("params");
  flow.parameter<std::string>("day");
  flow.parameter<int>("rows", 7);
  flow.shell("show", "printf '%s|%s\\n' \"$CULVERT_PARAM_day\" \"$CULVERT_PARAM_rows\"");
  Logs logs;
  Executor ex;
  const std::string hostile = "mon; echo injected $(id) `id` > /dev/null \"'";
  auto r = ex.run(flow, {.parameters = {{"day", hostile}}, .observers = {&logs}});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->state, State::kSuccess) << r->to_text();
  ASSERT_EQ(logs.lines.size(), 1u);
  EXPECT_EQ(logs.lines[0], "INFO " + hostile + "|7");
}

TEST(CommandTask, ExitStatusDecidesStateAndRetries) {
  Flow flow("exit");
  std::vector<int> codes;
  flow.shell("fails", "exit 3").retries(1).retry_on([&](const TaskFailure& f) {
    codes.push_back(f.exit_code);
    return true;
  });
  flow.shell("bad-dir", "true").working_dir("/nonexistent/dir");
  Executor ex;
  auto r = ex.run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("fails")->state, State::kFailed);
  EXPECT_EQ(r->find("fails")->attempts, 2);
  EXPECT_EQ(r->find("fails")->message, "command exited with status 3");
  EXPECT_EQ(codes, (std::vector<int>{3}));
  EXPECT_EQ(r->find("bad-dir")->state, State::kFailed);
  EXPECT_NE(r->find("bad-dir")->message.find("/nonexistent/dir"), std::string::npos);
}

TEST(CommandTask, TimeoutKillsTheWholeProcessGroup) {
  Flow flow("timeout");
  flow.shell("sleepy", "sleep 60 & echo $!; wait").timeout(1s);
  Logs logs;
  Executor ex(2);
  auto r = ex.run(flow, {.observers = {&logs}});
  ASSERT_TRUE(r);
  const auto* t = r->find("sleepy");
  EXPECT_EQ(t->state, State::kTimedOut);
  EXPECT_EQ(t->message, "timed out after 1s: process group killed");
  EXPECT_GE(t->duration_ms, 1000);
  EXPECT_LE(t->duration_ms, 2000);  // killed within a second of its limit
  int pid = logs.wait_for_pid();
  EXPECT_TRUE(gone(pid)) << "sleep " << pid << " survived";
  EXPECT_EQ(r->state, State::kFailed);
}

TEST(CommandTask, TermIgnoredThenKilledAfterGrace) {
  Flow flow("grace");
  flow.shell("stubborn", "trap '' TERM; sleep 60 & echo $!; wait").timeout(500ms).kill_grace(300ms);
  Logs logs;
  Executor ex;
  auto r = ex.run(flow, {.observers = {&logs}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("stubborn")->state, State::kTimedOut);
  int pid = logs.wait_for_pid();
  EXPECT_TRUE(gone(pid));
}

TEST(CommandTask, CancellationKillsRunningCommand) {
  Flow flow("cancel");
  flow.shell("sleepy", "sleep 60 & echo $!; wait");
  Logs logs;
  CancellationSource source;
  Executor ex(2);
  std::thread canceller([&] {
    logs.wait_for_pid();  // the command is running
    source.cancel();
  });
  auto r = ex.run(flow, {.observers = {&logs}, .cancel = &source});
  canceller.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kCancelled);
  EXPECT_EQ(r->find("sleepy")->state, State::kCancelled);
  EXPECT_TRUE(gone(logs.wait_for_pid()));
}

}  // namespace
}  // namespace culvert
