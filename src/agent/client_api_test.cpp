#include "agent/client_api.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_http_server.hpp"

namespace culvert::agent {
namespace {

using nlohmann::json;
using testing::TestHttpServer;
using testing::TestRequest;
using testing::TestResponse;

// A server that answers every request with `body` (and keeps what was asked).
class CannedServer {
 public:
  CannedServer()
      : server_([this](const TestRequest& r) {
          if (on_request) on_request(r);
          if (r.target.rfind("/api/v1/flows/", 0) == 0) return TestResponse{200, flow_body};
          return TestResponse{status, body};
        }) {}
  ClientAgentApi api(Clock& clock, const std::atomic<bool>* stop = nullptr) {
    return ClientAgentApi(client::ClientOptions{.api_url = server_.url(), .api_token = "t"}, clock, stop);
  }
  std::vector<TestRequest> requests() const { return server_.requests(); }
  int status = 200;
  std::string body = "{}";
  std::string flow_body = R"({"id":"f1","run_config":{"type":"local"}})";
  std::function<void(const TestRequest&)> on_request;

 private:
  TestHttpServer server_;
};

// Answers that are not what the route returns: none may throw, each is an error.
const std::vector<std::string> kMalformed = {
    "not json", "[1,2,3]", "42", "\"text\"", "null", R"({"id":7})", R"({"runs":{}})", R"({"state":3})",
    R"({"runs":[{"id":1}]})", R"({"runs":[7]})", R"({"runs":[{"id":"r","flow_id":"f","token":null}]})",
    R"({"state":"Bogus"})", R"({"runs":[{"id":"r","flow_id":"f","state":"Running","agent_id":"a1","infrastructure":"x"}]})",
    R"({"runs":[{"id":"r","flow_id":"f","state":"Running","agent_id":"a1","infrastructure":{"kind":1}}]})",
    R"({"runs":[{"id":"r","flow_id":"f","state":"Running","agent_id":"a1","run_config":[]}]})",
    R"({"runs":[],"next_cursor":5})"};

TEST(ClientAgentApi, MalformedAnswersAreErrorsForEveryCall) {
  ManualClock clock;
  CannedServer server;
  auto api = server.api(clock);
  for (const auto& body : kMalformed) {
    SCOPED_TRACE(body);
    server.body = body;
    auto id = api.register_agent("a1", "local", {"dev"}, 4);
    EXPECT_FALSE(id && !id->empty() && body.find("\"id\":\"") == std::string::npos);
    auto claimed = api.claim("a1", {"local"}, 4, Millis(0));
    if (claimed) EXPECT_TRUE(claimed->empty()) << "a malformed claim answer produced runs";
    auto state = api.get_run_state("r1");
    EXPECT_FALSE(state);
    auto unfinished = api.list_unfinished_runs("a1");
    if (unfinished) EXPECT_TRUE(unfinished->empty());
    // Routes whose answer the agent does not read: any 2xx is fine, nothing throws.
    (void)api.heartbeat("a1");
    (void)api.deregister_agent("a1");
    (void)api.set_run_state("r1", State::kCrashed, "m");
    (void)api.send_logs("r1", {"line"});
    (void)api.report_infrastructure("r1", {"process", "1"});
  }
  // Messages name the route and the field.
  server.body = R"({"id":7})";
  auto id = api.register_agent("a1", "local", {}, 4);
  ASSERT_FALSE(id);
  EXPECT_NE(id.status().message().find("\"id\" is not a string"), std::string::npos) << id.status().message();
  server.body = R"({"state":"Bogus"})";
  auto st = api.get_run_state("r1");
  ASSERT_FALSE(st);
  EXPECT_NE(st.status().message().find("not a known state"), std::string::npos) << st.status().message();
  // A state and its message (a Cancelling run's names who asked).
  server.body = R"j({"state":"Cancelling","state_message":"cancel requested by alice (user token)"})j";
  auto cancelling = api.get_run_state("r1");
  ASSERT_TRUE(cancelling) << cancelling.status().to_string();
  EXPECT_EQ(cancelling->state, State::kCancelling);
  EXPECT_EQ(cancelling->message, "cancel requested by alice (user token)");
  server.body = R"({"state":"Running","state_message":7})";
  auto bad_message = api.get_run_state("r1");
  ASSERT_FALSE(bad_message);
  EXPECT_NE(bad_message.status().message().find("state_message"), std::string::npos) << bad_message.status().message();
  server.body = "not json";
  auto claimed = api.claim("a1", {"local"}, 1, Millis(0));
  ASSERT_FALSE(claimed);
  EXPECT_NE(claimed.status().message().find("not JSON"), std::string::npos) << claimed.status().message();
  server.body = R"({"runs":[{"id":"r","flow_id":"f","token":null}]})";
  claimed = api.claim("a1", {"local"}, 1, Millis(0));
  ASSERT_FALSE(claimed);
  EXPECT_NE(claimed.status().message().find("\"token\" is not a string"), std::string::npos);
}

TEST(ClientAgentApi, AMalformedFlowAnswerIsAnErrorToo) {
  ManualClock clock;
  CannedServer server;
  auto api = server.api(clock);
  server.body = R"({"runs":[{"id":"r","flow_id":"f","state":"Running","agent_id":"a1"}],"next_cursor":null})";
  for (const char* flow : {"[]", R"({"run_config":"x"})", "nope"}) {
    SCOPED_TRACE(flow);
    server.flow_body = flow;
    auto api2 = server.api(clock);  // no cached run config
    EXPECT_FALSE(api2.list_unfinished_runs("a1"));
  }
}

TEST(ClientAgentApi, WellFormedAnswersDecode) {
  ManualClock clock;
  CannedServer server;
  auto api = server.api(clock);
  server.body = R"({"runs":[{"id":"r1","flow_id":"f1","flow_name":"etl","token":"tok","state":"Submitted"}]})";
  auto claimed = api.claim("a1", {"local", "docker"}, 2, Millis(0));
  ASSERT_TRUE(claimed) << claimed.status().to_string();
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].token, "tok");
  EXPECT_EQ(json::parse((*claimed)[0].run_config_json)["type"], "local");
  auto reqs = server.requests();
  auto claim_req = std::find_if(reqs.begin(), reqs.end(), [](const TestRequest& r) {
    return r.target == "/api/v1/agents/a1/claim";
  });
  ASSERT_NE(claim_req, reqs.end());
  auto body = json::parse(claim_req->body);
  EXPECT_EQ(body["types"], json({"local", "docker"}));
  EXPECT_EQ(body["max"], 2);

