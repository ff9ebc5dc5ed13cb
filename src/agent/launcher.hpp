// Launchers start the infrastructure of one flow run and watch it.
//
// A Launcher is one kind of infrastructure (local process, Docker container, ...); each
// lives in its own file behind this interface and is listed once in the launcher
// registry (launcher_registry.hpp), so a new kind is an added file and one registry line.
// launch() returns a Launch, an owned handle to what was started; adopt() makes the same
// handle again from the infrastructure id a previous agent process reported, so a
// restarted agent goes on watching (and can cancel) what it started before. The agent
// polls its handles (all of a launcher's at once, through poll_all) to learn when the
// infrastructure is gone and why, and stops it when the run is cancelled.
//
// The agent owns the run's environment and its run-config type check: a Launcher gets
// the final environment in LaunchSpec::env and only run configs of a type it listed in
// run_config_types().
//
// Thread safety: launch(), adopt() and poll_all() of one Launcher are called from one
// thread at a time, except that a launcher answering launch_parallelism() > 1 has several
// launch() calls at once. A Launch is used by one thread at a time (the agent may call stop()
// on a thread of its own, and then touches that Launch from no other thread until stop()
// returned).
#pragma once

#include <culvert/status.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace culvert::agent {

// What to start for one flow run.
struct LaunchSpec {
  std::string flow_run_id;
  std::string flow_id;    // the flow version
  std::string flow_name;
  // The run's whole environment, merged by the agent (see AgentOptions::env): launchers
  // add nothing of their own on top, except what the infrastructure itself gives (a local
  // process also inherits the agent's own environment underneath).
  std::map<std::string, std::string> env;
  // The flow version's run config (a JSON object; its "type", when given, is one of the
  // launcher's run_config_types()). Launchers read their own fields from it.
  std::string run_config_json = "{}";
};

// What a launch started, durably: reported to the server after launching, so that a
// restarted agent can adopt() it. kind: "process", "container", "ecs-task", "slurm-job".
struct Infrastructure {
  std::string kind;
  std::string id;  // pid, container id, task ARN, job id
};

// How the infrastructure ended.
struct ExitInfo {
  int exit_code = 0;         // process/container exit code (when it exited)
  int signal = 0;            // the signal that killed it, 0 if none
  bool oom_killed = false;   // container killed for memory
  bool timed_out = false;    // killed at its time limit (a Slurm job's TIMEOUT): a Running
                             // run that reported no final state becomes TimedOut, not Crashed
  std::string reason;        // human text: "exited with code 3", "killed by signal 9 (SIGKILL)"
  // The infrastructure's own output (e.g. a Slurm job's stdout/stderr file), attached to
  // the run's log by the agent when the run never reached Running: what went wrong before
  // `culvert execute` could report anything.
  std::vector<std::string> output_if_never_running;
  bool success() const { return signal == 0 && !oom_killed && !timed_out && exit_code == 0; }
};

class Launch {
 public:
  virtual ~Launch() = default;
  // Non-blocking: the exit once the infrastructure is gone, nullopt while it runs.
  virtual std::optional<ExitInfo> poll() = 0;
  // Stops the infrastructure: a polite signal, then a forced kill after `grace`. May
  // block up to about `grace` (+ a little): the agent calls it off its monitor thread.
  // Safe to call when already gone.
  virtual void stop(std::chrono::milliseconds grace) = 0;
  // Stops the infrastructure because its run was cancelled; `why` says who asked (the
  // Cancelling state's message, e.g. "cancel requested by alice (user token)"; may be
  // empty). By default the same as stop(grace); a launcher whose infrastructure keeps a
  // reason for being stopped (ECS StopTask's `reason`) records it there. Called off the
  // monitor thread, as stop().
  virtual void cancel(std::chrono::milliseconds grace, const std::string& why) {
    (void)why;
    stop(grace);
  }
  // The run reported its final state but its infrastructure still runs. By default the
  // same as stop(grace); a launcher whose infrastructure ends by itself a moment after
  // its run (an ECS task: the container exits, then ECS stops the task) may first give it
  // up to `grace` to do so. Called off the monitor thread, as stop().
  virtual void stop_lingering(std::chrono::milliseconds grace) { stop(grace); }
  // An identifier for logs and messages ("pid 1234", "container 3f2a...").
  virtual std::string describe() const = 0;
  // What to report to the server so a restarted agent can adopt this launch.
  virtual Infrastructure infrastructure() const = 0;
  // New output lines of the infrastructure itself (e.g. container logs) since the last
  // call; launchers whose runs report their own logs return nothing.
  virtual std::vector<std::string> drain_output() { return {}; }
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // The agent type this launcher makes (`culvert agent start --type`), registered with
  // the server.
  virtual std::string type() const = 0;
  // The run-config types this launcher starts; the agent claims only runs of these
  // types (a run config without a type runs on any agent). Default: {type()}.
  virtual std::vector<std::string> run_config_types() const { return {type()}; }
  // How often the agent should poll this launcher's launches (cheap for processes,
  // an API call per container for Docker).
  virtual std::chrono::milliseconds poll_interval() const { return std::chrono::milliseconds(200); }
  // Starts the run. An error means nothing is running; its message says why (it
  // becomes the run's Crashed message).
  virtual Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) = 0;
  // How many launch() calls the agent may make at once for the runs of one claim, each
  // on a thread of its own. Default 1: one after another, from one thread. A launcher
  // that answers more than 1 guards its own state.
  virtual int launch_parallelism() const { return 1; }
  // A handle to infrastructure a previous agent process launched for `spec`'s run and
  // reported as `infra`. NotFound when that infrastructure is gone (the message says
  // what was looked for); other errors when it cannot be adopted.
  virtual Result<std::unique_ptr<Launch>> adopt(const LaunchSpec& spec, const Infrastructure& infra) {
    (void)spec;
    return Status(StatusCode::kUnprocessable,
                  "a " + type() + " agent cannot adopt " + infra.kind + " " + infra.id);
  }
  // Infrastructure a previous agent process started for `spec`'s run but never reported
  // (it ended between the two), found by the launcher's own means (ECS: the tasks it
  // started, by their tags). NotFound when there is none, or when the launcher cannot
  // search (the default).
  virtual Result<std::unique_ptr<Launch>> find(const LaunchSpec& spec) {
    return not_found("a " + type() + " agent cannot search for the infrastructure of run " + spec.flow_run_id);
  }
  // Polls every launch in `launches` (all made by this launcher, none being stopped) and
  // returns their exits in the same order. Launchers whose API answers for many at once
  // (ECS DescribeTasks takes 100 tasks) override it to make one call per batch; the
  // default polls each.
  virtual std::vector<std::optional<ExitInfo>> poll_all(const std::vector<Launch*>& launches) {
    std::vector<std::optional<ExitInfo>> out;
    out.reserve(launches.size());
    for (Launch* l : launches) out.push_back(l->poll());
    return out;
  }
};

}  // namespace culvert::agent
