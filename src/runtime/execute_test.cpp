// execute_flow against a test server that plays the Culvert API: malformed answers to
// the run read and to the watcher's heartbeats and polls are errors or ignored, never a
// crash.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <filesystem>
#include <set>
#include <unistd.h>

#include <culvert/culvert.hpp>

#include <nlohmann/json.hpp>

#include <culvert/clock.hpp>

#include "runtime/child_runs.hpp"
#include "runtime/runtime.hpp"
#include "test_http_server.hpp"

namespace culvert::runtime {
namespace {

using nlohmann::json;
using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;
using namespace std::chrono_literals;

ExecuteEnv env_for(const TestHttpServer& server) {
  ExecuteEnv env;
  env.api_url = server.url();
  env.api_token = "t";
  env.flow_run_id = "r1";
  env.heartbeat_interval = 1ms;
  env.cancel_poll = 1ms;
  env.server_wait = 0ms;
  return env;
}

Flow one_task_flow() {
  Flow flow("f");
  flow.task("one", [] { return 1; });
  return flow;
}

// The requests that set the run's state, as "STATE" strings in order.
std::vector<std::string> states_set(const TestHttpServer& server) {
  std::vector<std::string> out;
  for (const auto& r : server.requests())
    if (r.method == "POST" && r.target == "/api/v1/flow-runs/r1/state") out.push_back(json::parse(r.body)["state"]);
  return out;
}

TEST(ExecuteFlow, AMalformedRunIsAnErrorAndNothingIsSet) {
  const char* answers[] = {"[]", "null", "7", "{}", R"({"state":7})", R"({"state":"Submitted","flow_name":42})",
                           R"({"state":"Submitted","flow_name":"f","parameters":"n=1"})",
                           R"({"state":"Submitted","flow_name":"f","parameters":[]})"};
  Flow flow = one_task_flow();
  for (const char* answer : answers) {
    TestHttpServer server([&](const TestRequest&) { return TestResponse{200, answer}; });
    ::testing::internal::CaptureStderr();
    int rc = execute_flow(flow, env_for(server));
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(rc, 1) << answer;
    EXPECT_NE(err.find("cannot read flow run r1"), std::string::npos) << answer << ": " << err;
    EXPECT_TRUE(states_set(server).empty()) << answer;
  }
}

TEST(ExecuteFlow, ARunOfAnotherFlowIsCrashed) {
  Flow flow = one_task_flow();
  TestHttpServer server([&](const TestRequest& r) {
    if (r.method == "GET") return TestResponse{200, R"({"id":"r1","state":"Submitted","flow_name":"other"})"};
    return TestResponse{200, R"({"id":"r1","state":"Crashed","flow_name":"other"})"};
  });
  ::testing::internal::CaptureStderr();
  int rc = execute_flow(flow, env_for(server));
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("belongs to flow 'other'"), std::string::npos) << err;
  EXPECT_EQ(states_set(server), std::vector<std::string>{"Crashed"});
}

// The watcher's heartbeats and polls get malformed answers while the task runs: it says
// so once on the run's log and the run goes on to Success.
TEST(ExecuteFlow, MalformedWatcherAnswersAreIgnoredAndSaidOnce) {
  std::mutex mu;
  std::condition_variable cv;
  int watcher_answers = 0;  // guarded by mu
  int state_posts = 0;      // the handler runs one request at a time
  const char* malformed[] = {"[]", R"({"state":5})", "null", R"({"state":"Running","flow_name":[]})"};
  TestHttpServer server([&](const TestRequest& r) {
    if (r.target == "/api/v1/flow-runs/r1/state") {
      ++state_posts;
      return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"f"})"};
    }
    if (r.target == "/api/v1/flow-runs/r1/heartbeat" || (r.method == "GET" && state_posts > 0)) {
      std::lock_guard lock(mu);
      const char* body = malformed[watcher_answers % 4];
      ++watcher_answers;
      cv.notify_all();
      return TestResponse{200, body};
    }
    if (r.method == "GET") return TestResponse{200, R"({"id":"r1","state":"Submitted","flow_name":"f"})"};
    return TestResponse{200, "{}"};  // task-run states, logs
  });
  Flow flow("f");
  flow.task("wait", [&] {
    std::unique_lock lock(mu);
    // Until the watcher has had a few malformed answers (a bound, not a timing).
    return cv.wait_for(lock, 60s, [&] { return watcher_answers >= 8; });
  });
  int rc = execute_flow(flow, env_for(server));
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(states_set(server), (std::vector<std::string>{"Running", "Success"}));
  int warnings = 0;
  for (const auto& r : server.requests()) {
    if (r.target != "/api/v1/logs") continue;
    for (const auto& line : json::parse(r.body))
      if (line["message"].get<std::string>().find("malformed answer") != std::string::npos) ++warnings;
  }
  EXPECT_EQ(warnings, 1);
}

