// The local launcher: fork/exec of the run's command in a new process group, with the
// run config's env and working_dir (SPEC §6 "local"). stop() signals the whole group
// (SIGTERM, then SIGKILL after the grace period), so the flow's own children go too.
#pragma once

#include "agent/launcher.hpp"

namespace culvert::agent {

struct LocalLauncherOptions {
  // Working directory when the run config names none. Default: the agent's own.
  std::string working_dir;
  // Where the child's stdout/stderr go: a file per run in this directory
  // (<dir>/<flow_run_id>.log), or inherited from the agent when empty.
  std::string output_dir;
};

class LocalLauncher final : public Launcher {
 public:
  explicit LocalLauncher(LocalLauncherOptions options = {});
  std::string type() const override { return "local"; }
  // waitpid(WNOHANG) is nearly free: poll often so a finished run frees its slot at once.
  std::chrono::milliseconds poll_interval() const override { return std::chrono::milliseconds(20); }
  Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) override;

 private:
  LocalLauncherOptions options_;
};

// "exited with code 3", "killed by signal 9 (SIGKILL)"; from a waitpid status.
ExitInfo exit_info_from_wait_status(int status);

}  // namespace culvert::agent
