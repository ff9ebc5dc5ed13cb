#include <culvert/culvert.hpp>
#include <culvert/json.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <numeric>
#include <mutex>
#include <thread>

#include "core/crypto.hpp"

namespace culvert {
namespace {

using namespace std::chrono_literals;

// Records every event (thread-safe).
class Recorder final : public RunObserver {
 public:
  void on_task_run(const TaskRunEvent& ev) override {
    std::lock_guard lk(mu);
    events.push_back({std::string(ev.task), ev.map_index, ev.state, ev.attempt, std::string(ev.message), ev.timestamp});
  }
  void on_log(const LogEvent& ev) override {
    std::lock_guard lk(mu);
    logs.push_back(std::string(ev.task) + ":" + log_level_name(ev.level) + ":" + std::string(ev.message));
  }
  void on_flow_run(const FlowRunEvent& ev) override {
    std::lock_guard lk(mu);
    flow_states.push_back(ev.state);
  }
  struct Ev {
    std::string task;
    int map_index;
    State state;
    int attempt;
    std::string message;
    SysTime at;
  };
  std::vector<State> states_of(const std::string& task, int map_index = -1) {
    std::lock_guard lk(mu);
    std::vector<State> out;
    for (const auto& e : events)
      if (e.task == task && e.map_index == map_index) out.push_back(e.state);
    return out;
  }
  std::mutex mu;
  std::vector<Ev> events;
  std::vector<std::string> logs;
  std::vector<State> flow_states;
};

// Every test runs with the sequential executor and with a pool of 2 and 4 workers.
class ExecutorTest : public ::testing::TestWithParam<int> {
 protected:
  Result<RunResult> run(const Flow& flow, RunOptions opts = {}) {
    if (opts.clock == nullptr) opts.clock = &clock;
    if (opts.random == nullptr) opts.random = &random;
    opts.observers.push_back(&rec);
    Executor ex(GetParam());
    return ex.run(flow, opts);
  }
  ManualClock clock;
  SeededRandom random{42};
  Recorder rec;
};

INSTANTIATE_TEST_SUITE_P(Workers, ExecutorTest, ::testing::Values(1, 2, 4));

TEST_P(ExecutorTest, TypedTasksPassValues) {
  Flow flow("typed");
  auto n = flow.parameter<int>("n", 4);
  auto word = flow.parameter<std::string>("word", "ab");
  auto nums = flow.task("nums", [](int k) {
    std::vector<int> v;
    for (int i = 1; i <= k; ++i) v.push_back(i);
    return v;
  }, n);
  auto sum = flow.task("sum", [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }, nums);
  auto label = flow.task("label", [](int s, const std::string& w) { return w + std::to_string(s); }, sum, word);
  auto r = run(flow, {.parameters = {{"n", "5"}}});
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->state, State::kSuccess);
  ASSERT_NE(r->value(sum), nullptr);
  EXPECT_EQ(*r->value(sum), 15);
  EXPECT_EQ(*r->value(label), "ab15");
  ASSERT_EQ(r->task_runs.size(), 3u);
  EXPECT_EQ(r->task_runs[0].task, "nums");
  EXPECT_EQ(r->task_runs[0].attempts, 1);
  EXPECT_EQ(rec.flow_states, (std::vector<State>{State::kRunning, State::kSuccess}));
}

TEST_P(ExecutorTest, OrderingDependencyWithAfter) {
  Flow flow("order");
  std::mutex mu;
  std::vector<std::string> order;
  auto note = [&](const char* s) { std::lock_guard lk(mu); order.push_back(s); };
  auto a = flow.task("a", [&] { note("a"); });
  auto b = flow.task("b", [&] { note("b"); }).after(a);
  flow.task("c", [&] { note("c"); }).after(a, b);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r->state, State::kSuccess);
}