// The server counts the run's attempt as it goes Running: every log line and task-run
// state of this process carries it, so that a retried run's attempts stay apart.
TEST(ExecuteFlow, StampsEveryLogLineAndTaskStateWithTheAttemptTheServerCounted) {
  TestHttpServer server([&](const TestRequest& r) {
    if (r.target == "/api/v1/flow-runs/r1/state")
      return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"f","run_count":3})"};
    if (r.method == "GET") return TestResponse{200, R"({"id":"r1","state":"Submitted","flow_name":"f","run_count":2})"};
    return TestResponse{200, "{}"};  // task-run states, logs, heartbeats
  });
  Flow flow("f");
  flow.task("one", [](TaskContext& ctx) {
    ctx.info("hello");
    return 1;
  });
  ASSERT_EQ(execute_flow(flow, env_for(server)), 0);
  int lines = 0, states = 0;
  for (const auto& r : server.requests()) {
    const bool logs = r.target == "/api/v1/logs", task_states = r.target == "/api/v1/task-runs/states";
    if (!logs && !task_states) continue;
    for (const auto& item : json::parse(r.body)) {
      EXPECT_EQ(item.value("run_attempt", 0), 3) << r.target << " " << item.dump();
      ++(logs ? lines : states);
    }
  }
  EXPECT_GE(lines, 1);
  EXPECT_GE(states, 1);  // "one" (its Running and Success may be coalesced into one item)
}

// A signal the server's cancel did not come with: with CULVERT_SIGNALLED_END=agent the
// run stops and leaves the final state to its agent; by default it says Cancelled.
TEST(ExecuteFlow, ASignalWithoutACancelLeavesTheEndToTheAgentWhenAsked) {
  for (bool by_agent : {true, false}) {
    TestHttpServer server([&](const TestRequest& r) {
      if (r.target == "/api/v1/flow-runs/r1/state")
        return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"f","run_count":1})"};
      if (r.method == "GET") return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"f","run_count":1})"};
      return TestResponse{200, "{}"};
    });
    Flow flow("f");
    flow.task("waits", [](TaskContext& ctx) {
      ::raise(SIGTERM);
      while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
      throw std::runtime_error("cancelled");
      return 1;
    });
    ExecuteEnv env = env_for(server);
    env.signalled_end_by_agent = by_agent;
    int rc = execute_flow(flow, env);
    auto states = states_set(server);
    if (by_agent) {
      EXPECT_EQ(rc, 128 + SIGTERM);
      EXPECT_EQ(states, std::vector<std::string>{"Running"});
    } else {
      ASSERT_EQ(states.size(), 2u);
      EXPECT_NE(states[1], "Running");
    }
  }
}

