#include "agent/docker/docker_client.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

TEST(DockerClient, UnreachableDaemonNamesTheSocket) {
  DockerClient c({.host = "unix:///nonexistent/culvert-test/docker.sock"});
  EXPECT_EQ(c.socket_path(), "/nonexistent/culvert-test/docker.sock");
  Status st = c.ping();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("unix:///nonexistent/culvert-test/docker.sock"), std::string::npos) << st.message();
  EXPECT_EQ(c.create({.image = "x"}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.create({}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace culvert::docker
