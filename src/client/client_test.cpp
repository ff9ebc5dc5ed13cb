#include "client/api.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "test_http_server.hpp"

namespace culvert::client {
namespace {

using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;
using json = nlohmann::json;

TEST(Client, SendsTokenJsonAndParsesAnswers) {
  TestHttpServer server([](const TestRequest& r) -> TestResponse {
    if (r.target == "/api/health") return {200, R"({"status":"ok","version":"0.1.0"})"};
    if (r.method == "POST" && r.target == "/api/v1/projects")
      return {201, json{{"id", "p1"}, {"name", json::parse(r.body)["name"]}}.dump()};
    if (r.method == "DELETE") return {204, ""};
    return {200, R"({"flows":[]})"};
  });
  ApiClient api({.api_url = server.url() + "/", .api_token = "cvt_secret"});
  auto h = api.health();
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ((*h)["status"], "ok");
  auto p = api.create_project("etl", "nightly jobs");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ((*p)["name"], "etl");
  auto f = api.list_flows("my project/x");
  ASSERT_TRUE(f.is_ok());
  auto d = api.revoke_token("t1");
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_TRUE(d->is_object() && d->empty());

  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].headers["authorization"], "Bearer cvt_secret");
  EXPECT_EQ(reqs[1].headers["content-type"], "application/json");
  EXPECT_EQ(json::parse(reqs[1].body), (json{{"name", "etl"}, {"description", "nightly jobs"}}));
  EXPECT_EQ(reqs[2].target, "/api/v1/flows?project=my%20project%2Fx");
  EXPECT_EQ(reqs[3].method, "DELETE");
  EXPECT_EQ(reqs[3].target, "/api/v1/tokens/t1");
}

TEST(Client, RoutesAndBodies) {
  TestHttpServer server([](const TestRequest&) -> TestResponse { return {200, "{}"}; });
  ApiClient api({.api_url = server.url()});
  ASSERT_TRUE(api.list_flow_runs({.flow_id = "f1", .state = "Running", .limit = 5, .cursor = "c 2"}).is_ok());
  ASSERT_TRUE(api.set_flow_run_state("r1", "Running", "go", 3).is_ok());
  ASSERT_TRUE(api.get_logs("r1", "17", std::chrono::milliseconds(250)).is_ok());
  ASSERT_TRUE(api.claim_runs("a1", 2, std::chrono::milliseconds(0)).is_ok());
  ASSERT_TRUE(api.create_token("ci", "runner", "30d").is_ok());
  ASSERT_TRUE(api.register_agent("a", "local", {"x", "y"}).is_ok());
  ASSERT_TRUE(api.set_schedule_active("f1", false).is_ok());
  ASSERT_TRUE(api.retry_flow_run("r1").is_ok());
  ASSERT_TRUE(api.register_agent("b", "docker", {}, 6).is_ok());
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 9u);
  EXPECT_EQ(reqs[0].target, "/api/v1/flow-runs?flow_id=f1&state=Running&limit=5&cursor=c%202");
  EXPECT_EQ(reqs[1].target, "/api/v1/flow-runs/r1/state");
  EXPECT_EQ(json::parse(reqs[1].body), (json{{"state", "Running"}, {"message", "go"}, {"expected_version", 3}}));
  EXPECT_EQ(reqs[2].target, "/api/v1/flow-runs/r1/logs?after=17&wait_ms=250");
  EXPECT_EQ(json::parse(reqs[3].body), (json{{"max", 2}, {"wait_ms", 0}}));
  EXPECT_EQ(json::parse(reqs[4].body), (json{{"name", "ci"}, {"scope", "runner"}, {"expires", "30d"}}));
  EXPECT_EQ(json::parse(reqs[5].body)["labels"], (json{"x", "y"}));
  EXPECT_FALSE(json::parse(reqs[5].body).contains("max_concurrent"));  // not given: not sent
  EXPECT_EQ(reqs[6].target, "/api/v1/flows/f1/schedule");
  EXPECT_EQ(json::parse(reqs[6].body), (json{{"active", false}}));
  EXPECT_EQ(reqs[7].target, "/api/v1/flow-runs/r1/retry");
  EXPECT_EQ(json::parse(reqs[8].body),
            (json{{"name", "b"}, {"type", "docker"}, {"labels", json::array()}, {"max_concurrent", 6}}));
}

TEST(Client, ChildRunRoutes) {
  TestHttpServer server([](const TestRequest&) -> TestResponse { return {200, R"({"children":[]})"}; });
  ApiClient api({.api_url = server.url()});
  json chunks = json::array({{{"chunk", 0}, {"start", 0}, {"end", 10}}});
  auto made = api.create_child_runs("r 1", "score", chunks);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  EXPECT_TRUE((*made)["children"].is_array());
  ASSERT_TRUE(api.list_child_runs("r1", "score map", 2, 5, std::chrono::milliseconds(250)).is_ok());
  ASSERT_TRUE(api.list_child_runs("r1").is_ok());
  ASSERT_TRUE(api.list_flow_runs({.parent = "r1"}).is_ok());
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/api/v1/flow-runs/r%201/children");
  EXPECT_EQ(json::parse(reqs[0].body), (json{{"task", "score"}, {"chunks", chunks}}));
  EXPECT_EQ(reqs[1].target,
            "/api/v1/flow-runs/r1/children?final_above=5&task=score%20map&parent_attempt=2&wait_ms=250");
  EXPECT_EQ(reqs[2].target, "/api/v1/flow-runs/r1/children?final_above=-1");
  EXPECT_EQ(reqs[3].target, "/api/v1/flow-runs?parent=r1");
}

