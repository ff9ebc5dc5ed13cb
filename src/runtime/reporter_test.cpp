#include "runtime/reporter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/timefmt.hpp"
#include "test_http_server.hpp"

namespace culvert::runtime {
namespace {

using nlohmann::json;

TaskRunEvent task_event(const std::string& name, int map_index, State s) {
  return TaskRunEvent{0, name, map_index, s, 1, "", std::chrono::system_clock::now()};
}

// Each item of a task-run states request, expanded to its task runs (map_count).
template <class F>
void for_each_task_run(const json& batch, F&& f) {
  for (const auto& item : batch) {
    int first = item["map_index"].get<int>();
    int count = item.value("map_count", 1);
    for (int i = first; i < first + count; ++i) f(i, item);
  }
}

TEST(ServerReporter, SendsEveryTaskRunInBoundedRequests) {
  culvert::testing::TestHttpServer server([](const culvert::testing::TestRequest&) {
    return culvert::testing::TestResponse{200, "{}"};
  });
  {
    ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                            ReporterOptions{.flush_interval = std::chrono::milliseconds(50),
                                            .batch_size = 100000, .max_request_items = 1000});
    std::string name = "noop";
    for (int i = 0; i < 2500; ++i) {
      reporter.on_task_run(task_event(name, i, State::kRunning));
      reporter.on_task_run(task_event(name, i, State::kSuccess));
    }
    ASSERT_TRUE(reporter.close().is_ok());
  }
  std::map<int, std::string> latest;
  for (const auto& r : server.requests()) {
    ASSERT_EQ(r.target, "/api/v1/task-runs/states");
    auto batch = json::parse(r.body);
    EXPECT_LE(batch.size(), 1000u);
    for_each_task_run(batch, [&](int i, const json& item) {
      EXPECT_EQ(item["flow_run_id"], "run-1");
      EXPECT_EQ(latest.count(i), 0u) << "task run " << i << " sent twice";
      latest[i] = item["state"].get<std::string>();
    });
  }
  ASSERT_EQ(latest.size(), 2500u);
  for (const auto& [i, state] : latest) EXPECT_EQ(state, "Success") << i;
}

// Consecutive mapped task runs that say the same thing (to the millisecond) go as one
// item with a map_count, and carry the time they first ran when their Running update
// was coalesced away.
TEST(ServerReporter, AlikeMappedTaskRunsGoAsOneItemWithTheirStartTime) {
  culvert::testing::TestHttpServer server([](const culvert::testing::TestRequest&) {
    return culvert::testing::TestResponse{200, "{}"};
  });
  const SysTime t0 = parse_rfc3339("2026-11-28T10:00:00.250Z").value();
  const SysTime t1 = t0 + std::chrono::microseconds(900);  // the same millisecond
  {
    ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                            ReporterOptions{.flush_interval = std::chrono::hours(1), .batch_size = 100000});
    std::string name = "m", other = "x";
    for (int i = 0; i < 100; ++i) {
      reporter.on_task_run(TaskRunEvent{0, name, i, State::kRunning, 1, "", t0});
      reporter.on_task_run(TaskRunEvent{0, name, i, State::kSuccess, 1, i == 50 ? "odd" : "", t1});
    }
    for (int i = 100; i < 103; ++i) reporter.on_task_run(TaskRunEvent{0, name, i, State::kRunning, 1, "", t1});
    reporter.on_task_run(TaskRunEvent{1, other, -1, State::kRunning, 1, "", t0});
    ASSERT_TRUE(reporter.flush().is_ok());
    ASSERT_TRUE(reporter.close().is_ok());
  }
  ASSERT_EQ(server.requests().size(), 1u);
  auto batch = json::parse(server.requests()[0].body);
  ASSERT_EQ(batch.size(), 5u) << batch.dump();
  auto expect_item = [&](const json& item, int first, int count, const char* state) {
    EXPECT_EQ(item["map_index"], first) << item.dump();
    EXPECT_EQ(item.value("map_count", 1), count) << item.dump();
    EXPECT_EQ(item["state"], state) << item.dump();
  };
  expect_item(batch[0], 0, 50, "Success");  // in task order (the flow's), then map index
  expect_item(batch[1], 50, 1, "Success");
  expect_item(batch[2], 51, 49, "Success");
  expect_item(batch[3], 100, 3, "Running");
  expect_item(batch[4], -1, 1, "Running");
  EXPECT_EQ(batch[4]["task"], "x");
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(parse_rfc3339(batch[k]["start_time"].get<std::string>()).value(), t0);
    EXPECT_EQ(parse_rfc3339(batch[k]["timestamp"].get<std::string>()).value(),
              std::chrono::floor<std::chrono::milliseconds>(t1));
  }
  EXPECT_EQ(batch[1]["message"], "odd");
  EXPECT_FALSE(batch[3].contains("start_time"));  // the server takes it from the timestamp
}

