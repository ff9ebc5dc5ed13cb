// End to end: the attacks of the hardening probe against the real `culvert server
// start` binary over HTTP (SQLite). Each test reproduces one attack and checks that the
// server refuses it cleanly and keeps answering.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "core/crypto.hpp"
#include "server_process.hpp"

namespace culvert::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string toml_value(const std::string& text, const std::string& key) {
  auto at = text.find(key + " = ");
  if (at == std::string::npos) return "";
  at += key.size() + 3;
  if (at >= text.size() || (text[at] != '"' && text[at] != '\'')) return "";
  char q = text[at];
  auto end = text.find(q, at + 1);
  return end == std::string::npos ? "" : text.substr(at + 1, end - at - 1);
}

std::string nested_arrays(size_t n) { return std::string(n, '[') + std::string(n, ']'); }

class HardeningE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = make_test_db("sqlite");
    ASSERT_FALSE(db_.url.empty());
  }

  void start(const std::vector<std::string>& extra = {}, ServerLimits limits = {}) {
    server_ = ServerProcess::start(home_.path(), db_.url, extra, limits);
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<HttpClient>(server_->url());
    if (admin_.empty()) {
      auto cfg = read_file(home_.path() + "/.culvert/config.toml");
      admin_ = toml_value(cfg, "api_token");
      ASSERT_FALSE(admin_.empty()) << cfg;
    }
  }

  std::string token(const std::string& scope) {
    auto r = client_->post("/api/v1/tokens", {{"name", scope}, {"scope", scope}}, admin_);
    EXPECT_EQ(r.status, 201) << r.text;
    return r.body.value("token", "");
  }

  json flow_body(const std::string& name) {
    return {{"project", "probe"},
            {"name", name},
            {"artifact", {{"uri", "file:///flows/" + name}, {"sha256", sha256_hex(name)}}},
            {"tasks", {{{"name", "extract"}}, {{"name", "load"}}}},
            {"edges", {{{"from", "extract"}, {"to", "load"}}}},
            {"parameters", {{{"name", "blob"}, {"type", "json"}}}},
            {"run_config", {{"type", "local"}, {"labels", {"dev"}}}}};
  }

  bool healthy() { return client_->get("/api/health").status == 200; }

  TempDir home_;
  TestDb db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
  std::string admin_;
};

// Attack B1: 100,000 nested arrays (~200 KB) inside run_config.run_task_kwargs of a flow
// registration, and as a run's parameter value, used to overflow the server's stack.
TEST_F(HardeningE2E, DeeplyNestedBodiesAreRefusedAndTheServerStaysUp) {
  start();
  std::string user = token("user");
  std::string deep = nested_arrays(100000);

  json body = flow_body("deep");
  body["run_config"]["run_task_kwargs"] = "@DEEP@";
  std::string flow = body.dump();
  flow.replace(flow.find("\"@DEEP@\""), 8, deep);
  ASSERT_GT(flow.size(), 200000u);
  auto r = client_->request("POST", "/api/v1/flows", flow, user);
  EXPECT_EQ(r.status, 400) << r.text.substr(0, 300);
  EXPECT_THAT(r.text, HasSubstr("limit of 64 levels"));
  ASSERT_TRUE(healthy()) << "the server died on a deeply nested flow registration";

  auto reg = client_->post("/api/v1/flows", flow_body("shallow"), user);
  ASSERT_EQ(reg.status, 201) << reg.text;
  std::string run = R"({"project":"probe","flow":"shallow","parameters":{"blob":)" + deep + "}}";
  r = client_->request("POST", "/api/v1/flow-runs", run, user);
  EXPECT_EQ(r.status, 400) << r.text.substr(0, 300);
  EXPECT_THAT(r.text, HasSubstr("limit of 64 levels"));
  ASSERT_TRUE(healthy()) << "the server died on a deeply nested run parameter";

  // Within the limit, a nested value is stored and read back intact.
  std::string ok_value = nested_arrays(60);
  r = client_->request("POST", "/api/v1/flow-runs",
                       R"({"project":"probe","flow":"shallow","parameters":{"blob":)" + ok_value + "}}", user);
  ASSERT_EQ(r.status, 201) << r.text;
  auto back = client_->get("/api/v1/flow-runs/" + r.body.value("id", ""), user);
  ASSERT_EQ(back.status, 200) << back.text;
  EXPECT_EQ(back.body["parameters"]["blob"].dump(), ok_value);
}

}  // namespace
}  // namespace culvert::testing