TEST_P(ExecutorTest, ParameterErrors) {
  Flow flow("params");
  auto day = flow.parameter<std::string>("day");
  auto n = flow.parameter<int>("n", 1);
  auto f = flow.parameter<double>("f", 0.5);
  auto b = flow.parameter<bool>("b", false);
  flow.task("t", [](const std::string&, int, double, bool) {}, day, n, f, b);
  auto missing = run(flow);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("missing required parameter 'day'"), std::string::npos);
  auto bad = run(flow, {.parameters = {{"day", "x"}, {"n", "12a"}}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("parameter 'n' expects an int, got '12a'"), std::string::npos);
  auto bad_bool = run(flow, {.parameters = {{"day", "x"}, {"b", "maybe"}}});
  ASSERT_FALSE(bad_bool);
  EXPECT_NE(bad_bool.status().message().find("'b' expects a bool"), std::string::npos);
  auto unknown = run(flow, {.parameters = {{"day", "x"}, {"nope", "1"}}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.status().message().find("unknown parameter 'nope'"), std::string::npos);
  auto ok = run(flow, {.parameters = {{"day", "mon"}, {"f", "2.25"}, {"b", "true"}}});
  ASSERT_TRUE(ok) << ok.status().to_string();
  EXPECT_EQ(ok->state, State::kSuccess);
}

TEST_P(ExecutorTest, RetriesFailTwiceThenSucceedWithBackoffOnSimulatedTime) {
  Flow flow("retry");
  std::atomic<int> calls{0};
  std::vector<SteadyTime> at;
  std::mutex mu;
  flow.task("flaky", [&](TaskContext& ctx) {
        {
          std::lock_guard lk(mu);
          at.push_back(ctx.clock().steady_now());
        }
        if (++calls < 3) throw std::runtime_error("boom " + std::to_string(calls.load()));
        return 7;
      })
      .retries(3, 10s)
      .retry_backoff(2.0, 15s);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess);
  EXPECT_EQ(r->task_runs[0].attempts, 3);
  ASSERT_EQ(at.size(), 3u);
  EXPECT_EQ(at[1] - at[0], std::chrono::seconds(10));
  EXPECT_EQ(at[2] - at[1], std::chrono::seconds(15));  // 20 s capped at 15 s
  EXPECT_EQ(rec.states_of("flaky"), (std::vector<State>{State::kRunning, State::kRetrying, State::kRunning,
                                                        State::kRetrying, State::kRunning, State::kSuccess}));
  EXPECT_EQ(r->task_runs[0].duration_ms, 25000);
}

TEST_P(ExecutorTest, RetriesExhaustedAndRetryOnPredicate) {
  Flow flow("retry2");
  std::atomic<int> a{0}, b{0};
  flow.task("always", [&]() -> int { ++a; throw std::runtime_error("nope"); }).retries(2, 1s);
  flow.task("fatal", [&]() -> int { ++b; throw std::invalid_argument("fatal: bad config"); })
      .retries(5, 1s)
      .retry_on([](const TaskFailure& f) { return f.message.find("fatal") == std::string::npos; });
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kFailed);
  EXPECT_EQ(a.load(), 3);
  EXPECT_EQ(b.load(), 1);
  EXPECT_EQ(r->find("always")->attempts, 3);
  EXPECT_EQ(r->find("always")->message, "nope");
  EXPECT_EQ(r->find("fatal")->attempts, 1);
}

TEST_P(ExecutorTest, JitterIsDeterministicWithSeededRandom) {
  auto delays = [&](uint64_t seed) {
    Flow flow("jitter");
    std::vector<SteadyTime> at;
    flow.task("j", [&](TaskContext& ctx) {
          at.push_back(ctx.clock().steady_now());
          if (at.size() < 4) throw std::runtime_error("x");
        })
        .retries(3, 1000ms)
        .retry_jitter(0.5);
    ManualClock c;
    SeededRandom rnd(seed);
    Executor ex(GetParam());
    auto r = ex.run(flow, {.clock = &c, .random = &rnd});
    EXPECT_TRUE(r && r->state == State::kSuccess);
    std::vector<int64_t> d;
    for (size_t i = 1; i < at.size(); ++i)
      d.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(at[i] - at[i - 1]).count());
    return d;
  };
  auto d1 = delays(1), d2 = delays(1), d3 = delays(2);
  ASSERT_EQ(d1.size(), 3u);
  EXPECT_EQ(d1, d2);
  EXPECT_NE(d1, d3);
  for (auto ms : d1) {
    EXPECT_GT(ms, 500);
    EXPECT_LE(ms, 1000);
  }
}