// A cancel the server reports (Cancelling): the flow stops, and its Cancelled message and
// the run's log name who asked (the Cancelling state's message).
TEST(ExecuteFlow, ACancelFromTheServerNamesWhoAskedInTheFinalMessage) {
  std::mutex mu;
  std::vector<std::string> final_messages, logs;
  TestHttpServer server([&](const TestRequest& r) {
    if (r.target == "/api/v1/flow-runs/r1/state") {
      json b = json::parse(r.body);
      if (b["state"] != "Running") {
        std::lock_guard lock(mu);
        final_messages.push_back(b.value("message", ""));
      }
      return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"f","run_count":1})"};
    }
    if (r.target == "/api/v1/logs") {
      std::lock_guard lock(mu);
      for (const auto& l : json::parse(r.body)) logs.push_back(l.value("message", ""));
      return TestResponse{201, "{}"};
    }
    if (r.method == "GET" || r.target == "/api/v1/flow-runs/r1/heartbeat")
      return TestResponse{200, R"j({"id":"r1","state":"Cancelling","flow_name":"f","run_count":1,
                                   "state_message":"cancel requested by alice-oncall (user token)"})j"};
    return TestResponse{200, "{}"};
  });
  Flow flow("f");
  flow.task("waits", [](TaskContext& ctx) {
    while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
    throw std::runtime_error("cancelled");
    return 1;
  });
  (void)execute_flow(flow, env_for(server));
  std::lock_guard lock(mu);
  ASSERT_EQ(final_messages.size(), 1u);
  EXPECT_NE(final_messages[0].find("(cancel requested by alice-oncall (user token))"), std::string::npos)
      << final_messages[0];
  bool said = false;
  for (const auto& l : logs)
    said = said || l.find("the server reports the run Cancelling (cancel requested by alice-oncall (user token)); "
                          "cancelling") != std::string::npos;
  EXPECT_TRUE(said);
}

// A Running answer whose run_count is not a count: the process does not run the flow.
TEST(ExecuteFlow, AMalformedAttemptCountInTheRunningAnswerIsAnError) {
  TestHttpServer server([&](const TestRequest& r) {
    if (r.target == "/api/v1/flow-runs/r1/state")
      return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"f","run_count":"three"})"};
    if (r.method == "GET") return TestResponse{200, R"({"id":"r1","state":"Submitted","flow_name":"f"})"};
    return TestResponse{200, "{}"};
  });
  bool ran = false;
  Flow flow("f");
  flow.task("one", [&] {
    ran = true;
    return 1;
  });
  ::testing::internal::CaptureStderr();
  int rc = execute_flow(flow, env_for(server));
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1);
  EXPECT_FALSE(ran);
  EXPECT_NE(err.find("run_count"), std::string::npos) << err;
}

// The worker count: CULVERT_WORKERS (what an agent's --workers passes on), else the
// machine's cores.
TEST(ExecuteEnvFromProcess, WorkersComeFromTheVariableElseTheMachinesCores) {
  ::setenv("CULVERT_API_URL", "http://127.0.0.1:1", 1);
  ::setenv("CULVERT_API_TOKEN", "t", 1);
  ::setenv("CULVERT_FLOW_RUN_ID", "r1", 1);
  ::unsetenv("CULVERT_WORKERS");
  auto env = execute_env_from_process();
  ASSERT_TRUE(env) << env.status().message();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(env->workers, cores);
  EXPECT_EQ(default_workers(), cores);
  ::setenv("CULVERT_WORKERS", "3", 1);
  env = execute_env_from_process();
  ASSERT_TRUE(env);
  EXPECT_EQ(env->workers, 3);
  for (const char* bad : {"0", "-1", "two", "1025"}) {
    ::setenv("CULVERT_WORKERS", bad, 1);
    env = execute_env_from_process();
    ASSERT_FALSE(env) << bad;
    EXPECT_NE(env.status().message().find("CULVERT_WORKERS"), std::string::npos);
  }
  for (const char* v : {"CULVERT_WORKERS", "CULVERT_API_URL", "CULVERT_API_TOKEN", "CULVERT_FLOW_RUN_ID"})
    ::unsetenv(v);
}

