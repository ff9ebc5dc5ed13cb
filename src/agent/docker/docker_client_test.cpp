#include "agent/docker/docker_client.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/crypto.hpp"
#include "test_http_server.hpp"

namespace culvert::docker {
namespace {

std::string frame(int stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + std::string(payload);
}

std::vector<LogLine> demux_in_chunks(const std::string& data, size_t chunk) {
  LogDemuxer d;
  std::vector<LogLine> out;
  auto sink = [&](const LogLine& l) {
    out.push_back(l);
    return true;
  };
  for (size_t i = 0; i < data.size(); i += chunk) d.feed(std::string_view(data).substr(i, chunk), sink);
  d.finish(sink);
  return out;
}

TEST(LogDemuxer, SplitsFramesIntoLinesPerStreamWhateverTheChunking) {
  std::string data = frame(1, "out 1\nout") + frame(2, "err 1\r\n") + frame(1, " 2\n") +
                     frame(2, std::string(300, 'e') + "\n") + frame(1, "last");
  for (size_t chunk : {1u, 3u, 7u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(chunk);
    auto lines = demux_in_chunks(data, chunk);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[0].stream, LogStream::kStdout);
    EXPECT_EQ(lines[0].text, "out 1");
    EXPECT_EQ(lines[1].stream, LogStream::kStderr);
    EXPECT_EQ(lines[1].text, "err 1");
    EXPECT_EQ(lines[2].text, "out 2");  // a line split across frames
    EXPECT_EQ(lines[3].text, std::string(300, 'e'));
    EXPECT_EQ(lines[4].text, "last");  // unterminated, flushed by finish()
    EXPECT_EQ(lines[4].stream, LogStream::kStdout);
  }
}

TEST(LogDemuxer, SinkCanStop) {
  LogDemuxer d;
  int n = 0;
  EXPECT_FALSE(d.feed(frame(1, "a\nb\nc\n"), [&](const LogLine&) { return ++n < 2; }));
  EXPECT_EQ(n, 2);
}

TEST(CreateBody, CarriesEverySpecField) {
  ContainerSpec s;
  s.image = "img:1";
  s.cmd = {"run", "--x"};
  s.env = {{"A", "1"}, {"B", "two words"}};
  s.network_mode = "host";
  s.binds = {"/host:/data:ro"};
  s.nano_cpus = 1'500'000'000;
  s.memory_bytes = 64 << 20;
  s.labels = {{"culvert.flow-run", "r1"}};
  s.working_dir = "/w";
  auto j = nlohmann::json::parse(create_body(s));
  EXPECT_EQ(j["Image"], "img:1");
  EXPECT_EQ(j["Cmd"], nlohmann::json({"run", "--x"}));
  EXPECT_EQ(j["Env"], nlohmann::json({"A=1", "B=two words"}));
  EXPECT_EQ(j["HostConfig"]["NetworkMode"], "host");
  EXPECT_EQ(j["HostConfig"]["Binds"][0], "/host:/data:ro");
  EXPECT_EQ(j["HostConfig"]["NanoCpus"], 1'500'000'000);
  EXPECT_EQ(j["HostConfig"]["Memory"], 64 << 20);
  EXPECT_EQ(j["HostConfig"]["MemorySwap"], 64 << 20);
  EXPECT_EQ(j["Labels"]["culvert.flow-run"], "r1");
  EXPECT_EQ(j["WorkingDir"], "/w");
  EXPECT_EQ(j["Tty"], false);
  auto minimal = nlohmann::json::parse(create_body(ContainerSpec{.image = "x"}));
  EXPECT_FALSE(minimal.contains("Cmd"));
  EXPECT_FALSE(minimal["HostConfig"].contains("Memory"));
}

TEST(MakeTar, UstarHeadersWithValidChecksums) {
  std::string tar = make_tar({{"Dockerfile", "FROM scratch\n"}, {"bin/probe", std::string(700, 'x'), 0755}});
  ASSERT_EQ(tar.size(), 512u + 512u + 512u + 1024u + 1024u);
  auto check = [&](size_t off, const std::string& name, size_t size, int mode) {
    EXPECT_EQ(std::string(tar.data() + off), name);
    EXPECT_EQ(std::stoul(std::string(tar.data() + off + 124, 11), nullptr, 8), size);
    EXPECT_EQ(std::stoi(std::string(tar.data() + off + 100, 7), nullptr, 8), mode);
    EXPECT_EQ(std::string(tar.data() + off + 257, 5), "ustar");
    unsigned sum = 0;
    for (size_t i = 0; i < 512; ++i)
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(tar[off + i]);
    EXPECT_EQ(std::stoul(std::string(tar.data() + off + 148, 6), nullptr, 8), sum);
  };
  check(0, "Dockerfile", 13, 0644);
  check(1024, "bin/probe", 700, 0755);
  EXPECT_EQ(tar.substr(tar.size() - 1024), std::string(1024, '\0'));
}

// Directories and symbolic links, read back by GNU tar (the other side).
TEST(MakeTar, DirectoriesAndSymlinksAsGnuTarReadsThem) {
  using T = TarEntry::Type;
  std::string tar = make_tar({{"tmp", "", 01777, T::kDirectory},
                              {"opt/culvert/bin", "", 0755, T::kDirectory},
                              {"opt/culvert/bin/tool", "#!x\n", 0755},
                              {"bin/sh", "", 0777, T::kSymlink, "busybox"}});
  char path[] = "/tmp/culvert-tar-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, tar.data(), tar.size()), static_cast<ssize_t>(tar.size()));
  ::close(fd);
  std::string cmd = std::string("tar -tvf ") + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string listing;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) listing.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << listing;
  ::unlink(path);
  EXPECT_NE(listing.find("drwxrwxrwt root/root"), std::string::npos) << listing;
  EXPECT_NE(listing.find("opt/culvert/bin/tool"), std::string::npos) << listing;
  EXPECT_NE(listing.find("bin/sh -> busybox"), std::string::npos) << listing;
}

TEST(DockerClient, UnreachableDaemonNamesTheSocket) {
  DockerClient c({.host = "unix:///nonexistent/culvert-test/docker.sock"});
  EXPECT_EQ(c.socket_path(), "/nonexistent/culvert-test/docker.sock");
  Status st = c.ping();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("unix:///nonexistent/culvert-test/docker.sock"), std::string::npos) << st.message();
  EXPECT_EQ(c.create({.image = "x"}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.create({}).status().code(), StatusCode::kInvalidArgument);
}

using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;

// The Engine API answers, played by a fake daemon on a unix socket.
class FakeDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() / ("cvt-dk-" + new_uuid().substr(0, 8) + ".sock")).string();
    server_ = std::make_unique<TestHttpServer>([this](const TestRequest& r) { return handler(r); }, path_);
    client_ = std::make_unique<DockerClient>(DockerClient::Options{.host = "unix://" + path_});
  }
  std::function<TestResponse(const TestRequest&)> handler = [](const TestRequest&) { return TestResponse{200, ""}; };
  std::string path_;
  std::unique_ptr<TestHttpServer> server_;
  std::unique_ptr<DockerClient> client_;
};

