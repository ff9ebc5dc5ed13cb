// Launchers start the infrastructure of one flow run (SPEC §6) and watch it.
//
// A Launcher is one kind of infrastructure (local process, Docker container, ...); each
// lives in its own file behind this interface, so a new kind is an added file. launch()
// returns a Launch, an owned handle to what was started. The agent polls the handle to
// learn when the infrastructure is gone and why, and stops it when the run is cancelled.
//
// Thread safety: a Launcher may be called from one thread at a time; a Launch is owned
// and used by one thread.
#pragma once

#include <culvert/status.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace culvert::agent {

// What to start: the command (`culvert execute` in production), its environment (the
// run's CULVERT_* variables, the agent's --env, the run config's env) and the run config
// (JSON text, SPEC §6 fields for this launcher's type).
struct LaunchSpec {
  std::string flow_run_id;
  std::string flow_name;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::string run_config_json = "{}";
};

// How the infrastructure ended.
struct ExitInfo {
  int exit_code = 0;         // process/container exit code (when it exited)
  int signal = 0;            // the signal that killed it, 0 if none
  bool oom_killed = false;   // container killed for memory
  std::string reason;        // human text: "exited with code 3", "killed by signal 9 (SIGKILL)"
  bool success() const { return signal == 0 && !oom_killed && exit_code == 0; }
};

class Launch {
 public:
  virtual ~Launch() = default;
  // Non-blocking: the exit once the infrastructure is gone, nullopt while it runs.
  virtual std::optional<ExitInfo> poll() = 0;
  // Stops the infrastructure: a polite signal, then a forced kill after `grace`.
  // Blocks at most about `grace` (+ a little). Safe to call when already gone.
  virtual void stop(std::chrono::milliseconds grace) = 0;
  // An identifier for logs and messages ("pid 1234", "container 3f2a...").
  virtual std::string describe() const = 0;
  // New output lines of the infrastructure itself (e.g. container logs) since the last
  // call; launchers whose runs report their own logs return nothing.
  virtual std::vector<std::string> drain_output() { return {}; }
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string type() const = 0;
  // How often the agent should poll this launcher's launches (cheap for processes,
  // an API call per container for Docker).
  virtual std::chrono::milliseconds poll_interval() const { return std::chrono::milliseconds(200); }
  // Starts the run. An error means nothing is running; its message says why (it
  // becomes the run's Crashed message).
  virtual Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) = 0;
};

}  // namespace culvert::agent