TEST(Client, KeepsTheConnectionAlive) {
  TestHttpServer server([](const TestRequest&) -> TestResponse { return {200, "{}"}; });
  ApiClient api({.api_url = server.url()});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(api.list_agents().is_ok());
  ASSERT_TRUE(api.create_project("p", "").is_ok());
  EXPECT_EQ(server.connections(), 1);
}

TEST(Client, ServerErrorsBecomeStatusWithTheServersMessage) {
  TestHttpServer server([](const TestRequest& r) -> TestResponse {
    if (r.target.find("missing") != std::string::npos)
      return {404, R"({"error":{"code":"not_found","message":"flow run 'missing' does not exist"}})"};
    if (r.target.find("conflict") != std::string::npos)
      return {409, R"({"error":{"code":"conflict","message":"illegal transition Success -> Running"}})"};
    if (r.target == "/api/v1/tokens") return {403, R"({"error":{"code":"forbidden","message":"scope user may not manage tokens"}})"};
    if (r.target == "/api/v1/agents") return {401, R"({"error":{"code":"unauthenticated","message":"no token"}})"};
    return {500, "oops"};
  });
  ApiClient api({.api_url = server.url()});
  auto a = api.get_flow_run("missing");
  EXPECT_EQ(a.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(a.status().message(), "flow run 'missing' does not exist");
  auto b = api.set_flow_run_state("conflict", "Running", "");
  EXPECT_EQ(b.status().code(), StatusCode::kConflict);
  EXPECT_EQ(b.status().message(), "illegal transition Success -> Running");
  EXPECT_EQ(api.list_tokens().status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(api.list_agents().status().code(), StatusCode::kUnauthenticated);
  auto c = api.list_projects();
  EXPECT_EQ(c.status().code(), StatusCode::kInternal);
  EXPECT_NE(c.status().message().find("HTTP 500 from GET " + server.url() + "/api/v1/projects: oops"),
            std::string::npos)
      << c.status().message();
}

TEST(Client, AnAnswerLongerThanTheLimitIsRefusedNotBuffered) {
  TestHttpServer server([](const TestRequest&) -> TestResponse {
    return {200, "{\"projects\":[\"" + std::string(300000, 'x') + "\"]}"};
  });
  ApiClient small({.api_url = server.url(), .max_answer_bytes = 100000});
  auto r = small.list_projects();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), StatusCode::kTooLarge);
  EXPECT_NE(r.status().message().find("longer than 100000 bytes"), std::string::npos) << r.status().to_string();
  // The same answer under the default limit is read whole.
  ApiClient normal({.api_url = server.url()});
  auto whole = normal.list_projects();
  ASSERT_TRUE(whole) << whole.status().to_string();
  EXPECT_EQ((*whole)["projects"][0].get<std::string>().size(), 300000u);
}

TEST(Client, NonJsonSuccessIsAnError) {
  TestHttpServer server([](const TestRequest&) -> TestResponse { return {200, "<html>"}; });
  ApiClient api({.api_url = server.url()});
  auto r = api.list_projects();
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("not JSON"), std::string::npos);
}

TEST(Client, DeeplyNestedAnswerIsAnErrorNotACrash) {
  // A hostile or broken server: 100,000 nested arrays where a project list should be.
  std::string deep = "{\"projects\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  TestHttpServer server([&](const TestRequest&) -> TestResponse { return {200, deep}; });
  ApiClient api({.api_url = server.url()});
  auto r = api.list_projects();
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("limit of 128 levels"), std::string::npos) << r.status().message().substr(0, 300);
}

TEST(Client, ConnectionRefusedNamesTheUrl) {
  // A port that was just free: bind, read it back, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  ApiClient api({.api_url = url});
  auto r = api.health();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("cannot connect to the Culvert server at " + url), std::string::npos)
      << r.status().message();
}

TEST(Client, BadUrl) {
  ApiClient api({.api_url = "htp:/nowhere"});
  auto r = api.health();
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("htp:/nowhere"), std::string::npos) << r.status().message();
}

TEST(Client, RequestTimeout) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  TestHttpServer server([&](const TestRequest&) -> TestResponse {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });  // held until the client has given up
    return {200, "{}"};
  });
  ApiClient api({.api_url = server.url(), .request_timeout = std::chrono::milliseconds(100)});
  auto r = api.list_projects();
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout);
}

TEST(StatusFromHttp, Mapping) {
  EXPECT_EQ(status_from_http(400, "", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status_from_http(413, "", "x").code(), StatusCode::kTooLarge);
  EXPECT_EQ(status_from_http(422, "", "x").code(), StatusCode::kUnprocessable);
  EXPECT_EQ(status_from_http(418, "", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status_from_http(503, "", "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(status_from_http(500, "", "x").code(), StatusCode::kInternal);
  EXPECT_EQ(status_from_http(404, R"({"error":{"code":"x"}})", "GET u").message(),
            R"(HTTP 404 from GET u: {"error":{"code":"x"}})");
  EXPECT_EQ(url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
}

}  // namespace
}  // namespace culvert::client
