// End-to-end: the Docker client against a real dockerd (fixture scripts/testenv/dockerd.sh)
// running a FROM scratch image that holds a statically linked probe (probe.cpp).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/docker/docker_client.hpp"
#include "core/crypto.hpp"

namespace culvert::docker {
namespace {
namespace fs = std::filesystem;

std::string daemon_socket() {
  const char* dir = std::getenv("CULVERT_DOCKERD_DIR");
  if (!dir) return "";
  std::ifstream in(std::string(dir) + "/socket");
  std::string s;
  in >> s;
  return s;
}

class DockerE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    socket_ = new std::string(daemon_socket());
    if (socket_->empty()) return;
    DockerClient c({.host = *socket_});
    std::ifstream in(CULVERT_DOCKER_PROBE, std::ios::binary);
    std::string probe((std::istreambuf_iterator<char>(in)), {});
    tag_ = new std::string("culvert-docker-e2e:" + new_uuid().substr(0, 8));
    auto id = c.build_image(make_tar({{"Dockerfile", "FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n"},
                                      {"probe", probe, 0755}}),
                            *tag_);
    build_status_ = new Status(id ? Status::ok() : id.status());
  }
  static void TearDownTestSuite() {
    if (tag_ && !socket_->empty()) (void)DockerClient({.host = *socket_}).remove_image(*tag_);
    delete socket_;
    delete tag_;
    delete build_status_;
    socket_ = tag_ = nullptr;
    build_status_ = nullptr;
  }
  void SetUp() override {
    ASSERT_FALSE(socket_->empty()) << "dockerd fixture not running (CULVERT_DOCKERD_DIR/socket)";
    ASSERT_TRUE(build_status_->is_ok()) << build_status_->to_string();
    client_ = std::make_unique<DockerClient>(DockerClient::Options{.host = *socket_});
  }
  void TearDown() override {
    for (const auto& id : created_) EXPECT_TRUE(client_->remove(id).is_ok());
  }
  std::string run(ContainerSpec spec) {
    spec.image = *tag_;
    spec.labels["culvert.test"] = "docker_e2e_test";
    auto id = client_->create(spec);
    EXPECT_TRUE(id) << id.status().to_string();
    if (!id) return "";
    created_.push_back(*id);
    EXPECT_TRUE(client_->start(*id).is_ok());
    return *id;
  }

  static std::string* socket_;
  static std::string* tag_;
  static Status* build_status_;
  std::unique_ptr<DockerClient> client_;
  std::vector<std::string> created_;
};
std::string* DockerE2E::socket_ = nullptr;
std::string* DockerE2E::tag_ = nullptr;
Status* DockerE2E::build_status_ = nullptr;

TEST_F(DockerE2E, RunsWithHostNetworkReadsLogsAndExitCode) {
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);

  ContainerSpec spec;
  spec.cmd = {"hello", "3"};
  spec.env = {{"CULVERT_PROBE_MSG", "from env"}, {"CULVERT_PROBE_PORT", std::to_string(ntohs(a.sin_port))}};
  spec.network_mode = "host";
  spec.nano_cpus = 500'000'000;
  spec.memory_bytes = 64 << 20;
  std::string id = run(spec);
  auto code = client_->wait(id);
  ASSERT_TRUE(code) << code.status().to_string();
  EXPECT_EQ(*code, 3);

  // The probe reached 127.0.0.1 on the host: its connection is waiting in the backlog.
  pollfd p{lfd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  int cfd = ::accept(lfd, nullptr, nullptr);
  char buf[8] = {};
  EXPECT_EQ(::read(cfd, buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf), "ping");
  ::close(cfd);
  ::close(lfd);

  auto lines = client_->logs(id);
  ASSERT_TRUE(lines) << lines.status().to_string();
  std::vector<std::string> out, err;
  for (const auto& l : *lines) (l.stream == LogStream::kStdout ? out : err).push_back(l.text);
  EXPECT_EQ(out, (std::vector<std::string>{"out 1", "out 2", "msg from env", "partial"}));
  EXPECT_EQ(err, (std::vector<std::string>{"err 1"}));

  auto info = client_->inspect(id);
  ASSERT_TRUE(info) << info.status().to_string();
  EXPECT_FALSE(info->running);
  EXPECT_EQ(info->status, "exited");
  EXPECT_EQ(info->exit_code, 3);
  EXPECT_FALSE(info->oom_killed);
  EXPECT_EQ(info->network_mode, "host");
  EXPECT_EQ(info->memory_bytes, 64 << 20);
  EXPECT_EQ(info->nano_cpus, 500'000'000);
  EXPECT_EQ(info->labels["culvert.test"], "docker_e2e_test");
}

