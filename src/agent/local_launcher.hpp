// The local launcher: fork/exec of the run's command in a new process group, in the run
// config's working_dir, with the run's environment (from the agent) over the agent's own.
// stop() signals the whole group (SIGTERM, then SIGKILL after the grace period), so the
// flow's own children go too.
//
// Adoption: a restarted agent adopts a run's process by its pid when a process with that
// pid still runs and its environment names the run (CULVERT_FLOW_RUN_ID), so a reused
// pid is never taken for the run. It can watch and stop an adopted process but, not being
// its parent, cannot learn its exit status: the run's own final state tells (a process
// that ended without one is reported Crashed, "exit status unknown").
#pragma once

#include <functional>
#include <optional>

#include "agent/launcher.hpp"

namespace culvert::agent {

struct LocalLauncherOptions {
  // Working directory when the run config names none. Default: the agent's own.
  std::string working_dir;
  // Where the child's stdout/stderr go: a file per run in this directory
  // (<dir>/<flow_run_id>.log), or inherited from the agent when empty.
  std::string output_dir;
  // The command started for a run (`culvert execute`, which fetches the flow binary).
  std::vector<std::string> command = {"culvert", "execute"};
  // When set and it returns a descriptor, the run starts as `<that file> execute` through
  // fexecve() of the descriptor instead of `command` (the launcher closes it). The local
  // agent uses it for flow binaries already in its artifact cache: the descriptor's bytes
  // were hashed against the registered SHA-256 (storage::open_verified_artifact), so what
  // runs is exactly what was checked. Called on the thread that calls launch().
  std::function<std::optional<int>(const LaunchSpec&)> verified_binary;
};

class LocalLauncher final : public Launcher {
 public:
  explicit LocalLauncher(LocalLauncherOptions options = {});
  std::string type() const override { return "local"; }
  // waitpid(WNOHANG) is nearly free: poll often so a finished run frees its slot at once.
  std::chrono::milliseconds poll_interval() const override { return std::chrono::milliseconds(20); }
  Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) override;
  // infra.kind "process", infra.id the pid.
  Result<std::unique_ptr<Launch>> adopt(const LaunchSpec& spec, const Infrastructure& infra) override;

 private:
  LocalLauncherOptions options_;
};

// "exited with code 3", "killed by signal 9 (SIGKILL)"; from a waitpid status.
ExitInfo exit_info_from_wait_status(int status);

}  // namespace culvert::agent