TEST_P(ExecutorTest, CppTaskTimeoutUsesTokenAndSimulatedTime) {
  Flow flow("timeout");
  flow.task("slow", [](TaskContext& ctx) {
        while (!ctx.cancelled()) {
          ctx.clock().sleep_for(100ms);  // simulated work
          std::this_thread::sleep_for(1ms);  // leaves "fast" its turn on the shared clock
        }
        return 1;
      })
      .timeout(2s);
  flow.task("fast", [] { return 2; }).timeout(2s);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("slow")->state, State::kTimedOut);
  EXPECT_EQ(r->find("slow")->message, "timed out after 2s");
  EXPECT_EQ(r->find("fast")->state, State::kSuccess);
  EXPECT_EQ(r->state, State::kFailed);
}

// A task that ignores its token is reported TimedOut once the grace has passed, while
// it still runs; the run goes on without it, and what it does afterwards (log lines, its
// result) is dropped.
TEST_P(ExecutorTest, TaskIgnoringItsTokenIsAbandonedAfterTheGrace) {
  Flow flow("stubborn");
  std::atomic<bool> release{false}, exited{false}, saw_cancel{false};
  auto stubborn = flow.task("stubborn", [&](TaskContext& ctx, int x) {
                        while (!release.load()) {
                          ctx.clock().sleep_for(100ms);  // simulated work that never checks the token
                          std::this_thread::sleep_for(1ms);
                        }
                        saw_cancel = ctx.cancelled();
                        ctx.info("after the grace");  // dropped: the attempt was given up
                        exited = true;
                        return x + 1;
                      }, flow.task("seed", [] { return 41; }))
                      .timeout(2s)
                      .grace(1s);
  flow.task("after", [] { return 0; }).after(stubborn).trigger(Trigger::kAllFinished);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_FALSE(exited.load());  // the run ended while the task still ran
  EXPECT_EQ(r->find("stubborn")->state, State::kTimedOut);
  EXPECT_EQ(r->find("stubborn")->message,
            "timed out after 2s: the task ignored its cancellation for the grace period of 1s and was abandoned "
            "(its thread runs on; its result will be dropped)");
  EXPECT_EQ(r->find("after")->state, State::kSuccess);
  EXPECT_EQ(r->state, State::kSuccess);  // "after" is the terminal task
  release = true;
  while (!exited.load()) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(saw_cancel.load());
  std::lock_guard lk(rec.mu);  // the log call came before `exited`
  for (const auto& l : rec.logs) EXPECT_EQ(l.find("after the grace"), std::string::npos) << l;
}

// A timed task that returns in time keeps its result and its log lines (it ran on a
// thread of its own with copies of its inputs), for plain and mapped tasks.
TEST_P(ExecutorTest, TimedTasksKeepResultsAndLogs) {
  Flow flow("timed");
  auto xs = flow.task("xs", [] { return std::vector<int>{1, 2, 3}; });
  auto doubled = flow.map("double", [](TaskContext& ctx, int x) {
                       ctx.info("doubling " + std::to_string(x) + " in " + ctx.task_name());
                       return 2 * x;
                     }, xs)
                     .timeout(10s);
  auto total = flow.task("sum", [](TaskContext& ctx, const std::vector<int>& v) {
                     ctx.info("param day=" + ctx.parameter("day"));
                     int s = 0;
                     for (int x : v) s += x;
                     return s;
                   }, doubled)
                   .timeout(10s);
  auto day = flow.parameter<std::string>("day", "mon");
  (void)day;
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess);
  ASSERT_NE(r->value(total), nullptr);
  EXPECT_EQ(*r->value(total), 12);
  std::lock_guard lk(rec.mu);
  EXPECT_NE(std::find(rec.logs.begin(), rec.logs.end(), "double:INFO:doubling 3 in double"), rec.logs.end());
  EXPECT_NE(std::find(rec.logs.begin(), rec.logs.end(), "sum:INFO:param day=mon"), rec.logs.end());
}

