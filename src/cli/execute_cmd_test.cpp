// `culvert execute` (what an agent launches) against a test server that plays the
// Culvert API: malformed answers to the run and flow-version reads end in a clear error
// (exit 1, the run Crashed when it can be named), never an abort.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fcntl.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <filesystem>
#include <mutex>

#include "core/crypto.hpp"
#include "test_http_server.hpp"

namespace culvert::cli {
namespace {

using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;

struct Outcome {
  int code = -1;  // 128 + signal when killed by one
  std::string err;
};

// Runs build/culvert execute with the run's environment (and `extra_env`); stderr to a file.
Outcome culvert_execute(const std::string& api_url, const std::vector<std::string>& extra_env = {}) {
  char tmpl[] = "/tmp/culvert-execute-test-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    std::vector<std::string> env = {"CULVERT_API_URL=" + api_url, "CULVERT_API_TOKEN=t", "CULVERT_FLOW_RUN_ID=r1",
                                    "CULVERT_SERVER_WAIT_SECONDS=1", "HOME=/nonexistent", "PATH=/usr/bin:/bin"};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string bin = std::string(CULVERT_BINARY_DIR) + "/culvert";
    char* argv[] = {bin.data(), const_cast<char*>("execute"), nullptr};
    ::execve(bin.c_str(), argv, envp.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fd);
  std::ifstream in(tmpl);
  std::stringstream ss;
  ss << in.rdbuf();
  ::unlink(tmpl);
  Outcome o;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.err = ss.str();
  return o;
}

TEST(CulvertExecute, MalformedRunAndFlowVersionAnswersAreClearErrors) {
  struct Case {
    std::string run;      // the answer to GET /flow-runs/r1
    std::string version;  // the answer to GET /flows/{id}
    std::string expected;
  };
  const std::string run_ok = R"({"id":"r1","state":"Submitted","flow_id":"f1","flow_name":"e"})";
  const std::vector<Case> cases = {
      {"[]", "", "cannot read flow run r1"},
      {R"({"state":"Submitted","flow_id":7})", "", "\"flow_id\" must be a string, but is number"},
      {R"({"state":"Submitted","flow_id":null})", "", "names no flow version"},
      {run_ok, "[]", "not a JSON object"},
      {run_ok, R"({"id":"f1","artifact":"file:///x"})", "\"artifact\" must be an object, but is string"},
      {run_ok, R"({"id":"f1","artifact":{"uri":7,"sha256":"ab"}})", "\"uri\" must be a string, but is number"},
      {run_ok, R"({"id":"f1","artifact":{"uri":"file:///x","sha256":null}})", "no artifact sha256"},
  };
  for (const auto& c : cases) {
    TestHttpServer server([&](const TestRequest& r) {
      if (r.method == "GET" && r.target == "/api/v1/flow-runs/r1") return TestResponse{200, c.run};
      if (r.method == "GET" && r.target == "/api/v1/flows/f1") return TestResponse{200, c.version};
      return TestResponse{200, R"({"id":"r1","state":"Crashed"})"};
    });
    Outcome o = culvert_execute(server.url());
    EXPECT_EQ(o.code, 1) << c.run << " / " << c.version << ": " << o.err;
    EXPECT_NE(o.err.find(c.expected), std::string::npos) << c.run << " / " << c.version << ": " << o.err;
  }
}

// A version whose artifact is of a kind this culvert has no runner for (a newer
// server's) is fetched and verified, then reported Crashed naming the kind, not run.
TEST(CulvertExecute, AnArtifactOfAnUnknownKindIsReportedCrashedNamingTheKind) {
  auto dir = std::filesystem::temp_directory_path() / ("culvert-execute-kind-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "cache");
  const std::string bytes = "#!/bin/sh\necho must not run\n";
  {
    std::ofstream(dir / "flow.bin") << bytes;
  }
  std::filesystem::permissions(dir / "flow.bin", std::filesystem::perms::owner_all);
  const std::string version = R"({"id":"f1","artifact":{"uri":"file://)" + (dir / "flow.bin").string() +
                              R"(","sha256":")" + sha256_hex(bytes) + R"(","kind":"no-such-kind"}})";
  std::mutex mu;
  std::vector<std::string> states;
  TestHttpServer server([&](const TestRequest& r) {
    if (r.method == "GET" && r.target == "/api/v1/flow-runs/r1")
      return TestResponse{200, R"({"id":"r1","state":"Submitted","flow_id":"f1","flow_name":"e"})"};
    if (r.method == "GET" && r.target == "/api/v1/flows/f1") return TestResponse{200, version};
    std::lock_guard lock(mu);
    states.push_back(r.body);
    return TestResponse{200, R"({"id":"r1","state":"Crashed"})"};
  });
  Outcome o = culvert_execute(server.url(), {"CULVERT_ARTIFACT_CACHE=" + (dir / "cache").string()});
  std::filesystem::remove_all(dir);
  EXPECT_EQ(o.code, 1) << o.err;
  EXPECT_NE(o.err.find("cannot run a flow artifact of kind 'no-such-kind' (it runs binary"), std::string::npos)
      << o.err;
  std::lock_guard lock(mu);
  ASSERT_EQ(states.size(), 1u);
  EXPECT_NE(states[0].find("Crashed"), std::string::npos) << states[0];
  EXPECT_NE(states[0].find("no-such-kind"), std::string::npos) << states[0];
}

}  // namespace
}  // namespace culvert::cli