TEST_F(FakeDaemon, RequestsUseApiVersionAndMapErrors) {
  handler = [](const TestRequest& r) {
    if (r.target == "/v1.41/containers/create?name=my%20run")
      return TestResponse{409, R"({"message":"Conflict. The container name \"/my run\" is already in use"})"};
    if (r.target.starts_with("/v1.41/containers/create"))
      return TestResponse{404, R"({"message":"No such image: ghost:latest"})"};
    if (r.target == "/v1.41/containers/bad/start") return TestResponse{400, R"({"message":"invalid mount"})"};
    if (r.target == "/v1.41/containers/boom/start") return TestResponse{500, R"({"message":"runtime failed"})"};
    return TestResponse{404, R"({"message":"No such container: x"})"};
  };
  auto img = client_->create({.image = "ghost"});
  EXPECT_EQ(img.status().code(), StatusCode::kNotFound);
  EXPECT_NE(img.status().message().find("image 'ghost' not found"), std::string::npos) << img.status().message();
  auto named = client_->create({.image = "x", .name = "my run"});
  EXPECT_EQ(named.status().code(), StatusCode::kConflict);
  EXPECT_EQ(client_->start("bad").code(), StatusCode::kInvalidArgument);
  Status boom = client_->start("boom");
  EXPECT_EQ(boom.code(), StatusCode::kInternal);
  EXPECT_NE(boom.message().find("runtime failed"), std::string::npos);
  EXPECT_EQ(client_->inspect("x").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(client_->remove("x").is_ok());  // already gone
  auto reqs = server_->requests();
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(nlohmann::json::parse(reqs[0].body)["Image"], "ghost");
  EXPECT_EQ(reqs.back().method, "DELETE");
  EXPECT_EQ(reqs.back().target, "/v1.41/containers/x?v=true&force=true");
}

TEST_F(FakeDaemon, ParsesWaitInspectAndBuildAnswers) {
  handler = [](const TestRequest& r) {
    if (r.target == "/v1.41/containers/c1/wait?condition=not-running")
      return TestResponse{200, R"({"StatusCode":137,"Error":null})"};
    if (r.target == "/v1.41/containers/c1/json")
      return TestResponse{200, R"({"Id":"c1","Name":"/run-1","Config":{"Image":"img","Labels":{"k":"v"}},
        "State":{"Status":"exited","Running":false,"ExitCode":137,"OOMKilled":true,"Error":""},
        "HostConfig":{"NetworkMode":"host","Memory":33554432,"NanoCpus":1000000000}})"};
    if (r.target.starts_with("/v1.41/build?t=good"))
      return TestResponse{200, "{\"stream\":\"Step 1/2\\n\"}\n{\"aux\":{\"ID\":\"sha256:abc\"}}\n"};
    if (r.target.starts_with("/v1.41/build?t=bad"))
      return TestResponse{200, "{\"stream\":\"Step 1/2\\n\"}\n{\"errorDetail\":{},\"error\":\"COPY failed: no x\"}\n"};
    return TestResponse{404, "{}"};
  };
  EXPECT_EQ(client_->wait("c1").value(), 137);
  auto info = client_->inspect("c1");
  ASSERT_TRUE(info) << info.status().to_string();
  EXPECT_EQ(info->name, "run-1");
  EXPECT_EQ(info->image, "img");
  EXPECT_TRUE(info->oom_killed);
  EXPECT_EQ(info->exit_code, 137);
  EXPECT_EQ(info->memory_bytes, 33554432);
  EXPECT_EQ(info->nano_cpus, 1000000000);
  EXPECT_EQ(info->labels["k"], "v");
  EXPECT_EQ(client_->build_image("tar", "good").value(), "sha256:abc");
  auto bad = client_->build_image("tar", "bad");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("COPY failed: no x"), std::string::npos);
  auto build_req = server_->requests()[2];
  EXPECT_EQ(build_req.headers.at("content-type"), "application/x-tar");
  EXPECT_EQ(build_req.body, "tar");
}

}  // namespace
}  // namespace culvert::docker