TEST_P(ExecutorTest, TimedOutTaskIsRetried) {
  Flow flow("timeout-retry");
  std::atomic<int> calls{0};
  flow.task("slow-once", [&](TaskContext& ctx) {
        if (++calls == 1)
          while (!ctx.cancelled()) ctx.clock().sleep_for(1s);
      })
      .timeout(5s)
      .retries(1);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("slow-once")->state, State::kSuccess);
  EXPECT_EQ(r->find("slow-once")->attempts, 2);
}

struct TriggerCase {
  Trigger trigger;
  bool a_fails, b_fails;
  State expected;
};

TEST_P(ExecutorTest, TriggersTable) {
  const TriggerCase cases[] = {
      {Trigger::kAllSuccessful, false, false, State::kSuccess},
      {Trigger::kAllSuccessful, true, false, State::kTriggerFailed},
      {Trigger::kAllFinished, true, true, State::kSuccess},
      {Trigger::kAnyFailed, false, false, State::kSkipped},
      {Trigger::kAnyFailed, true, false, State::kSuccess},
      {Trigger::kAllFailed, true, true, State::kSuccess},
      {Trigger::kAllFailed, true, false, State::kTriggerFailed},
      {Trigger::kAllFailed, false, false, State::kSkipped},
      {Trigger::kAnySuccessful, true, false, State::kSuccess},
      {Trigger::kAnySuccessful, true, true, State::kTriggerFailed},
  };
  for (const auto& c : cases) {
    Flow flow("triggers");
    auto a = flow.task("a", [f = c.a_fails] { if (f) throw std::runtime_error("a failed"); });
    auto b = flow.task("b", [f = c.b_fails] { if (f) throw std::runtime_error("b failed"); });
    flow.task("t", [] {}).after(a, b).trigger(c.trigger);
    auto r = run(flow);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->find("t")->state, c.expected)
        << trigger_name(c.trigger) << " a_fails=" << c.a_fails << " b_fails=" << c.b_fails;
  }
}

TEST_P(ExecutorTest, TriggerFailedPropagatesAndSkipPropagates) {
  Flow flow("propagate");
  auto a = flow.task("a", []() -> int { throw std::runtime_error("x"); });
  auto b = flow.task("b", [](int v) { return v; }, a);
  flow.task("c", [](int v) { return v; }, b);
  auto s = flow.task("s", []() -> int { throw SkipTask("nothing to do"); });
  flow.task("after-skip", [](int) {}, s);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("b")->state, State::kTriggerFailed);
  EXPECT_EQ(r->find("b")->message, "trigger all_successful not met: upstream task 'a' ended Failed");
  EXPECT_EQ(r->find("c")->state, State::kTriggerFailed);
  EXPECT_EQ(r->find("s")->state, State::kSkipped);
  EXPECT_EQ(r->find("s")->message, "nothing to do");
  EXPECT_EQ(r->find("after-skip")->state, State::kSkipped);
  EXPECT_EQ(r->state, State::kFailed);
}

TEST_P(ExecutorTest, AllFinishedTriggerWithMissingDataFails) {
  Flow flow("missing");
  auto a = flow.task("a", []() -> int { throw std::runtime_error("x"); });
  flow.task("b", [](int v) { return v; }, a).trigger(Trigger::kAllFinished);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("b")->state, State::kFailed);
  EXPECT_EQ(r->find("b")->message, "no value from upstream task 'a' (it ended Failed)");
}

TEST_P(ExecutorTest, ReferenceTasksDecideFinalState) {
  {
    Flow flow("cleanup-hides-failure");
    auto a = flow.task("work", [] { throw std::runtime_error("broken"); });
    flow.task("cleanup", [] {}).after(a).trigger(Trigger::kAllFinished);
    auto r = run(flow);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->state, State::kSuccess);  // the terminal task succeeded
  }
  {
    Flow flow("reference-fails");
    auto a = flow.task("work", [] { throw std::runtime_error("broken"); }).reference();
    flow.task("cleanup", [] {}).after(a).trigger(Trigger::kAllFinished);
    auto r = run(flow);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->state, State::kFailed);
    EXPECT_EQ(r->message, "reference task 'work' ended Failed: broken");
  }
}

