#include "agent/local_launcher.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/crypto.hpp"

namespace culvert::agent {
namespace {

namespace fs = std::filesystem;

// Waits for the process to end, polling (the launch is non-blocking by design).
ExitInfo wait_exit(Launch& l) {
  for (int i = 0; i < 30000; ++i) {
    if (auto e = l.poll()) return *e;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ADD_FAILURE() << "process did not exit";
  return {};
}

class LocalLauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("culvert-ll-" + new_uuid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path dir_;
};

TEST_F(LocalLauncherTest, ExitCodeEnvAndWorkingDir) {
  LocalLauncher launcher(
      {.output_dir = dir_.string(), .command = {"/bin/sh", "-c", "echo \"$A $B $CULVERT_FLOW_RUN_ID\"; pwd; exit 3"}});
  LaunchSpec spec;
  spec.flow_run_id = "run1";
  spec.env = {{"A", "from-agent"}, {"B", "from-config"}, {"CULVERT_FLOW_RUN_ID", "run1"}};
  spec.run_config_json = R"({"working_dir": ")" + dir_.string() + R"("})";
  auto launch = launcher.launch(spec);
  ASSERT_TRUE(launch) << launch.status().to_string();
  ExitInfo e = wait_exit(**launch);
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_EQ(e.reason, "exited with code 3");
  EXPECT_FALSE(e.success());
  EXPECT_EQ(read(dir_ / "run1.log"), "from-agent from-config run1\n" + dir_.string() + "\n");
}

TEST_F(LocalLauncherTest, KilledBySignalIsReported) {
  LocalLauncher launcher({.command = {"/bin/sh", "-c", "kill -9 $$"}});
  LaunchSpec spec{.flow_run_id = "r"};
  auto launch = launcher.launch(spec);
  ASSERT_TRUE(launch);
  ExitInfo e = wait_exit(**launch);
  EXPECT_EQ(e.signal, 9);
  EXPECT_EQ(e.reason, "killed by signal 9 (SIGKILL)");
}

TEST_F(LocalLauncherTest, StopKillsTheWholeProcessGroup) {
  fs::path pidfile = dir_ / "grandchild.pid";
  // The shell starts a grandchild that ignores nothing and would outlive a plain kill
  // of the shell; stop() must take the whole group.
  LocalLauncher launcher({.command = {"/bin/sh", "-c", "sleep 60 & echo $! > " + pidfile.string() + "; wait"}});
  LaunchSpec spec{.flow_run_id = "r"};
  auto launch = launcher.launch(spec);
  ASSERT_TRUE(launch);
  pid_t grandchild = 0;
  for (int i = 0; i < 10000 && grandchild == 0; ++i) {
    std::ifstream in(pidfile);
    in >> grandchild;
    if (grandchild == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GT(grandchild, 0);
  (*launch)->stop(std::chrono::milliseconds(2000));
  auto e = (*launch)->poll();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->signal, SIGTERM);
  // The grandchild is gone too (it was reparented; kill(pid, 0) fails once reaped).
  bool gone = false;
  for (int i = 0; i < 5000 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), {});
    gone = !stat || content.find(") Z") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(gone);
}

TEST_F(LocalLauncherTest, ClearErrors) {
  LocalLauncher missing_cmd({.command = {"/nonexistent/culvert"}});
  auto missing = missing_cmd.launch(LaunchSpec{.flow_run_id = "r"});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("cannot execute '/nonexistent/culvert'"), std::string::npos)
      << missing.status().message();
  LocalLauncher launcher({.command = {"/bin/true"}});
  auto bad_dir = launcher.launch(LaunchSpec{.flow_run_id = "r", .run_config_json = R"({"working_dir": "/no/such/dir"})"});
  ASSERT_FALSE(bad_dir);
  EXPECT_NE(bad_dir.status().message().find("/no/such/dir"), std::string::npos);
  auto bad_json = launcher.launch(LaunchSpec{.flow_run_id = "r", .run_config_json = "not json"});
  EXPECT_EQ(bad_json.status().code(), StatusCode::kInvalidArgument);
}

// The run's environment from the agent wins over the agent's own process environment.
TEST_F(LocalLauncherTest, TheRunsEnvironmentWinsOverTheAgentsOwn) {
  ::setenv("CULVERT_LL_TEST_SAME", "from-agent-process", 1);
  LocalLauncher launcher({.output_dir = dir_.string(), .command = {"/bin/sh", "-c", "echo \"$CULVERT_LL_TEST_SAME\""}});
  auto launch = launcher.launch(LaunchSpec{.flow_run_id = "r", .env = {{"CULVERT_LL_TEST_SAME", "from-run"}}});
  ::unsetenv("CULVERT_LL_TEST_SAME");
  ASSERT_TRUE(launch) << launch.status().to_string();
  EXPECT_TRUE(wait_exit(**launch).success());
  EXPECT_EQ(read(dir_ / "r.log"), "from-run\n");
}

// A verified binary runs from its descriptor: replacing the file at the path after the
// descriptor was opened (and its bytes hashed) does not change what runs.
TEST_F(LocalLauncherTest, AVerifiedBinaryRunsFromItsDescriptor) {
  fs::path bin = dir_ / "flowbin";
  {
    std::ofstream out(bin);
    out << "#!/bin/sh\necho verified \"$1\"\n";
  }
  fs::permissions(bin, fs::perms::owner_all);
  LocalLauncher launcher({.output_dir = dir_.string(), .command = {"/bin/false"},
                          .verified_binary = [&](const LaunchSpec&) -> std::optional<int> {
                            int fd = ::open(bin.c_str(), O_RDONLY);  // no O_CLOEXEC: a script needs its fd
                            // The path is swapped for other bytes before the launch runs.
                            fs::rename(bin, dir_ / "old");
                            std::ofstream(bin) << "#!/bin/sh\necho forged\n";
                            fs::permissions(bin, fs::perms::owner_all);
                            return fd;
                          }});
  auto launch = launcher.launch(LaunchSpec{.flow_run_id = "v"});
  ASSERT_TRUE(launch) << launch.status().to_string();
  EXPECT_TRUE(wait_exit(**launch).success());
  EXPECT_EQ(read(dir_ / "v.log"), "verified execute\n");
}

TEST_F(LocalLauncherTest, AdoptsItsOwnRunsProcessByPidAndNothingElse) {
  fs::path marker = dir_ / "started";
  LocalLauncher launcher({.command = {"/bin/sh", "-c", "touch " + marker.string() + "; exec sleep 60"}});
  auto launch = launcher.launch(LaunchSpec{.flow_run_id = "run-7", .env = {{"CULVERT_FLOW_RUN_ID", "run-7"}}});
  ASSERT_TRUE(launch);
  Infrastructure infra = (*launch)->infrastructure();
  EXPECT_EQ(infra.kind, "process");
  // Another run's id, or another kind: not adopted.
  auto other = launcher.adopt(LaunchSpec{.flow_run_id = "run-8"}, infra);
  EXPECT_EQ(other.status().code(), StatusCode::kNotFound) << other.status().to_string();
  EXPECT_EQ(launcher.adopt(LaunchSpec{.flow_run_id = "run-7"}, {"container", "abc"}).status().code(),
            StatusCode::kUnprocessable);
  EXPECT_EQ(launcher.adopt(LaunchSpec{.flow_run_id = "run-7"}, {"process", "12x"}).status().code(),
            StatusCode::kUnprocessable);
  auto adopted = launcher.adopt(LaunchSpec{.flow_run_id = "run-7"}, infra);
  ASSERT_TRUE(adopted) << adopted.status().to_string();
  EXPECT_FALSE((*adopted)->poll());
  EXPECT_EQ((*adopted)->infrastructure().id, infra.id);
  // The adopted handle stops it (the whole group); the original handle sees the signal.
  (*adopted)->stop(std::chrono::milliseconds(2000));
  auto e = wait_exit(**launch);
  EXPECT_EQ(e.signal, SIGTERM);
  ASSERT_TRUE((*adopted)->poll());
  // Once it is gone it cannot be adopted.
  EXPECT_EQ(launcher.adopt(LaunchSpec{.flow_run_id = "run-7"}, infra).status().code(), StatusCode::kNotFound);
}

TEST(ExitInfo, FromWaitStatus) {
  EXPECT_EQ(exit_info_from_wait_status(0).reason, "exited with code 0");
  EXPECT_TRUE(exit_info_from_wait_status(0).success());
}

}  // namespace
}  // namespace culvert::agent
