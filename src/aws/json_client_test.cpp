#include "aws/json_client.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "core/crypto.hpp"
#include "aws/sigv4.hpp"
#include "test_http_server.hpp"

namespace culvert::aws {
namespace {
using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;

struct Fixture {
  ManualClock clock;
  SeededRandom random{3};
  AwsJsonClient client(const std::string& endpoint, int attempts = 4) {
    JsonServiceConfig cfg;
    cfg.service = "ecs";
    cfg.target_prefix = "AmazonEC2ContainerServiceV20141113";
    cfg.region = "eu-west-1";
    cfg.endpoint = endpoint;
    cfg.credentials = std::make_unique<StaticCredentialsProvider>(Credentials{"AKIDJSON", "secret", "tok", {}});
    cfg.clock = &clock;
    cfg.random = &random;
    cfg.max_attempts = attempts;
    return AwsJsonClient(std::move(cfg));
  }
};

TEST(AwsJsonClient, PostsSignedJson11) {
  Fixture f;
  TestHttpServer server([](const TestRequest&) { return TestResponse{200, R"({"tasks":[]})"}; });
  auto c = f.client(server.url());
  auto r = c.call("RunTask", R"({"cluster":"default"})");
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(*r, R"({"tasks":[]})");
  auto req = server.requests().at(0);
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/");
  EXPECT_EQ(req.headers.at("x-amz-target"), "AmazonEC2ContainerServiceV20141113.RunTask");
  EXPECT_EQ(req.headers.at("content-type"), "application/x-amz-json-1.1");
  EXPECT_EQ(req.headers.at("x-amz-security-token"), "tok");
  EXPECT_EQ(req.headers.count("x-amz-content-sha256"), 0u);
  EXPECT_EQ(req.body, R"({"cluster":"default"})");
  SigningRequest sr{.method = "POST", .host = "127.0.0.1:" + std::to_string(server.port()), .path = "/",
                    .headers = {{"Content-Type", "application/x-amz-json-1.1"},
                                {"X-Amz-Target", "AmazonEC2ContainerServiceV20141113.RunTask"}},
                    .payload_sha256 = sha256_hex(R"({"cluster":"default"})")};
  auto expected = sign_v4(sr, {"AKIDJSON", "secret", "tok", {}},
                          {.region = "eu-west-1", .service = "ecs", .double_encode_path = true,
                           .content_sha256_header = false},
                          f.clock.now());
  EXPECT_EQ(req.headers.at("authorization"), expected.authorization);
}

TEST(AwsJsonClient, MapsErrors) {
  Fixture f;
  std::string type;
  int status = 400;
  TestHttpServer server([&](const TestRequest&) {
    return TestResponse{status, R"({"__type":")" + type + R"(","message":"details here"})"};
  });
  auto c = f.client(server.url());
  auto code_for = [&](std::string t, int s = 400) {
    type = std::move(t);
    status = s;
    return c.call("DescribeTasks", "{}").status();
  };
  EXPECT_EQ(code_for("com.amazonaws.ecs#ClusterNotFoundException").code(), StatusCode::kNotFound);
  EXPECT_EQ(code_for("UnrecognizedClientException").code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(code_for("InvalidSignatureException", 403).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(code_for("AccessDeniedException").code(), StatusCode::kPermissionDenied);
  Status st = code_for("com.amazonaws.ecs#ClientException");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "ecs DescribeTasks failed: HTTP 400 ClientException: details here");
  EXPECT_EQ(server.requests().size(), 5u);
}

TEST(AwsJsonClient, RetriesThrottlingThenGivesUp) {
  Fixture f;
  std::atomic<int> n{0};
  TestHttpServer server([&](const TestRequest&) {
    ++n;
    return TestResponse{400, R"({"__type":"ThrottlingException","message":"Rate exceeded"})"};
  });
  auto c = f.client(server.url(), 3);
  auto t0 = f.clock.now();
  auto st = c.call("RunTask", "{}").status();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("after 3 attempts"), std::string::npos) << st.message();
  EXPECT_EQ(n.load(), 3);
  EXPECT_GE(f.clock.now() - t0, std::chrono::milliseconds(150));  // 100 + 200 ms, jittered

  std::atomic<int> m{0};
  TestHttpServer flaky([&](const TestRequest&) {
    return m++ == 0 ? TestResponse{503, R"({"__type":"ServerException","message":"oops"})"}
                    : TestResponse{200, "{}"};
  });
  auto c2 = f.client(flaky.url());
  EXPECT_TRUE(c2.call("RunTask", "{}"));
  EXPECT_EQ(m.load(), 2);
  EXPECT_EQ(aws_error_code("com.amazon.coral.service#ExpiredTokenException"), "ExpiredTokenException");
  EXPECT_EQ(aws_error_code("ValidationException:http://internal.amazon.com/"), "ValidationException");
}

}  // namespace
}  // namespace culvert::aws
