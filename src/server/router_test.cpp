#include <gtest/gtest.h>

#include "server/http.hpp"
#include "server/router.hpp"

namespace culvert::server {
namespace {

Router make_router() {
  Router r;
  r.add({"GET", "/api/v1/flow-runs", Access::kRunner, false, ""});
  r.add({"GET", "/api/v1/flow-runs/{id}", Access::kRunner, true, ""});
  r.add({"POST", "/api/v1/flow-runs/{id}/state", Access::kRunner, true, ""});
  r.add({"GET", "/api/v1/task-runs/{id}", Access::kRunner, false, ""});
  r.add({"POST", "/api/v1/task-runs/states", Access::kRunner, false, ""});
  r.add({"DELETE", "/api/v1/tokens/{id}", Access::kAdmin, false, ""});
  return r;
}

TEST(RouterTest, MatchesLiteralAndParameterSegments) {
  auto r = make_router();
  auto m = r.match("GET", "/api/v1/flow-runs/abc-123");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.index, 1u);
  EXPECT_EQ(m.params.get("id"), "abc-123");
  EXPECT_EQ(m.params.get("other"), "");
  m = r.match("POST", "/api/v1/flow-runs/x/state");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.index, 2u);
  EXPECT_EQ(m.params.get("id"), "x");
  EXPECT_EQ(r.match("GET", "/api/v1/flow-runs").index, 0u);
  // A trailing slash is ignored.
  EXPECT_EQ(r.match("GET", "/api/v1/flow-runs/").status, 200);
}

TEST(RouterTest, LiteralBeatsParameter) {
  auto r = make_router();
  auto m = r.match("POST", "/api/v1/task-runs/states");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.index, 4u);
  m = r.match("GET", "/api/v1/task-runs/states");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.index, 3u);
}

TEST(RouterTest, UnknownPathIs404AndWrongMethodIs405) {
  auto r = make_router();
  EXPECT_EQ(r.match("GET", "/api/v1/nothing").status, 404);
  EXPECT_EQ(r.match("GET", "/api/v1/flow-runs/a/b/c").status, 404);
  EXPECT_EQ(r.match("GET", "/").status, 404);
  auto m = r.match("PUT", "/api/v1/flow-runs/x");
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.allow, "GET");
  m = r.match("GET", "/api/v1/tokens/x");
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.allow, "DELETE");
}

TEST(RouterTest, RejectsBadPatterns) { Router r; EXPECT_THROW(r.add({"GET", "nope", Access::kPublic, false, ""}), std::logic_error); }

TEST(HttpTest, ParsesTargets) {
  Request r;
  ASSERT_TRUE(parse_target("/api/v1/flow-runs?flow_id=a%20b&state=Running&x&limit=5+1", r));
  EXPECT_EQ(r.path, "/api/v1/flow-runs");
  EXPECT_EQ(r.query_param("flow_id"), "a b");
  EXPECT_EQ(r.query_param("state"), "Running");
  EXPECT_EQ(r.query_param("x"), "");
  EXPECT_EQ(r.query_param("limit"), "5 1");
  EXPECT_FALSE(r.query_param("missing").has_value());
  ASSERT_TRUE(parse_target("/a%2Fb", r));
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_FALSE(parse_target("relative", r));
  EXPECT_FALSE(parse_target("/bad%zz", r));
  EXPECT_FALSE(parse_target("/x?a=%4", r));
  EXPECT_FALSE(parse_target("", r));
}

TEST(HttpTest, PercentEncodingRoundTrips) {
  std::string s = "a b/c?d=e&f%\xff";
  auto enc = percent_encode(s);
  EXPECT_EQ(enc.find_first_of(" /?=&"), std::string::npos);
  EXPECT_EQ(percent_decode(enc, true), s);
}

TEST(HttpTest, ErrorBodies) {
  auto r = error_response(409, error_code_for(409), "illegal transition from \"A\" to B\xff");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_NE(r.body.find("\"code\":\"conflict\""), std::string::npos);
  EXPECT_NE(r.body.find("\\\"A\\\""), std::string::npos);
  EXPECT_STREQ(error_code_for(400), "bad_request");
  EXPECT_STREQ(error_code_for(401), "unauthenticated");
  EXPECT_STREQ(error_code_for(403), "forbidden");
  EXPECT_STREQ(error_code_for(404), "not_found");
  EXPECT_STREQ(error_code_for(413), "payload_too_large");
  EXPECT_STREQ(error_code_for(422), "unprocessable");
  EXPECT_STREQ(error_code_for(500), "internal");
}

}  // namespace
}  // namespace culvert::server
