#include "aws/json_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>

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
}

// A transport that answers from a script and records what was sent.
class ScriptedTransport final : public HttpTransport {
 public:
  // An answer: an HTTP response, or (status 0) a connection failure.
  struct Answer {
    long status;
    std::string body;
  };
  explicit ScriptedTransport(std::vector<Answer> answers) : answers_(std::move(answers)) {}
  Result<HttpResponse> send(const HttpRequest& request) override {
    std::lock_guard lock(mu_);
    targets_.push_back(request.url);
    if (next_ >= answers_.size()) return HttpResponse{200, {}, "{}"};
    const Answer& a = answers_[next_++];
    if (a.status == 0) return unavailable("cannot reach " + request.url + ": Couldn't connect to server");
    return HttpResponse{a.status, {}, a.body};
  }
  size_t sent() {
    std::lock_guard lock(mu_);
    return targets_.size();
  }

 private:
  std::mutex mu_;
  std::vector<Answer> answers_;
  size_t next_ = 0;
  std::vector<std::string> targets_;
};

// A simulated clock that records every wait.
class RecordingClock final : public Clock {
 public:
  SysTime now() const override { return inner_.now(); }
  SteadyTime steady_now() const override { return inner_.steady_now(); }
  void sleep_for(std::chrono::nanoseconds d) override {
    waits.push_back(std::chrono::duration_cast<Millis>(d));
    inner_.sleep_for(d);
  }
  std::vector<Millis> waits;

 private:
  ManualClock inner_;
};

struct FakeFixture {
  RecordingClock clock;
  SeededRandom random{7};
  AwsJsonClient client(ScriptedTransport& t, int attempts, Millis base = Millis(100), Millis cap = Millis(5000)) {
    JsonServiceConfig cfg;
    cfg.service = "ecs";
    cfg.target_prefix = "AmazonEC2ContainerServiceV20141113";
    cfg.region = "eu-west-1";
    cfg.endpoint = "http://ecs.test";
    cfg.credentials = std::make_unique<StaticCredentialsProvider>(Credentials{"AKID", "secret", "", {}});
    cfg.clock = &clock;
    cfg.random = &random;
    cfg.transport = &t;
    cfg.max_attempts = attempts;
    cfg.base_backoff = base;
    cfg.max_backoff = cap;
    return AwsJsonClient(std::move(cfg));
  }
};

const std::string kThrottled = R"({"__type":"ThrottlingException","message":"Rate exceeded"})";

TEST(AwsJsonClientRetries, BackoffIsExponentialJitteredAndCapped) {
  FakeFixture f;
  ScriptedTransport t(std::vector<ScriptedTransport::Answer>(7, {400, kThrottled}));
  auto c = f.client(t, 8, Millis(100), Millis(1000));
  ASSERT_TRUE(c.call("RunTask", "{}"));  // the 8th attempt succeeds
  EXPECT_EQ(t.sent(), 8u);
  ASSERT_EQ(f.clock.waits.size(), 7u);
  const Millis::rep nominal[] = {100, 200, 400, 800, 1000, 1000, 1000};
  bool jittered = false;
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_GE(f.clock.waits[i].count(), nominal[i] / 2) << "wait " << i;
    EXPECT_LE(f.clock.waits[i].count(), nominal[i]) << "wait " << i;
    if (f.clock.waits[i].count() != nominal[i] && f.clock.waits[i].count() != nominal[i] / 2) jittered = true;
  }
  EXPECT_TRUE(jittered);
}

TEST(AwsJsonClientRetries, RetriesWhatMaySucceedAgain) {
  struct Case {
    const char* name;
    ScriptedTransport::Answer first;
  };
  const Case cases[] = {
      {"throttling", {400, kThrottled}},
      {"5xx", {503, R"({"__type":"ServerException","message":"oops"})"}},
      {"500 without body", {500, ""}},
      {"connection refused", {0, ""}},
      {"concurrent revision",
       {400, R"({"__type":"ClientException","message":"Too many concurrent attempts to create a new revision of the specified family."})"}},
      {"xml throttling", {400, "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"}},
  };
  for (const auto& cs : cases) {
    FakeFixture f;
    ScriptedTransport t({cs.first});
    auto c = f.client(t, 4);
    auto r = c.call("RegisterTaskDefinition", "{}");
    EXPECT_TRUE(r) << cs.name << ": " << r.status().to_string();
    EXPECT_EQ(t.sent(), 2u) << cs.name;
    EXPECT_EQ(f.clock.waits.size(), 1u) << cs.name;
  }
}

TEST(AwsJsonClientRetries, NeverRetriesOther4xx) {
  const ScriptedTransport::Answer answers[] = {
      {400, R"({"__type":"ClientException","message":"Unable to describe task definition."})"},
      {400, R"({"__type":"InvalidParameterException","message":"No Container Instances were found"})"},
      {400, R"({"__type":"ClusterNotFoundException","message":"Cluster not found."})"},
      {400, R"({"__type":"AccessDeniedException","message":"no"})"},
      {403, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>bad signature</Message></Error></ErrorResponse>"},
      {404, ""},
  };
  for (const auto& a : answers) {
    FakeFixture f;
    ScriptedTransport t({a});
    auto c = f.client(t, 4);
    AwsError err;
    auto r = c.call("RunTask", "{}", &err);
    ASSERT_FALSE(r) << a.body;
    EXPECT_EQ(t.sent(), 1u) << a.body;
    EXPECT_TRUE(f.clock.waits.empty()) << a.body;
    EXPECT_EQ(err.http_status, a.status);
    EXPECT_EQ(r.status().message().find("attempts"), std::string::npos) << r.status().message();
  }
}

TEST(AwsJsonClientRetries, GivesUpAfterMaxAttemptsNamingTheLastError) {
  FakeFixture f;
  ScriptedTransport t({{0, ""}, {0, ""}, {0, ""}});
  auto c = f.client(t, 3);
  AwsError err;
  auto r = c.call("DescribeTasks", "{}", &err);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(t.sent(), 3u);
  EXPECT_EQ(f.clock.waits.size(), 2u);
  EXPECT_EQ(err.http_status, 0);
  EXPECT_NE(r.status().message().find("ecs DescribeTasks failed: no answer: cannot reach http://ecs.test/"),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("(after 3 attempts)"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace culvert::aws