TEST_P(ExecutorTest, MapAndReduce) {
  Flow flow("map");
  auto n = flow.parameter<int>("n", 5);
  auto items = flow.task("items", [](int k) {
    std::vector<int> v(static_cast<size_t>(k));
    std::iota(v.begin(), v.end(), 1);
    return v;
  }, n);
  auto squares = flow.map("square", [](TaskContext& ctx, const int& x) {
    EXPECT_EQ(ctx.map_index(), x - 1);
    return x * x;
  }, items);
  auto total = flow.task("total", [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); },
                         squares);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess);
  EXPECT_EQ(*r->value(squares), (std::vector<int>{1, 4, 9, 16, 25}));
  EXPECT_EQ(*r->value(total), 55);
  ASSERT_EQ(r->task_runs.size(), 7u);
  for (int i = 0; i < 5; ++i) {
    ASSERT_NE(r->find("square", i), nullptr);
    EXPECT_EQ(r->find("square", i)->state, State::kSuccess);
  }
  EXPECT_EQ(r->find("square", -1), nullptr);
}

TEST_P(ExecutorTest, MapWithFailingElementAndEmptyMap) {
  Flow flow("map-fail");
  auto items = flow.task("items", [] { return std::vector<int>{1, 2, 3}; });
  auto m = flow.map("check", [](const int& x) {
    if (x == 2) throw std::runtime_error("two is bad");
    return x;
  }, items);
  auto red = flow.task("reduce", [](const std::vector<int>& v) { return v.size(); }, m);
  auto none = flow.task("none", [] { return std::vector<std::string>{}; });
  auto m2 = flow.map("upper", [](const std::string& s) { return s + "!"; }, none);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("check", 1)->state, State::kFailed);
  EXPECT_EQ(r->find("check", 1)->message, "two is bad");
  EXPECT_EQ(r->find("check", 0)->state, State::kSuccess);
  EXPECT_EQ(r->find("reduce")->state, State::kTriggerFailed);
  EXPECT_EQ(r->value(red), nullptr);
  ASSERT_NE(r->value(m2), nullptr);
  EXPECT_TRUE(r->value(m2)->empty());
  EXPECT_EQ(r->state, State::kFailed);
}

TEST_P(ExecutorTest, MapOverParameterlessUpstreamNotRunWhenUpstreamFails) {
  Flow flow("map-up-fail");
  auto items = flow.task("items", []() -> std::vector<int> { throw std::runtime_error("x"); });
  flow.map("each", [](const int& x) { return x; }, items);
  auto r = run(flow);
  ASSERT_TRUE(r);
  ASSERT_NE(r->find("each", -1), nullptr);
  EXPECT_EQ(r->find("each", -1)->state, State::kTriggerFailed);
}

TEST_P(ExecutorTest, ConcurrencyLimitByTag) {
  Flow flow("limits");
  flow.concurrency_limit("db", 1);
  std::atomic<int> running{0}, max_running{0};
  for (int i = 0; i < 8; ++i) {
    flow.task("t" + std::to_string(i), [&] {
          int now = ++running;
          int prev = max_running.load();
          while (now > prev && !max_running.compare_exchange_weak(prev, now)) {}
          std::this_thread::yield();
          --running;
        })
        .tags({"db"});
  }
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess);
  EXPECT_EQ(max_running.load(), 1);
  for (const auto& t : r->task_runs) EXPECT_EQ(t.state, State::kSuccess);
}

TEST_P(ExecutorTest, CancelWhileTasksWaitForATagSlot) {
  Flow flow("limits-cancel");
  flow.concurrency_limit("db", 1);
  CancellationSource source;
  for (int i = 0; i < 6; ++i) {
    flow.task("t" + std::to_string(i), [&] { source.cancel(); }).tags({"db"});
  }
  auto r = run(flow, {.cancel = &source});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kCancelled);
  for (const auto& t : r->task_runs) EXPECT_EQ(t.state, State::kCancelled) << t.task;
}