// The backoff while the server is unreachable, on simulated time: 250 ms doubling to 5 s,
// until the wait has passed; other errors and success end it at once.
TEST(RetryWhileUnreachable, BacksOffOnTheClockUntilTheWaitHasPassed) {
  ManualClock clock;
  const SteadyTime t0 = clock.steady_now();
  std::vector<long> at;  // ms since t0 of each call
  auto r = retry_while_unreachable(clock, 10s, [&]() -> Result<json> {
    at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady_now() - t0).count());
    return unavailable("connection refused");
  });
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(at, (std::vector<long>{0, 250, 750, 1750, 3750, 7750}));  // the next, at 12750, is past 10 s

  at.clear();
  r = retry_while_unreachable(clock, 10min, [&]() -> Result<json> {
    at.push_back(0);
    if (at.size() < 3) return Status(StatusCode::kTimeout, "slow");
    return json::object({{"ok", true}});
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(at.size(), 3u);

  at.clear();
  const SteadyTime t1 = clock.steady_now();
  r = retry_while_unreachable(clock, 10min, [&]() -> Result<json> {
    at.push_back(0);
    return not_found("no such run");
  });
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(at.size(), 1u);
  EXPECT_EQ(clock.steady_now(), t1);  // no wait at all
}

// Heartbeats go out once per heartbeat interval of the run's clock, however often the
// watcher polls: with simulated time standing still there are none, and each advance
// by one interval gives exactly one.
TEST(ExecuteFlow, HeartbeatsFollowTheClock) {
  ManualClock clock;
  std::mutex mu;
  std::condition_variable cv;
  int polls = 0, heartbeats = 0;  // guarded by mu
  bool running = false;           // guarded by mu
  TestHttpServer server([&](const TestRequest& r) {
    const std::string run = R"({"id":"r1","state":"Running","flow_name":"f"})";
    std::lock_guard lock(mu);
    if (r.target == "/api/v1/flow-runs/r1/state") {
      running = true;
      return TestResponse{200, run};
    }
    if (r.target == "/api/v1/flow-runs/r1/heartbeat") ++heartbeats;
    else if (r.method == "GET" && running) ++polls;
    cv.notify_all();
    return TestResponse{200, r.method == "GET" || r.target.ends_with("/heartbeat") ? run : "{}"};
  });
  ExecuteEnv env = env_for(server);
  env.heartbeat_interval = 10s;
  env.clock = &clock;
  std::string seen;
  Flow flow("f");
  flow.task("beat", [&] {
    std::unique_lock lock(mu);
    auto until_polls = [&](int n) { return cv.wait_for(lock, 60s, [&] { return polls >= n; }); };
    auto until_heartbeats = [&](int n) { return cv.wait_for(lock, 60s, [&] { return heartbeats >= n; }); };
    until_polls(5);
    seen += std::to_string(heartbeats);  // time stood still: none
    clock.advance(10s);
    until_heartbeats(1);
    until_polls(polls + 5);
    seen += std::to_string(heartbeats);  // one per interval, not per poll
    clock.advance(10s);
    until_heartbeats(2);
    until_polls(polls + 5);
    seen += std::to_string(heartbeats);
  });
  EXPECT_EQ(execute_flow(flow, env), 0);
  EXPECT_EQ(seen, "012");
  std::lock_guard lock(mu);
  EXPECT_EQ(heartbeats, 2);
}

}  // namespace
}  // namespace culvert::runtime