  server.body = R"({"runs":[
      {"id":"r1","flow_id":"f1","flow_name":"etl","state":"Running","agent_id":"a1",
       "infrastructure":{"kind":"container","id":"abc","agent_id":"a1","reported_at":"2026-01-01T00:00:00Z"},
       "run_config":{"type":"docker","image":"i"}},
      {"id":"r2","flow_id":"f1","state":"Submitted","agent_id":"a1","infrastructure":null},
      {"id":"r3","flow_id":"f1","state":"Success","agent_id":"a1"},
      {"id":"r4","flow_id":"f1","state":"Running","agent_id":"other"}],"next_cursor":null})";
  auto unfinished = api.list_unfinished_runs("a1");
  ASSERT_TRUE(unfinished) << unfinished.status().to_string();
  ASSERT_EQ(unfinished->size(), 2u);  // r3 is final, r4 another agent's
  EXPECT_EQ((*unfinished)[0].state, State::kRunning);
  ASSERT_TRUE((*unfinished)[0].infrastructure);
  EXPECT_EQ((*unfinished)[0].infrastructure->id, "abc");
  EXPECT_EQ(json::parse((*unfinished)[0].run.run_config_json)["image"], "i");
  EXPECT_FALSE((*unfinished)[1].infrastructure);
  reqs = server.requests();
  EXPECT_NE(reqs.back().target.find("agent_id=a1&state=Submitted&state=Running&state=Cancelling"), std::string::npos)
      << reqs.back().target;

  server.body = "{}";
  ASSERT_TRUE(api.report_infrastructure("r1", {"container", "abc"}).is_ok());
  reqs = server.requests();
  EXPECT_EQ(reqs.back().method, "POST");
  EXPECT_EQ(reqs.back().target, "/api/v1/flow-runs/r1/infrastructure");
  EXPECT_EQ(json::parse(reqs.back().body), json({{"kind", "container"}, {"id", "abc"}}));
  ASSERT_TRUE(api.deregister_agent("a1").is_ok());
  EXPECT_EQ(server.requests().back().method, "DELETE");
  EXPECT_EQ(server.requests().back().target, "/api/v1/agents/a1");
}

