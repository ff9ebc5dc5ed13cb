// Command-task logic against a fake ProcessLauncher on simulated time: the kill
// escalation (SIGTERM, then SIGKILL after the grace) without real processes or waits.
#include <culvert/culvert.hpp>

#include <gtest/gtest.h>

#include <signal.h>

#include <culvert/process.hpp>

namespace culvert {
namespace {

using namespace std::chrono_literals;

// A child that prints two lines, then runs until it gets a signal it does not ignore.
// Each read advances the simulated clock by 100 ms, as if output polling took time.
class FakeProcess final : public Process {
 public:
  FakeProcess(ManualClock& clock, bool ignore_term, std::vector<int>& signals)
      : clock_(clock), ignore_term_(ignore_term), signals_(signals) {}
  int pid() const override { return 4242; }
  bool read_output(int, const std::function<void(bool, std::string_view)>& on_line) override {
    if (!printed_) {
      on_line(false, "starting");
      on_line(true, "a warning");
      printed_ = true;
    }
    clock_.advance(100ms);
    return dead_;
  }
  bool try_wait(int* status) override {
    if (dead_) *status = status_;
    return dead_;
  }
  void signal_group(int sig) override {
    signals_.push_back(sig);
    if (sig == SIGKILL || (sig == SIGTERM && !ignore_term_)) {
      dead_ = true;
      status_ = 128 + sig;
    }
  }
  void flush(const std::function<void(bool, std::string_view)>&) override {}

 private:
  ManualClock& clock_;
  bool ignore_term_;
  std::vector<int>& signals_;
  bool printed_ = false;
  bool dead_ = false;
  int status_ = 0;
};

class FakeLauncher final : public ProcessLauncher {
 public:
  FakeLauncher(ManualClock& clock, bool ignore_term) : clock_(clock), ignore_term_(ignore_term) {}
  Result<std::unique_ptr<Process>> spawn(const ProcessSpec& spec) override {
    specs.push_back(spec);
    return std::unique_ptr<Process>(std::make_unique<FakeProcess>(clock_, ignore_term_, signals));
  }
  std::vector<ProcessSpec> specs;
  std::vector<int> signals;

 private:
  ManualClock& clock_;
  bool ignore_term_;
};

class Lines final : public RunObserver {
 public:
  void on_log(const LogEvent& ev) override { lines.push_back(std::string(log_level_name(ev.level)) + " " + std::string(ev.message)); }
  std::vector<std::string> lines;
};

TEST(FakeCommandTask, TimeoutSendsTermThenKillAfterGrace) {
  ManualClock clock;
  FakeLauncher launcher(clock, /*ignore_term=*/true);
  Flow flow("fake");
  flow.shell("stubborn", "anything").env("A", "1").timeout(2s).kill_grace(1s);
  Lines lines;
  Executor ex;
  auto r = ex.run(flow, {.clock = &clock, .observers = {&lines}, .process_launcher = &launcher});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("stubborn")->state, State::kTimedOut);
  EXPECT_EQ(launcher.signals, (std::vector<int>{SIGTERM, SIGKILL, SIGKILL}));
  ASSERT_EQ(launcher.specs.size(), 1u);
  EXPECT_EQ(launcher.specs[0].command, "anything");
  EXPECT_EQ(launcher.specs[0].env.at("A"), "1");
  EXPECT_EQ(launcher.specs[0].env.at("CULVERT_TASK_NAME"), "stubborn");
  EXPECT_EQ(lines.lines[0], "INFO starting");
  EXPECT_EQ(lines.lines[1], "WARNING a warning");
  // SIGKILL came one grace period after SIGTERM (plus one 100 ms output poll).
  EXPECT_GE(r->find("stubborn")->duration_ms, 3000);
  EXPECT_LE(r->find("stubborn")->duration_ms, 3100);
}

TEST(FakeCommandTask, TermIsEnoughForAWellBehavedChild) {
  ManualClock clock;
  FakeLauncher launcher(clock, /*ignore_term=*/false);
  Flow flow("fake");
  flow.shell("polite", "anything").timeout(1s);
  Executor ex;
  auto r = ex.run(flow, {.clock = &clock, .process_launcher = &launcher});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("polite")->state, State::kTimedOut);
  EXPECT_EQ(launcher.signals, (std::vector<int>{SIGTERM, SIGKILL}));  // TERM, then the group sweep
}

}  // namespace
}  // namespace culvert
