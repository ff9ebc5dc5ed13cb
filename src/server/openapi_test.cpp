// The OpenAPI document and the router's route table must describe the same routes.
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/waiters.hpp"
#include "server/work_pool.hpp"

namespace culvert::server {
namespace {

TEST(OpenApiTest, DocumentMatchesTheRouteTable) {
  auto doc = nlohmann::json::parse(openapi_document(), nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << "openapi.cpp is not valid JSON";
  EXPECT_EQ(doc["openapi"], "3.0.3");

  ManualClock clock;
  WorkPool pool(1);
  Authenticator auth(clock, {});
  Waiters waiters(clock, Millis(250));
  auto events = make_run_events(waiters, auth);
  Api api(clock, pool, [](int) -> store::Store& { throw std::logic_error("no store in this test"); }, auth,
          waiters, *events, {});

  std::set<std::string> from_router, from_doc;
  for (const auto& r : api.router().routes()) {
    std::string method = r.method;
    for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    from_router.insert(method + " " + r.pattern);
    ASSERT_TRUE(doc["paths"].contains(r.pattern)) << "route missing from openapi.cpp: " << r.pattern;
    const auto& path = doc["paths"][r.pattern];
    ASSERT_TRUE(path.contains(method)) << "method missing from openapi.cpp: " << method << " " << r.pattern;
    const auto& op = path[method];
    EXPECT_TRUE(op.contains("summary")) << r.pattern;
    EXPECT_TRUE(op.contains("responses")) << r.pattern;
    // Public routes declare "security": []; the others inherit the bearer scheme.
    bool doc_public = op.contains("security") && op["security"].empty();
    EXPECT_EQ(doc_public, r.access == Access::kPublic) << method << " " << r.pattern;
    // Every {param} of the pattern is declared.
    if (r.pattern.find('{') != std::string::npos) {
      EXPECT_TRUE(path.contains("parameters") || op.contains("parameters")) << r.pattern;
    }
  }
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      if (method == "parameters") continue;
      from_doc.insert(method + " " + path);
    }
  }
  EXPECT_EQ(from_router, from_doc);
  pool.stop();
}

TEST(OpenApiTest, CoversTheFixedRoutesOfTheSpec) {
  auto doc = nlohmann::json::parse(openapi_document());
  const char* fixed[][2] = {
      {"get", "/api/health"}, {"get", "/metrics"}, {"get", "/api/v1/openapi.json"},
      {"post", "/api/v1/projects"}, {"get", "/api/v1/projects"}, {"post", "/api/v1/flows"},
      {"get", "/api/v1/flows"}, {"get", "/api/v1/flows/{id}"}, {"post", "/api/v1/flow-runs"},
      {"get", "/api/v1/flow-runs"}, {"get", "/api/v1/flow-runs/{id}"}, {"post", "/api/v1/flow-runs/{id}/state"},
      {"post", "/api/v1/flow-runs/{id}/heartbeat"}, {"post", "/api/v1/flow-runs/{id}/cancel"},
      {"get", "/api/v1/flow-runs/{id}/task-runs"}, {"post", "/api/v1/task-runs/states"}, {"post", "/api/v1/logs"},
      {"get", "/api/v1/flow-runs/{id}/logs"}, {"post", "/api/v1/agents"}, {"post", "/api/v1/agents/{id}/heartbeat"},
      {"post", "/api/v1/agents/{id}/claim"}, {"get", "/api/v1/agents"}, {"post", "/api/v1/tokens"},
      {"get", "/api/v1/tokens"}, {"delete", "/api/v1/tokens/{id}"}, {"post", "/api/v1/flow-runs/{id}/children"},
      {"get", "/api/v1/flow-runs/{id}/children"}};
  for (const auto& f : fixed) {
    EXPECT_TRUE(doc["paths"].contains(f[1]) && doc["paths"][f[1]].contains(f[0])) << f[0] << " " << f[1];
  }
}

}  // namespace
}  // namespace culvert::server