// A Retrying update is never coalesced away: a task run that failed, was retried and
// succeeded within one batch sends its Retrying state (message, next start time) in a
// request ahead of the latest state. Alike Retrying task runs of a mapped task still go
// as one item.
TEST(ServerReporter, RetryingUpdatesReachTheServerWithTheirNextStartTime) {
  culvert::testing::TestHttpServer server([](const culvert::testing::TestRequest&) {
    return culvert::testing::TestResponse{200, "{}"};
  });
  const SysTime t0 = parse_rfc3339("2026-11-28T10:00:00.250Z").value();
  const SysTime next = t0 + std::chrono::seconds(1);
  const std::string why = "503 from sensor API (retry 1/3 in 1s)";
  {
    ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                            ReporterOptions{.flush_interval = std::chrono::hours(1), .batch_size = 100000,
                                            .run_attempt = 2});
    std::string name = "fetch", mapped = "m";
    reporter.on_task_run(TaskRunEvent{0, name, -1, State::kRunning, 1, "", t0});
    reporter.on_task_run(TaskRunEvent{0, name, -1, State::kRetrying, 1, why, t0, next});
    reporter.on_task_run(TaskRunEvent{0, name, -1, State::kRunning, 2, "", next});
    reporter.on_task_run(TaskRunEvent{0, name, -1, State::kSuccess, 2, "", next});
    for (int i = 0; i < 4; ++i) {
      reporter.on_task_run(TaskRunEvent{1, mapped, i, State::kRetrying, 1, why, t0, next});
      reporter.on_task_run(TaskRunEvent{1, mapped, i, State::kRunning, 2, "", next});
    }
    // A Retrying state that is the latest goes as the task run's item, as any state.
    reporter.on_task_run(TaskRunEvent{1, mapped, 4, State::kRetrying, 1, why, t0, next});
    ASSERT_TRUE(reporter.flush().is_ok());
    ASSERT_TRUE(reporter.close().is_ok());
  }
  ASSERT_EQ(server.requests().size(), 2u);
  auto retries = json::parse(server.requests()[0].body);
  auto latest = json::parse(server.requests()[1].body);
  ASSERT_EQ(retries.size(), 2u) << retries.dump();
  EXPECT_EQ(retries[0]["task"], "fetch");
  EXPECT_EQ(retries[0]["map_index"], -1);
  EXPECT_EQ(retries[1]["task"], "m");
  EXPECT_EQ(retries[1]["map_index"], 0);
  EXPECT_EQ(retries[1]["map_count"], 4);
  for (const auto& item : retries) {
    EXPECT_EQ(item["state"], "Retrying") << item.dump();
    EXPECT_EQ(item["message"], why);
    EXPECT_EQ(item["attempts"], 1);
    EXPECT_EQ(item["run_attempt"], 2);
    EXPECT_EQ(parse_rfc3339(item["next_start_time"].get<std::string>()).value(), next);
    EXPECT_EQ(parse_rfc3339(item["timestamp"].get<std::string>()).value(), t0);
  }
  ASSERT_EQ(latest.size(), 3u) << latest.dump();
  EXPECT_EQ(latest[0]["state"], "Success");
  EXPECT_EQ(latest[0]["attempts"], 2);
  EXPECT_FALSE(latest[0].contains("next_start_time"));
  EXPECT_EQ(parse_rfc3339(latest[0]["start_time"].get<std::string>()).value(), t0);  // the first Running
  EXPECT_EQ(latest[1]["state"], "Running");
  EXPECT_EQ(latest[1]["map_count"], 4);
  EXPECT_EQ(latest[2]["state"], "Retrying");
  EXPECT_EQ(latest[2]["map_index"], 4);
  EXPECT_EQ(parse_rfc3339(latest[2]["next_start_time"].get<std::string>()).value(), next);
  for (const auto& item : latest) EXPECT_EQ(item["run_attempt"], 2);
}

