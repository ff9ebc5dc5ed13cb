// Registering a flow (register_flow_artifact, and the flow binary's `register`) against
// a test server: a flow without storage of its own registers with --storage, and a
// malformed answer from the server is an error, never a crash.
#include <culvert/main.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/runtime.hpp"
#include "test_http_server.hpp"

namespace culvert::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;

class RegisterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/culvert-register-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    artifact_ = dir_ / "flow-binary";
    std::ofstream(artifact_) << "not really a binary";
  }
  void TearDown() override { fs::remove_all(dir_); }

  RegisterOptions options(const TestHttpServer& server) const {
    RegisterOptions o;
    o.project = "p";
    o.storage = "file://" + (dir_ / "store").string();
    o.api_url = server.url();
    o.api_token = "t";
    return o;
  }

  // A flow that never calls flow.storage(): its description says "storage": null.
  static Flow flow_without_storage() {
    Flow flow("no-storage");
    flow.task("one", [] { return 1; });
    return flow;
  }

  fs::path dir_;
  fs::path artifact_;
};

TEST_F(RegisterTest, AFlowWithoutStorageRegistersWithTheStorageOption) {
  Flow flow = flow_without_storage();
  ASSERT_NE(flow.describe_json().find("\"storage\":null"), std::string::npos) << flow.describe_json();
  TestHttpServer server([](const TestRequest&) {
    return TestResponse{201, R"({"id":"f1","name":"no-storage","version":1})"};
  });
  auto r = register_flow_artifact(artifact_.string(), flow.describe_json(), options(server));
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->id, "f1");
  EXPECT_EQ(r->version, 1);
  ASSERT_EQ(server.requests().size(), 1u);
  auto body = json::parse(server.requests()[0].body);
  EXPECT_EQ(body["storage"], options(server).storage.value());
  EXPECT_EQ(body["artifact"]["uri"].get<std::string>().rfind(*options(server).storage, 0), 0u) << body.dump();
}

TEST_F(RegisterTest, AFlowWithoutStorageAndNoOptionIsToldToPassOne) {
  Flow flow = flow_without_storage();
  TestHttpServer server([](const TestRequest&) { return TestResponse{201, "{}"}; });
  RegisterOptions o = options(server);
  o.storage.reset();
  auto r = register_flow_artifact(artifact_.string(), flow.describe_json(), o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("--storage"), std::string::npos) << r.status().message();
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(RegisterTest, AMalformedDescriptionIsAnInvalidArgument) {
  TestHttpServer server([](const TestRequest&) { return TestResponse{201, "{}"}; });
  for (const char* desc : {"", "[]", R"({"name":null})", R"({"name":"f","storage":7})"}) {
    auto r = register_flow_artifact(artifact_.string(), desc, options(server));
    ASSERT_FALSE(r) << desc;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << desc;
    EXPECT_NE(r.status().message().find("did not describe itself as a flow"), std::string::npos)
        << r.status().message();
  }
  EXPECT_TRUE(server.requests().empty());
}

// Every malformed answer to POST /flows is an error naming what was wrong.
TEST_F(RegisterTest, AMalformedAnswerIsAnErrorNotACrash) {
  const char* answers[] = {"not json", "[]", "null", "\"f1\"", "{}", R"({"id":"f1","version":"1"})",
                           R"({"id":7,"version":1})", R"({"id":"f1","version":1,"name":{}})"};
  for (const char* answer : answers) {
    TestHttpServer server([&](const TestRequest&) { return TestResponse{201, answer}; });
    auto r = register_flow_artifact(artifact_.string(), flow_without_storage().describe_json(), options(server));
    ASSERT_FALSE(r) << answer;
    EXPECT_FALSE(r.status().message().empty()) << answer;
  }
}

// The flow binary's own `register` subcommand: the same, from its command line.
TEST_F(RegisterTest, TheFlowBinarysRegisterPrintsTheVersionAndFailsCleanlyOnAMalformedAnswer) {
  Flow flow = flow_without_storage();
  std::string answer = R"({"id":"f9","name":"no-storage","version":4})";
  TestHttpServer server([&](const TestRequest&) { return TestResponse{201, answer}; });
  const std::string storage = *options(server).storage;
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"flow", "register", "--project", "p", "--storage", storage,
                                     "--api-url", server.url(), "--api-token", "t"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    int rc = culvert::main(flow, static_cast<int>(argv.size()), argv.data());
    std::string out = ::testing::internal::GetCapturedStdout();
    std::string err = ::testing::internal::GetCapturedStderr();
    return std::make_tuple(rc, out, err);
  };
  auto [rc, out, err] = run({});
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NE(out.find("version 4"), std::string::npos) << out;
  EXPECT_NE(out.find("(id f9)"), std::string::npos) << out;
  std::tie(rc, out, err) = run({"--output", "json"});
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(json::parse(out)["version"], 4);

  for (const char* bad : {"[]", R"({"id":"f9","version":"4"})", "{}"}) {
    answer = bad;
    std::tie(rc, out, err) = run({});
    EXPECT_EQ(rc, 1) << bad << ": " << out << err;
    EXPECT_NE(err.find("register"), std::string::npos) << err;
  }
}

// The runtime's subcommands answer --help with their usage (no server, no environment
// needed), and register's --output takes table|json like the CLI (text: the older name).
TEST_F(RegisterTest, ExecuteAndRegisterAnswerHelpAndRegisterTakesTableOrJson) {
  Flow flow = flow_without_storage();
  auto call = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "flowbin");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    int rc = culvert::main(flow, static_cast<int>(argv.size()), argv.data());
    std::string out = ::testing::internal::GetCapturedStdout();
    std::string err = ::testing::internal::GetCapturedStderr();
    return std::make_tuple(rc, out, err);
  };
  auto [rc, out, err] = call({"execute", "--help"});
  EXPECT_EQ(rc, 0) << err;
  EXPECT_NE(out.find("usage: flowbin execute [--workers N]"), std::string::npos) << out;
  EXPECT_NE(out.find("CULVERT_WORKERS, else the machine's cores"), std::string::npos) << out;
  std::tie(rc, out, err) = call({"register", "--project", "p", "--help"});
  EXPECT_EQ(rc, 0) << err;
  EXPECT_NE(out.find("usage: flowbin register --project P"), std::string::npos) << out;
  EXPECT_NE(out.find("--output table|json"), std::string::npos) << out;

  TestHttpServer server([&](const TestRequest&) { return TestResponse{201, R"({"id":"f9","version":4})"}; });
  for (const char* format : {"table", "text"}) {
    std::tie(rc, out, err) = call({"register", "--project", "p", "--storage", *options(server).storage, "--api-url",
                                   server.url(), "--api-token", "t", "--output", format});
    EXPECT_EQ(rc, 0) << format << ": " << err;
    EXPECT_NE(out.find("version 4"), std::string::npos) << format << ": " << out;
  }
  std::tie(rc, out, err) = call({"register", "--project", "p", "--output", "yaml"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("'--output'"), std::string::npos) << err;
}

}  // namespace
}  // namespace culvert::runtime