TEST_P(ExecutorTest, HooksAndLogs) {
  Flow flow("hooks");
  std::mutex mu;
  std::vector<std::string> seen;
  std::vector<std::string> failures;
  flow.task("ok", [](TaskContext& ctx) { ctx.info("hello from " + ctx.task_name()); })
      .on_state_change([&](const TaskRunEvent& ev) {
        std::lock_guard lk(mu);
        seen.push_back(std::string(ev.task) + ":" + state_name(ev.state));
      });
  flow.task("bad", [] { throw std::runtime_error("bad"); }).on_failure([&](const TaskRunEvent& ev) {
    std::lock_guard lk(mu);
    failures.push_back(std::string(ev.task) + ":" + std::string(ev.message));
  });
  std::vector<State> flow_failed;
  flow.on_failure([&](const FlowRunEvent& ev) { flow_failed.push_back(ev.state); });
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(seen, (std::vector<std::string>{"ok:Running", "ok:Success"}));
  EXPECT_EQ(failures, (std::vector<std::string>{"bad:bad"}));
  EXPECT_EQ(flow_failed, (std::vector<State>{State::kFailed}));
  EXPECT_EQ(rec.logs, (std::vector<std::string>{"ok:INFO:hello from ok"}));
}

TEST_P(ExecutorTest, ExternalCancellation) {
  Flow flow("cancel");
  CancellationSource source;
  auto a = flow.task("a", [] { return 1; });
  auto b = flow.task("b", [&](TaskContext& ctx, int) {
    source.cancel();  // as if a signal or the server cancelled the run now
    while (!ctx.cancelled()) ctx.clock().sleep_for(1s);
    return 2;
  }, a);
  flow.task("c", [](int v) { return v; }, b);
  auto r = run(flow, {.cancel = &source});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kCancelled);
  EXPECT_EQ(r->find("a")->state, State::kSuccess);
  EXPECT_EQ(r->find("b")->state, State::kCancelled);
  EXPECT_EQ(r->find("c")->state, State::kCancelled);
}

TEST_P(ExecutorTest, CancellationDuringRetryWait) {
  Flow flow("cancel-retry");
  CancellationSource source;
  flow.task("x", [&] {
        source.cancel();
        throw std::runtime_error("fail");
      })
      .retries(3, 1h);
  auto r = run(flow, {.cancel = &source});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("x")->state, State::kCancelled);
  EXPECT_EQ(r->state, State::kCancelled);
}

class TempDir {
 public:
  TempDir() : path(std::filesystem::temp_directory_path() / ("culvert-engine-" + new_uuid())) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string uri() const { return "file://" + path.string(); }
  std::filesystem::path path;
};

TEST_P(ExecutorTest, ResultPersistedThroughCodec) {
  TempDir dir;
  Flow flow("results");
  auto v = flow.task("v", [] { return std::vector<std::string>{"a", "b:c"}; })
               .result(dir.uri() + "/{flow_name}/{flow_run_id}/{task_name}");
  (void)v;
  auto r = run(flow, {.flow_run_id = "run-1"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess);
  auto store = open_object_store(dir.uri());
  ASSERT_TRUE(store);
  auto bytes = (*store)->get(dir.uri() + "/results/run-1/v");
  ASSERT_TRUE(bytes) << bytes.status().to_string();
  std::vector<std::string> back;
  ASSERT_TRUE(Codec<std::vector<std::string>>::decode(*bytes, back));
  EXPECT_EQ(back, (std::vector<std::string>{"a", "b:c"}));
}

TEST_P(ExecutorTest, CacheForReusesResultUntilExpiry) {
  TempDir dir;
  std::atomic<int> calls{0};
  Flow flow("cache");
  auto x = flow.parameter<int>("x", 3);
  auto sq = flow.task("square", [&](int v) { ++calls; return v * v; }, x).cache_for(1h);
  flow.cache_storage(dir.uri());
  auto r1 = run(flow);
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->find("square")->state, State::kSuccess);
  auto r2 = run(flow);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->find("square")->state, State::kCached);
  EXPECT_EQ(*r2->value(sq), 9);
  EXPECT_EQ(calls.load(), 1);
  auto r3 = run(flow, {.parameters = {{"x", "4"}}});  // other input: other key
  EXPECT_EQ(r3->find("square")->state, State::kSuccess);
  EXPECT_EQ(*r3->value(sq), 16);
  clock.advance(2h);
  auto r4 = run(flow);
  EXPECT_EQ(r4->find("square")->state, State::kSuccess);  // expired
  EXPECT_EQ(calls.load(), 3);
}

// A user type with nlohmann's to_json/from_json is cached with no more code than
// including <culvert/json.hpp>.
struct Reading {
  std::string sensor;
  double value = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Reading, sensor, value)