// A failed request of Retrying updates keeps them, and the later states, for the next round.
TEST(ServerReporter, RetryingUpdatesSurviveAFailedRequest) {
  int calls = 0;
  culvert::testing::TestHttpServer server([&](const culvert::testing::TestRequest&) {
    if (++calls == 1) return culvert::testing::TestResponse{503, R"({"error":{"code":"unavailable","message":"busy"}})"};
    return culvert::testing::TestResponse{200, "{}"};
  });
  const SysTime t0 = parse_rfc3339("2026-11-28T10:00:00.250Z").value();
  ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                          ReporterOptions{.flush_interval = std::chrono::hours(1), .batch_size = 100000});
  std::string name = "fetch";
  reporter.on_task_run(TaskRunEvent{0, name, -1, State::kRetrying, 1, "boom (retry 1/1 in 0ms)", t0, t0});
  reporter.on_task_run(TaskRunEvent{0, name, -1, State::kSuccess, 2, "", t0});
  EXPECT_EQ(reporter.flush().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(reporter.flush().is_ok());
  ASSERT_TRUE(reporter.close().is_ok());
  ASSERT_EQ(server.requests().size(), 3u);
  auto retry = json::parse(server.requests()[1].body);
  auto latest = json::parse(server.requests()[2].body);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0]["state"], "Retrying");
  EXPECT_FALSE(retry[0].contains("run_attempt"));  // unknown: the server assigns it
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0]["state"], "Success");
}

// A batch whose request failed is sent again with the start times it had.
TEST(ServerReporter, StartTimesSurviveAFailedRequest) {
  int calls = 0;
  culvert::testing::TestHttpServer server([&](const culvert::testing::TestRequest&) {
    if (++calls == 1) return culvert::testing::TestResponse{503, R"({"error":{"code":"unavailable","message":"busy"}})"};
    return culvert::testing::TestResponse{200, "{}"};
  });
  const SysTime t0 = parse_rfc3339("2026-11-28T10:00:00.250Z").value();
  ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                          ReporterOptions{.flush_interval = std::chrono::hours(1), .batch_size = 100000});
  std::string name = "m";
  for (int i = 0; i < 10; ++i) {
    reporter.on_task_run(TaskRunEvent{0, name, i, State::kRunning, 1, "", t0});
    reporter.on_task_run(TaskRunEvent{0, name, i, State::kSuccess, 1, "", t0 + std::chrono::seconds(1)});
  }
  EXPECT_EQ(reporter.flush().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(reporter.flush().is_ok());
  ASSERT_TRUE(reporter.close().is_ok());
  ASSERT_EQ(server.requests().size(), 2u);
  auto batch = json::parse(server.requests()[1].body);
  ASSERT_EQ(batch.size(), 1u) << batch.dump();
  EXPECT_EQ(batch[0]["map_count"], 10);
  EXPECT_EQ(parse_rfc3339(batch[0]["start_time"].get<std::string>()).value(), t0);
}

TEST(ServerReporter, RetriesWhileTheServerFailsAndDropsWhatItRefuses) {
  std::atomic<int> task_calls{0};
  culvert::testing::TestHttpServer server([&](const culvert::testing::TestRequest& r) {
    if (r.target == "/api/v1/logs")
      return culvert::testing::TestResponse{422, R"({"error":{"code":"unprocessable","message":"bad log"}})"};
    if (task_calls.fetch_add(1) == 0)
      return culvert::testing::TestResponse{503, R"({"error":{"code":"unavailable","message":"busy"}})"};
    return culvert::testing::TestResponse{200, "{}"};
  });
  ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                          ReporterOptions{.flush_interval = std::chrono::milliseconds(10)});
  std::string name = "t";
  reporter.on_task_run(task_event(name, -1, State::kSuccess));
  EXPECT_EQ(reporter.flush().code(), StatusCode::kUnavailable);  // kept for later
  EXPECT_TRUE(reporter.flush().is_ok());                          // delivered
  reporter.log(LogLevel::kInfo, "refused line");
  EXPECT_TRUE(reporter.flush().is_ok());  // refused as invalid: dropped, not retried forever
  EXPECT_EQ(reporter.dropped_logs(), 1u);
  EXPECT_NE(reporter.last_error().find("bad log"), std::string::npos);
  EXPECT_TRUE(reporter.close().is_ok());
  int task_requests = 0;
  for (const auto& r : server.requests())
    if (r.target == "/api/v1/task-runs/states") ++task_requests;
  EXPECT_EQ(task_requests, 2);
}

