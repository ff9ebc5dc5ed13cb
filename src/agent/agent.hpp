// The agent (SPEC §5–7): registers with the server, heartbeats, long-polls for runs
// whose labels it covers, launches each through its Launcher, watches what it launched
// and reports Crashed with the real reason when the infrastructure ends without the run
// having reported a final state, and stops the infrastructure of cancelled runs.
//
// The agent talks to the server only through AgentApi (in production an adapter over
// the HTTP API client), never through the server's store. Two threads use it: the claim
// loop (long-polls, launches) and the monitor loop (reaps exits, checks cancels,
// heartbeats); each has its own AgentApi instance because API clients are not
// thread-safe. The steps are public so tests drive them one by one with fakes.
#pragma once

#include <culvert/clock.hpp>
#include <culvert/state.hpp>
#include <culvert/status.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/launcher.hpp"

namespace culvert::agent {

// A run handed to this agent by a claim.
struct ClaimedRun {
  std::string id;
  std::string flow_id;
  std::string flow_name;
  std::string token;            // valid for this run only; goes into the run's env
  std::string run_config_json;  // the flow version's run config
};

class AgentApi {
 public:
  virtual ~AgentApi() = default;
  // Registers (or re-registers by name) and returns the agent id.
  virtual Result<std::string> register_agent(const std::string& name, const std::string& type,
                                             const std::vector<std::string>& labels) = 0;
  virtual Status heartbeat(const std::string& agent_id) = 0;
  // Waits up to `wait` for due runs this agent covers; returns them Submitted to it.
  virtual Result<std::vector<ClaimedRun>> claim(const std::string& agent_id, int max,
                                                Millis wait) = 0;
  virtual Result<State> get_run_state(const std::string& run_id) = 0;
  virtual Status set_run_state(const std::string& run_id, State state, const std::string& message) = 0;
  // Appends lines to the run's log (e.g. container output); best effort.
  virtual Status send_logs(const std::string& run_id, const std::vector<std::string>& lines) = 0;
};

struct AgentOptions {
  std::string name;                 // REQUIRES non-empty
  std::vector<std::string> labels;
  int max_concurrent = 4;           // REQUIRES >= 1
  // Extra environment for every run (--env K=V); the run config's env overrides it.
  std::map<std::string, std::string> env;
  // The command launched for a run. Default set by the CLI: {<culvert>, "execute"}.
  std::vector<std::string> command;
  // When set and it returns a command, that one is launched instead (called on the
  // claim thread). The local agent uses it to start a flow binary already verified in
  // its artifact cache directly as `<artifact> execute`, skipping `culvert execute`.
  std::function<std::vector<std::string>(const ClaimedRun&)> command_for;
  // Passed to runs as CULVERT_API_URL.
  std::string api_url;
  Millis heartbeat_interval{10000};
  Millis claim_wait{10000};          // long-poll length
  Millis monitor_interval{0};        // how often exits are reaped; 0: the launcher's choice
  Millis cancel_check_interval{1000};
  Millis stop_grace{10000};          // SIGTERM → SIGKILL for cancelled runs
};

class Agent {
 public:
  // `claim_api` is used only by the claim thread, `monitor_api` only by the monitor
  // thread; neither is owned. `launcher` and `clock` are not owned and must outlive this.
  Agent(AgentOptions options, AgentApi& claim_api, AgentApi& monitor_api, Launcher& launcher,
        Clock& clock);
  ~Agent();

  // Registers the agent. Must succeed before the other steps.
  Status register_self();
  const std::string& id() const { return id_; }

  // One claim round: claims up to the free capacity (waiting up to `wait`) and launches
  // each run. Returns how many were launched; a launch failure is reported as Crashed.
  Result<int> claim_and_launch(Millis wait);
  // Reaps runs whose infrastructure ended; reports Crashed/Cancelled as needed. When
  // `check_cancels`, also asks the server for each active run's state and stops the
  // infrastructure of runs that are Cancelling (or already final).
  void monitor_once(bool check_cancels);
  Status heartbeat_once();

  // Runs until `stop` becomes true: the claim loop on the calling thread, the monitor
  // loop on a second thread. Runs still active at stop keep running (they report for
  // themselves); the agent only stops claiming.
  Status run(const std::atomic<bool>& stop);

  size_t active_runs() const;
  // Ended runs whose end could not be reported yet (the server was unreachable); the
  // monitor retries them on each pass.
  size_t pending_reports() const;

 private:
  // What the agent saw end: reported once the server can be reached.
  struct EndedRun {
    std::string run_id;
    ExitInfo exit;
    bool cancel_requested = false;
    std::string describe;  // the infrastructure, for the message
  };
  // Reports an ended run unless it reported a final state itself. False when the
  // server could not be reached (retry later).
  bool report_end(const EndedRun& ended);
  struct Active {
    ClaimedRun run;
    std::unique_ptr<Launch> launch;
    bool cancel_requested = false;
  };
  std::vector<std::string> claimed_ids() const;

  AgentOptions options_;
  AgentApi& claim_api_;
  AgentApi& monitor_api_;
  Launcher& launcher_;
  Clock& clock_;
  std::string id_;
  mutable std::mutex mu_;
  std::condition_variable slot_freed_;    // notified when a run leaves active_
  std::map<std::string, Active> active_;  // by run id; guarded by mu_
  std::vector<EndedRun> unreported_;      // guarded by mu_
};

}  // namespace culvert::agent