TEST_F(DockerE2E, FollowStreamsLinesUntilTheContainerStops) {
  std::string id = run({.cmd = {"ticks", "5"}, .network_mode = "none"});
  std::vector<std::string> got;
  Status st = client_->follow_logs(id, [&](const LogLine& l) {
    got.push_back(l.text);
    return true;
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(got, (std::vector<std::string>{"tick 0", "tick 1", "tick 2", "tick 3", "tick 4"}));
  EXPECT_EQ(client_->wait(id).value(), 0);
}

TEST_F(DockerE2E, FollowStopsWhenTheCallbackSaysSo) {
  std::string id2 = run({.cmd = {"ticks", "50"}, .network_mode = "none"});
  int n = 0;
  ASSERT_TRUE(client_->follow_logs(id2, [&](const LogLine&) { return ++n < 2; }).is_ok());
  EXPECT_EQ(n, 2);
  EXPECT_TRUE(client_->stop(id2, 0).is_ok());
}

TEST_F(DockerE2E, MemoryLimitReportsOomKilled) {
  std::string id = run({.cmd = {"oom"}, .network_mode = "none", .memory_bytes = 32 << 20});
  auto code = client_->wait(id);
  ASSERT_TRUE(code) << code.status().to_string();
  EXPECT_EQ(*code, 137);
  auto info = client_->inspect(id);
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->oom_killed);
  EXPECT_EQ(info->exit_code, 137);
}

TEST_F(DockerE2E, StopAndRemove) {
  std::string id = run({.cmd = {"sleep"}, .network_mode = "none"});
  auto before = client_->inspect(id);
  ASSERT_TRUE(before);
  EXPECT_TRUE(before->running);
  ASSERT_TRUE(client_->stop(id, 1).is_ok());
  auto after = client_->inspect(id);
  ASSERT_TRUE(after);
  EXPECT_FALSE(after->running);
  EXPECT_NE(after->exit_code, 0);  // SIGTERM ignored by a sleeping PID 1, then SIGKILL: 137
  EXPECT_TRUE(client_->stop(id, 1).is_ok());  // again: no-op
  ASSERT_TRUE(client_->remove(id).is_ok());
  EXPECT_EQ(client_->inspect(id).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(client_->remove(id).is_ok());  // already gone
  // A running container is removed with force.
  std::string id2 = run({.cmd = {"sleep"}, .network_mode = "none"});
  ASSERT_TRUE(client_->remove(id2, true).is_ok());
  EXPECT_EQ(client_->inspect(id2).status().code(), StatusCode::kNotFound);
}

TEST_F(DockerE2E, BindMountsAHostDirectory) {
  fs::path dir = fs::temp_directory_path() / ("culvert-bind-" + new_uuid());
  fs::create_directories(dir);
  std::string id = run({.cmd = {"write", "/data/out.txt", "written in a container"},
                        .network_mode = "none",
                        .binds = {dir.string() + ":/data"}});
  EXPECT_EQ(client_->wait(id).value(), 0);
  std::ifstream in(dir / "out.txt");
  std::string got((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(got, "written in a container");
  fs::remove_all(dir);
}

TEST_F(DockerE2E, MissingImageAndContainerAreNotFound) {
  auto r = client_->create({.image = "culvert-no-such-image:" + new_uuid().substr(0, 8)});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("culvert-no-such-image"), std::string::npos) << r.status().message();
  EXPECT_EQ(client_->inspect("0123456789abcdef-none").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(client_->start("0123456789abcdef-none").code(), StatusCode::kNotFound);
  auto bad = client_->build_image(make_tar({{"Dockerfile", "FROM scratch\nCOPY missing /x\n"}}),
                                  "culvert-bad-build:x");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("missing"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace culvert::docker