// A long batch goes out as several requests, two at a time. When one of them fails
// (the server is busy), what it carried is kept and sent again, along with whatever was
// not sent yet; what the server accepted is not lost or duplicated.
TEST(ServerReporter, AFailedRequestOfALongBatchIsSentAgain) {
  int task_calls = 0;                  // the test server calls the handler for one
  std::vector<std::string> accepted;   // request at a time: no lock needed
  culvert::testing::TestHttpServer server([&](const culvert::testing::TestRequest& r) {
    if (++task_calls == 2) return culvert::testing::TestResponse{503, R"({"error":{"code":"unavailable","message":"busy"}})"};
    accepted.push_back(r.body);
    return culvert::testing::TestResponse{200, "{}"};
  });
  ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                          ReporterOptions{.flush_interval = std::chrono::hours(1), .batch_size = 100000,
                                          .max_request_items = 1000});
  std::string name = "m";
  std::vector<std::string> messages;  // all different: one item per task run
  for (int i = 0; i < 4500; ++i) messages.push_back("m" + std::to_string(i));
  for (int i = 0; i < 4500; ++i)
    reporter.on_task_run(TaskRunEvent{0, name, i, State::kSuccess, 1, messages[static_cast<size_t>(i)],
                                      std::chrono::system_clock::now()});
  EXPECT_EQ(reporter.flush().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(reporter.flush().is_ok());
  EXPECT_EQ(reporter.dropped_task_updates(), 0u);
  EXPECT_TRUE(reporter.close().is_ok());
  std::map<int, int> times_accepted;  // map index -> accepted requests that carried it
  for (const auto& body : accepted) {
    auto batch = json::parse(body);
    EXPECT_LE(batch.size(), 1000u);
    for_each_task_run(batch, [&](int i, const json&) { ++times_accepted[i]; });
  }
  ASSERT_EQ(times_accepted.size(), 4500u);
  for (const auto& [i, times] : times_accepted) EXPECT_EQ(times, 1) << i;
}

// The reporter's requests get answers it cannot read: an error to retry, never a crash.
// The server's log quota (413): one warning, no further log requests, the lines dropped
// and counted; task-run states still go, and the final flush succeeds.
TEST(ServerReporter, ALogQuotaRefusalStopsTheLogsOnceAndTheRunGoesOn) {
  std::atomic<int> log_requests{0};
  culvert::testing::TestHttpServer server([&](const culvert::testing::TestRequest& r) {
    if (r.target == "/api/v1/logs") {
      if (log_requests++ == 0) return culvert::testing::TestResponse{201, R"({"ids":[1]})"};
      return culvert::testing::TestResponse{
          413, R"({"error":{"code":"payload_too_large","message":"flow run run-1 has reached its log quota of 100 bytes"}})"};
    }
    return culvert::testing::TestResponse{200, "{}"};
  });
  std::vector<std::string> warnings;
  ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                          ReporterOptions{.flush_interval = std::chrono::hours(1),
                                          .warn = [&](const std::string& w) { warnings.push_back(w); }});
  std::string name = "t";
  reporter.on_log(LogEvent{0, name, -1, LogLevel::kInfo, "fits", std::chrono::system_clock::now()});
  ASSERT_TRUE(reporter.flush().is_ok());
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i)
      reporter.on_log(LogEvent{0, name, -1, LogLevel::kInfo, "more", std::chrono::system_clock::now()});
    reporter.on_task_run(task_event(name, -1, round == 2 ? State::kSuccess : State::kRunning));
    ASSERT_TRUE(reporter.flush().is_ok());
  }
  reporter.log(LogLevel::kError, "a run-level line");
  ASSERT_TRUE(reporter.close().is_ok());
  EXPECT_EQ(log_requests.load(), 2);  // the one that fit, the one refused
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("log quota of 100 bytes"), std::string::npos) << warnings[0];
  EXPECT_TRUE(reporter.logs_refused());
  EXPECT_EQ(reporter.dropped_logs(), 31u);
  int task_requests = 0;
  std::string last_state;
  for (const auto& r : server.requests())
    if (r.target == "/api/v1/task-runs/states") {
      ++task_requests;
      last_state = json::parse(r.body)[0]["state"];
    }
  EXPECT_EQ(task_requests, 3);
  EXPECT_EQ(last_state, "Success");
}