TEST(ClientAgentApi, RefusedTokensAreAuthFailures) {
  ManualClock clock;
  CannedServer server;
  auto api = server.api(clock);
  server.status = 401;
  server.body = R"({"error":"token revoked"})";
  EXPECT_TRUE(is_auth_failure(api.heartbeat("a1")));
  EXPECT_TRUE(is_auth_failure(api.claim("a1", {"local"}, 1, Millis(0)).status()));
  server.status = 403;
  EXPECT_TRUE(is_auth_failure(api.heartbeat("a1")));
  server.status = 503;
  EXPECT_FALSE(is_auth_failure(api.heartbeat("a1")));
}

// The long poll is sliced (to honour stop within a second) on the clock, and the number
// of slices is bounded even when the clock does not move.
TEST(ClientAgentApi, ClaimLongPollsInSlicesOnTheClock) {
  ManualClock clock;
  CannedServer server;
  std::atomic<bool> stop{false};
  server.body = R"({"runs":[]})";
  std::vector<int64_t> waits;
  server.on_request = [&](const TestRequest& r) {
    if (r.target.find("/claim") == std::string::npos) return;
    int64_t w = json::parse(r.body)["wait_ms"].get<int64_t>();
    waits.push_back(w);
    clock.advance(std::chrono::milliseconds(w));  // the server waited that long
  };
  auto api = server.api(clock, &stop);
  auto r = api.claim("a1", {"local"}, 1, Millis(3500));
  ASSERT_TRUE(r);
  EXPECT_EQ(waits, (std::vector<int64_t>{1000, 1000, 1000, 500}));
  // A clock that does not move: still at most ceil(3500/1000) requests.
  waits.clear();
  server.on_request = [&](const TestRequest& r) {
    if (r.target.find("/claim") != std::string::npos) waits.push_back(json::parse(r.body)["wait_ms"].get<int64_t>());
  };
  ASSERT_TRUE(api.claim("a1", {"local"}, 1, Millis(3500)));
  EXPECT_EQ(waits.size(), 4u);
  // A stop request ends it after the current slice.
  waits.clear();
  stop = true;
  ASSERT_TRUE(api.claim("a1", {"local"}, 1, Millis(3500)));
  EXPECT_EQ(waits.size(), 1u);
}

TEST(ClientAgentApi, LogLinesThatAreNotUtf8AreSentNotThrown) {
  ManualClock clock;
  CannedServer server;
  auto api = server.api(clock);
  ASSERT_TRUE(api.send_logs("r1", {std::string("bad \xff\xfe bytes"), "ok"}).is_ok());
  auto body = json::parse(server.requests().back().body);
  ASSERT_EQ(body.size(), 2u);
  EXPECT_EQ(body[1]["message"], "ok");
  EXPECT_EQ(body[0]["timestamp"], "2026-01-01T00:00:00.000Z");  // the clock's time
  ASSERT_TRUE(api.set_run_state("r1", State::kCrashed, std::string("exit \xc3")).is_ok());
}

}  // namespace
}  // namespace culvert::agent