namespace culvert::runtime {
namespace {

// A child run: execute reads its chunk's inputs from storage, runs only the map's
// elements, reports them under the parent's task (the parent's run id and attempt),
// writes the outcomes, and ends its own run.
TEST(ExecuteFlow, AChildRunRunsItsChunkAndReportsItsElementsToTheParent) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("culvert-exec-chunk-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string storage = "file://" + dir.string();
  Flow flow("squares");
  flow.result_storage(storage);
  std::atomic<int> upstream{0};
  auto nums = flow.task("numbers", [&] { upstream++; return std::vector<int>{}; });
  flow.map("square", [](culvert::TaskContext& ctx, const int& x) {
        ctx.info("squaring " + std::to_string(x));
        if (x == 7) throw std::runtime_error("seven");
        return x * x;
      }, nums)
      .distributed({.max_workers = 2, .chunk_size = 3});
  auto store = open_object_store(storage);
  ASSERT_TRUE(store.is_ok());
  ASSERT_TRUE((*store)->put(chunk_uri(storage, "parent-1", 2, "square", "in", 2),
                            Codec<std::vector<int>>::encode({6, 7, 8})).is_ok());
  TestHttpServer server([&](const TestRequest& r) {
    if (r.target == "/api/v1/flow-runs/r1/state") return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"squares","run_count":1})"};
    if (r.method == "GET" && r.target == "/api/v1/flow-runs/r1")
      return TestResponse{200, R"({"id":"r1","state":"Submitted","flow_name":"squares","run_count":0,
        "child":{"parent_run_id":"parent-1","task":"square","chunk":2,"start":6,"end":9,"parent_attempt":2}})"};
    return TestResponse{200, "{}"};
  });
  int rc = execute_flow(flow, env_for(server));
  EXPECT_EQ(rc, 1);  // element 7 failed: the child ends Failed
  EXPECT_EQ(states_set(server), (std::vector<std::string>{"Running", "Failed"}));
  EXPECT_EQ(upstream.load(), 0);
  std::set<int> indexes;
  for (const auto& r : server.requests()) {
    if (r.target == "/api/v1/task-runs/states") {
      for (const auto& item : json::parse(r.body)) {
        EXPECT_EQ(item["flow_run_id"], "parent-1") << item;
        EXPECT_EQ(item["task"], "square");
        EXPECT_EQ(item["run_attempt"], 2);
        for (int i = 0; i < item.value("map_count", 1); ++i) indexes.insert(item["map_index"].get<int>() + i);
      }
    }
    if (r.target == "/api/v1/logs") {
      for (const auto& line : json::parse(r.body)) {
        if (line.value("message", "").starts_with("squaring")) EXPECT_EQ(line["flow_run_id"], "parent-1") << line;
        else EXPECT_EQ(line["flow_run_id"], "r1") << line;
      }
    }
  }
  EXPECT_EQ(indexes, (std::set<int>{6, 7, 8}));
  auto out = (*store)->get(chunk_uri(storage, "parent-1", 2, "square", "out", 2));
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  auto outcomes = decode_chunk_outcomes(*out, 3);
  ASSERT_TRUE(outcomes.is_ok()) << outcomes.status().message();
  EXPECT_EQ((*outcomes)[0].value, "36");
  EXPECT_EQ((*outcomes)[1].state, State::kFailed);
  EXPECT_NE((*outcomes)[1].message.find("seven"), std::string::npos);
  EXPECT_EQ((*outcomes)[2].value, "64");
  fs::remove_all(dir);
}

// A child whose inputs are not where they should be (storage that is not shared) ends
// Failed, saying where it looked.
TEST(ExecuteFlow, AChildRunWithoutItsInputsFailsNamingWhere) {
  Flow flow("squares");
  flow.result_storage("file:///nonexistent-culvert-maps");
  auto nums = flow.task("numbers", [] { return std::vector<int>{}; });
  flow.map("square", [](const int& x) { return x; }, nums).distributed({});
  std::string final_message;
  TestHttpServer server([&](const TestRequest& r) {
    if (r.target == "/api/v1/flow-runs/r1/state") {
      auto b = json::parse(r.body);
      if (b["state"] != "Running") final_message = b.value("message", "");
      return TestResponse{200, R"({"id":"r1","state":"Running","flow_name":"squares","run_count":1})"};
    }
    if (r.method == "GET" && r.target == "/api/v1/flow-runs/r1")
      return TestResponse{200, R"({"id":"r1","state":"Submitted","flow_name":"squares",
        "child":{"parent_run_id":"p","task":"square","chunk":0,"start":0,"end":4,"parent_attempt":1}})"};
    return TestResponse{200, "{}"};
  });
  EXPECT_EQ(execute_flow(flow, env_for(server)), 1);
  EXPECT_EQ(states_set(server), (std::vector<std::string>{"Running", "Failed"}));
  EXPECT_NE(final_message.find("cannot read the chunk's inputs from file:///nonexistent-culvert-maps/p/1/square/in/0"),
            std::string::npos) << final_message;
  EXPECT_NE(final_message.find("must be a folder that the parent and every worker share"), std::string::npos);
}

}  // namespace
}  // namespace culvert::runtime