TEST_P(ExecutorTest, ATypeWithNlohmannFunctionsIsCached) {
  TempDir dir;
  std::atomic<int> calls{0};
  Flow flow("cache-json");
  auto r = flow.task("read", [&] { ++calls; return Reading{"s1", 20.5}; }).cache_for(1h);
  flow.task("use", [](const Reading& x) { if (x.sensor != "s1") throw std::runtime_error(x.sensor); }, r);
  flow.cache_storage(dir.uri());
  auto r1 = run(flow);
  auto r2 = run(flow);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r2->find("read")->state, State::kCached);
  EXPECT_EQ(r2->state, State::kSuccess);
  EXPECT_EQ(r2->value(r)->value, 20.5);
  EXPECT_EQ(calls.load(), 1);
}

TEST_P(ExecutorTest, CacheKeyFunction) {
  TempDir dir;
  std::atomic<int> calls{0};
  Flow flow("cache-key");
  auto x = flow.parameter<int>("x", 3);
  flow.task("t", [&](int v) { ++calls; return v; }, x)
      .cache_for(1h)
      .cache_key([](const CacheKeyContext& c) { return std::string(c.task_name) + "-constant"; });
  auto r1 = run(flow, {.cache_storage = dir.uri()});
  auto r2 = run(flow, {.parameters = {{"x", "5"}}, .cache_storage = dir.uri()});
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r2->find("t")->state, State::kCached);
  EXPECT_EQ(calls.load(), 1);
}

TEST_P(ExecutorTest, TargetSkipsWhenResultExists) {
  TempDir dir;
  std::atomic<int> calls{0};
  Flow flow("target");
  auto t = flow.task("daily", [&] { ++calls; return std::string("report"); })
               .target(dir.uri() + "/{task_name}-{date}");
  auto r1 = run(flow);
  auto r2 = run(flow);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->find("daily")->state, State::kSuccess);
  EXPECT_EQ(r2->find("daily")->state, State::kCached);
  EXPECT_EQ(*r2->value(t), "report");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(std::filesystem::exists(dir.path / "daily-2026-01-01"));
}

TEST_P(ExecutorTest, MappedResultsUseMapIndex) {
  TempDir dir;
  Flow flow("map-results");
  auto items = flow.task("items", [] { return std::vector<int>{1, 2}; });
  flow.map("double", [](const int& v) { return 2 * v; }, items).result(dir.uri() + "/{task_name}/{map_index}");
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess);
  auto store = open_object_store(dir.uri());
  EXPECT_EQ((*store)->get(dir.uri() + "/double/0").value(), "2");
  EXPECT_EQ((*store)->get(dir.uri() + "/double/1").value(), "4");
}

TEST_P(ExecutorTest, StorageErrorFailsTheTask) {
  Flow flow("store-error");
  flow.task("t", [] { return 1; }).result("memory://nowhere/{task_name}");
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->find("t")->state, State::kFailed);
  EXPECT_NE(r->find("t")->message.find("could not persist the result"), std::string::npos);
}

TEST_P(ExecutorTest, ManyIndependentTasksAndLongChain) {
  Flow flow("many");
  std::atomic<int> count{0};
  for (int i = 0; i < 2000; ++i) flow.task("i" + std::to_string(i), [&] { ++count; });
  auto prev = flow.task("c0", [] { return 0; });
  for (int i = 1; i < 2000; ++i) prev = flow.task("c" + std::to_string(i), [](int v) { return v + 1; }, prev);
  auto r = run(flow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kSuccess);
  EXPECT_EQ(count.load(), 2000);
  EXPECT_EQ(*r->value(prev), 1999);
  EXPECT_EQ(r->task_runs.size(), 4000u);
}

TEST(ExecutorValidation, InvalidFlowIsRefused) {
  Flow flow("bad");
  auto a = flow.task("a", [] {});
  auto b = flow.task("b", [] {}).after(a);
  a.after(b);  // cycle
  flow.task("a", [] {});
  Executor ex;
  auto r = ex.run(flow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("two tasks are named 'a'"), std::string::npos);
}

}  // namespace
}  // namespace culvert
