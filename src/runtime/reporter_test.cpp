#include "runtime/reporter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "test_http_server.hpp"

namespace culvert::runtime {
namespace {

using nlohmann::json;

TaskRunEvent task_event(const std::string& name, int map_index, State s) {
  return TaskRunEvent{0, name, map_index, s, 1, "", std::chrono::system_clock::now()};
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
    for (const auto& item : batch) {
      EXPECT_EQ(item["flow_run_id"], "run-1");
      latest[item["map_index"].get<int>()] = item["state"].get<std::string>();
    }
  }
  ASSERT_EQ(latest.size(), 2500u);
  for (const auto& [i, state] : latest) EXPECT_EQ(state, "Success") << i;
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
  for (int i = 0; i < 4500; ++i) reporter.on_task_run(task_event(name, i, State::kSuccess));
  EXPECT_EQ(reporter.flush().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(reporter.flush().is_ok());
  EXPECT_EQ(reporter.dropped_task_updates(), 0u);
  EXPECT_TRUE(reporter.close().is_ok());
  std::map<int, int> times_accepted;  // map index -> accepted requests that carried it
  for (const auto& body : accepted)
    for (const auto& item : json::parse(body)) ++times_accepted[item["map_index"].get<int>()];
  ASSERT_EQ(times_accepted.size(), 4500u);
  for (const auto& [i, times] : times_accepted) EXPECT_EQ(times, 1) << i;
}

}  // namespace
}  // namespace culvert::runtime
