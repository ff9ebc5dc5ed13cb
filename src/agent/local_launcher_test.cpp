#include "agent/local_launcher.hpp"

#include <gtest/gtest.h>
#include <signal.h>

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
  LocalLauncher launcher({.output_dir = dir_.string()});
  LaunchSpec spec;
  spec.flow_run_id = "run1";
  spec.command = {"/bin/sh", "-c", "echo \"$A $B $CULVERT_FLOW_RUN_ID\"; pwd; exit 3"};
  spec.env = {{"A", "from-agent"}, {"CULVERT_FLOW_RUN_ID", "run1"}};
  spec.run_config_json = R"({"env": {"B": "from-config"}, "working_dir": ")" + dir_.string() + R"("})";
  auto launch = launcher.launch(spec);
  ASSERT_TRUE(launch) << launch.status().to_string();
  ExitInfo e = wait_exit(**launch);
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_EQ(e.reason, "exited with code 3");
  EXPECT_FALSE(e.success());
  EXPECT_EQ(read(dir_ / "run1.log"), "from-agent from-config run1\n" + dir_.string() + "\n");
}

TEST_F(LocalLauncherTest, KilledBySignalIsReported) {
  LocalLauncher launcher;
  LaunchSpec spec{.flow_run_id = "r", .command = {"/bin/sh", "-c", "kill -9 $$"}};
  auto launch = launcher.launch(spec);
  ASSERT_TRUE(launch);
  ExitInfo e = wait_exit(**launch);
  EXPECT_EQ(e.signal, 9);
  EXPECT_EQ(e.reason, "killed by signal 9 (SIGKILL)");
}

TEST_F(LocalLauncherTest, StopKillsTheWholeProcessGroup) {
  LocalLauncher launcher;
  fs::path pidfile = dir_ / "grandchild.pid";
  // The shell starts a grandchild that ignores nothing and would outlive a plain kill
  // of the shell; stop() must take the whole group.
  LaunchSpec spec{.flow_run_id = "r",
                  .command = {"/bin/sh", "-c", "sleep 60 & echo $! > " + pidfile.string() + "; wait"}};
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
  LocalLauncher launcher;
  auto missing = launcher.launch(LaunchSpec{.flow_run_id = "r", .command = {"/nonexistent/culvert"}});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("cannot execute '/nonexistent/culvert'"), std::string::npos)
      << missing.status().message();
  auto bad_dir = launcher.launch(LaunchSpec{.flow_run_id = "r", .command = {"/bin/true"},
                                            .run_config_json = R"({"working_dir": "/no/such/dir"})"});
  ASSERT_FALSE(bad_dir);
  EXPECT_NE(bad_dir.status().message().find("/no/such/dir"), std::string::npos);
  auto wrong_type = launcher.launch(LaunchSpec{.flow_run_id = "r", .command = {"/bin/true"},
                                               .run_config_json = R"({"type": "ecs"})"});
  ASSERT_FALSE(wrong_type);
  EXPECT_NE(wrong_type.status().message().find("'ecs'"), std::string::npos);
  auto bad_json = launcher.launch(LaunchSpec{.flow_run_id = "r", .command = {"/bin/true"},
                                             .run_config_json = "not json"});
  EXPECT_EQ(bad_json.status().code(), StatusCode::kInvalidArgument);
}

TEST(ExitInfo, FromWaitStatus) {
  EXPECT_EQ(exit_info_from_wait_status(0).reason, "exited with code 0");
  EXPECT_TRUE(exit_info_from_wait_status(0).success());
}

}  // namespace
}  // namespace culvert::agent