// Log requests stay under the server's body limit: long messages are cut to 16 KiB as
// the server would, and a request carries about max_request_bytes of them.
TEST(ServerReporter, LogRequestsAreBoundedInBytes) {
  culvert::testing::TestHttpServer server([](const culvert::testing::TestRequest&) {
    return culvert::testing::TestResponse{201, R"({"ids":[]})"};
  });
  {
    ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                            ReporterOptions{.flush_interval = std::chrono::hours(1), .max_request_bytes = 64 * 1024});
    const std::string big(100 * 1024, 'x');
    for (int i = 0; i < 20; ++i)
      reporter.on_log(LogEvent{0, "", -1, LogLevel::kInfo, big, std::chrono::system_clock::now()});
    ASSERT_TRUE(reporter.close().is_ok());
  }
  size_t lines = 0;
  for (const auto& r : server.requests()) {
    EXPECT_LE(r.body.size(), 64u * 1024 + 4096);
    auto batch = json::parse(r.body);
    for (const auto& l : batch) {
      EXPECT_LE(l["message"].get<std::string>().size(), 16u * 1024);
      EXPECT_NE(l["message"].get<std::string>().find("[truncated from 102400 bytes]"), std::string::npos);
      ++lines;
    }
  }
  EXPECT_EQ(lines, 20u);
  EXPECT_GE(server.requests().size(), 5u);
}

TEST(ServerReporter, AnAnswerThatIsNotJsonIsAnErrorNotACrash) {
  culvert::testing::TestHttpServer server([](const culvert::testing::TestRequest&) {
    return culvert::testing::TestResponse{200, "<html>proxy error</html>"};
  });
  ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                          ReporterOptions{.flush_interval = std::chrono::hours(1),
                                          .close_wait = std::chrono::milliseconds(0)});
  std::string name = "t";
  reporter.on_task_run(task_event(name, -1, State::kSuccess));
  Status st = reporter.flush();
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("not JSON"), std::string::npos) << st.message();
  reporter.log(LogLevel::kInfo, "a line");
  EXPECT_FALSE(reporter.close().is_ok());
}

// A log line or task message with bytes that are not UTF-8 (a command's output) is sent
// with those bytes replaced.
TEST(ServerReporter, BytesThatAreNotUtf8AreSentReplaced) {
  culvert::testing::TestHttpServer server([](const culvert::testing::TestRequest&) {
    return culvert::testing::TestResponse{200, "{}"};
  });
  {
    ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                            ReporterOptions{.flush_interval = std::chrono::hours(1)});
    std::string name = "t";
    const std::string bad = "half \xff\xfe of it";
    reporter.on_task_run(TaskRunEvent{0, name, -1, State::kFailed, 1, bad, std::chrono::system_clock::now()});
    reporter.on_log(LogEvent{0, name, -1, LogLevel::kInfo, bad, std::chrono::system_clock::now()});
    ASSERT_TRUE(reporter.close().is_ok());
  }
  ASSERT_EQ(server.requests().size(), 2u);
  for (const auto& r : server.requests()) {
    auto batch = json::parse(r.body);
    ASSERT_EQ(batch.size(), 1u) << r.body;
    EXPECT_EQ(batch[0]["message"], "half \xef\xbf\xbd\xef\xbf\xbd of it") << r.body;
  }
}

// close() retries the final flush while the server is unreachable, with backoff on the
// reporter's clock (200 ms doubling to 5 s) until close_wait has passed: simulated time.
TEST(ServerReporter, CloseRetriesOnTheClockUntilItsWaitHasPassed) {
  culvert::testing::TestHttpServer server([](const culvert::testing::TestRequest&) {
    return culvert::testing::TestResponse{503, R"({"error":{"code":"unavailable","message":"restarting"}})"};
  });
  ManualClock clock;
  const SteadyTime t0 = clock.steady_now();
  ServerReporter reporter({.api_url = server.url(), .api_token = "t"}, "run-1",
                          ReporterOptions{.flush_interval = std::chrono::hours(1),
                                          .close_wait = std::chrono::seconds(10), .clock = &clock});
  std::string name = "t";
  reporter.on_task_run(task_event(name, -1, State::kSuccess));
  EXPECT_EQ(reporter.close().code(), StatusCode::kUnavailable);
  // Flushes at 0, 200, 600, 1400, 3000 and 6200 ms; the next would be at 11200.
  EXPECT_EQ(server.requests().size(), 6u);
  EXPECT_EQ(clock.steady_now() - t0, std::chrono::milliseconds(6200));
}

}  // namespace
}  // namespace culvert::runtime
