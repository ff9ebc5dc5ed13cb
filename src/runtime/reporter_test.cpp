#include "runtime/reporter.hpp"

#include <gtest/gtest.h>

#include <atomic>
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

}  // namespace
}  // namespace culvert::runtime
