// The agent: registers with the server, heartbeats, long-polls for runs whose labels and
// run-config types it covers, launches each through its Launcher, reports what it started
// (the infrastructure id), watches what it launched and reports Crashed with the real
// reason when the infrastructure ends without the run having reported a final state, and
// stops the infrastructure of cancelled runs. A restarted agent adopts the unfinished
// runs the server still has Submitted to it, through the launcher, from the
// infrastructure ids it reported; it deregisters when stopped cleanly.
//
// The agent talks to the server only through AgentApi (in production an adapter over
// the HTTP API client), never through the server's store. Its threads: the claim loop
// (long-polls, launches), the monitor loop (reaps exits, checks cancels, heartbeats),
// and one short-lived thread per stop() in progress, so a run that takes its grace
// period to stop never delays heartbeats or the reaping of other runs. The claim and
// monitor loops each have their own AgentApi instance because API clients are not
// thread-safe; stop threads touch only their Launch. The steps are public so tests drive
// them one by one with fakes.
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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/launcher.hpp"

namespace culvert::agent {

// The most runs one claim asks for: the server refuses a larger "max".
inline constexpr int kMaxClaimBatch = 100;

// A run handed to this agent by a claim.
struct ClaimedRun {
  std::string id;
  std::string flow_id;
  std::string flow_name;
  std::string token;            // valid for this run only; goes into the run's env
  std::string run_config_json;  // the flow version's run config
};

// A run the server has Submitted to (or Running / Cancelling on) this agent, as listed
// at the agent's start. `run.token` is empty (the run's process has its own).
struct UnfinishedRun {
  ClaimedRun run;
  State state = State::kSubmitted;
  std::optional<Infrastructure> infrastructure;  // absent: never reported
};

// A run's state and that state's message: a Cancelling run's names who asked for the
// cancel ("cancel requested by alice (user token)"), which the agent passes on to the
// infrastructure it stops (Launch::cancel) and to the run's log.
struct RunState {
  State state = State::kScheduled;
  std::string message;
};

class AgentApi {
 public:
  virtual ~AgentApi() = default;
  // Registers (or re-registers by name) and returns the agent id. `max_concurrent` is
  // the runs it takes at once (AgentOptions::max_concurrent), shown with the agent.
  virtual Result<std::string> register_agent(const std::string& name, const std::string& type,
                                             const std::vector<std::string>& labels, int max_concurrent) = 0;
  // The agent is stopped: the server no longer shows it healthy.
  virtual Status deregister_agent(const std::string& agent_id) = 0;
  virtual Status heartbeat(const std::string& agent_id) = 0;
  // Waits up to `wait` for due runs this agent covers (labels, and a run config whose
  // type is absent or one of `types`); returns them Submitted to it.
  virtual Result<std::vector<ClaimedRun>> claim(const std::string& agent_id, const std::vector<std::string>& types,
                                                int max, Millis wait) = 0;
  virtual Result<RunState> get_run_state(const std::string& run_id) = 0;
  virtual Status set_run_state(const std::string& run_id, State state, const std::string& message) = 0;
  // Appends lines to the run's log (e.g. container output); best effort.
  virtual Status send_logs(const std::string& run_id, const std::vector<std::string>& lines) = 0;
  // Records what was started for the run (shown by `culvert run inspect`).
  virtual Status report_infrastructure(const std::string& run_id, const Infrastructure& infra) = 0;
  // The runs Submitted, Running or Cancelling on this agent.
  virtual Result<std::vector<UnfinishedRun>> list_unfinished_runs(const std::string& agent_id) = 0;
};

struct AgentOptions {
  std::string name;                 // REQUIRES non-empty
  std::vector<std::string> labels;
  int max_concurrent = 4;           // REQUIRES >= 1
  // The run's environment, in increasing precedence:
  //   CULVERT_WORKERS=<workers>  <  the agent's `env` (--env K=V)  <  the run config's "env"
  //   <  CULVERT_API_URL, CULVERT_API_TOKEN (the run's own token), CULVERT_FLOW_RUN_ID,
  // which nothing overrides. Merged in one place (run_environment) for every launcher.
  std::map<std::string, std::string> env;
  int workers = 0;                  // the runs' executor workers; 0: not set
  // Passed to runs as CULVERT_API_URL.
  std::string api_url;
  Millis heartbeat_interval{10000};
  Millis claim_wait{10000};          // long-poll length
  Millis monitor_interval{0};        // how often exits are reaped; 0: the launcher's choice
  Millis cancel_check_interval{1000};
  Millis stop_grace{10000};          // SIGTERM → SIGKILL for cancelled runs
  // Runs a stop (Launch::stop, which may block for the grace period) off the monitor
  // thread. Default (empty): a thread per stop, joined when the agent stops. Tests
  // inject one that runs the stop when they say.
  std::function<void(std::function<void()>)> run_async;
};

// The run config's fields the agent itself reads (decoded once, for every launcher).
struct RunConfigBasics {
  std::string type;                        // "" when absent
  std::map<std::string, std::string> env;  // non-string values as their JSON text
};
// InvalidArgument naming the field when the run config is not an object, its "type" is
// not a string or its "env" is not an object.
Result<RunConfigBasics> decode_run_config_basics(const std::string& run_config_json);

// The environment of one run (the precedence is described at AgentOptions::env).
std::map<std::string, std::string> run_environment(const AgentOptions& options, const RunConfigBasics& run_config,
                                                   const ClaimedRun& run);

class Agent {
 public:
  // `claim_api` is used only by the claim thread, `monitor_api` only by the monitor
  // thread (and by register/adopt/deregister, before and after both run); neither is
  // owned. `launcher` and `clock` are not owned and must outlive this.
  Agent(AgentOptions options, AgentApi& claim_api, AgentApi& monitor_api, Launcher& launcher,
        Clock& clock);
  // Waits for stops in progress.
  ~Agent();

  // Registers the agent. Must succeed before the other steps.
  Status register_self();
  const std::string& id() const { return id_; }
  // Tells the server the agent stopped (best effort).
  Status deregister_self();

  // Lists the runs the server still has on this agent (a previous process of it) and
  // adopts each through the launcher from its reported infrastructure, to watch and
  // cancel it as if launched here; runs whose infrastructure is gone and that reported no
  // final state are set Crashed with the reason, as are Submitted runs with nothing
  // recorded (a Running one with nothing recorded is left to its own heartbeats). Runs
  // that cannot be adopted now (the infrastructure's API is unreachable) are retried on
  // monitor passes. Returns how many were adopted.
  Result<int> adopt_unfinished();

  // One claim round: claims up to the free capacity (waiting up to `wait`) and launches
  // each run. Returns how many were launched; a launch failure is reported as Crashed.
  Result<int> claim_and_launch(Millis wait);
  // Reaps runs whose infrastructure ended (one Launcher::poll_all for all of them);
  // reports Crashed/Cancelled as needed. When `check_cancels`, also asks the server for
  // each active run's state and starts stopping (off this thread) the infrastructure of
  // runs that are Cancelling (or already final). Never blocks on a stop. A cancel's
  // cause (who asked) goes to the launch (Launch::cancel), the agent's log and the run's.
  void monitor_once(bool check_cancels);
  Status heartbeat_once();

  // Runs until `stop` becomes true: the claim loop on the calling thread, the monitor
  // loop on a second thread; adopts unfinished runs first. Runs still active at stop
  // keep running (they report for themselves); the agent stops claiming, waits for
  // stops in progress and deregisters. Returns an error, without waiting for `stop`,
  // when the server refuses the agent's token (401: revoked or expired; 403: lacks the
  // runner scope or the agent belongs to another token).
  Status run(const std::atomic<bool>& stop);

  size_t active_runs() const;
  // Ended runs whose end could not be reported yet (the server was unreachable); the
  // monitor retries them on each pass.
  size_t pending_reports() const;
  // Stops started and not finished yet.
  size_t stops_in_progress() const;

 private:
  // What the agent saw end: reported once the server can be reached.
  struct EndedRun {
    std::string run_id;
    ExitInfo exit;
    bool cancel_requested = false;
    std::string describe;  // the infrastructure, for the message
    bool adopted_gone = false;  // found gone when adopting
    bool output_sent = false;   // exit.output_if_never_running went to the run's log
  };
  // Reports an ended run unless it reported a final state itself. False when the
  // server could not be reached (retry later).
  bool report_end(EndedRun& ended);
  struct Active {
    ClaimedRun run;
    std::unique_ptr<Launch> launch;
    bool cancel_requested = false;
    // Set while a stop runs on its own thread; the monitor does not touch the launch
    // until `stop_done`.
    std::shared_ptr<std::atomic<bool>> stop_done;
  };
  // `why`: for a cancel, who asked (the Cancelling state's message).
  void start_stop(const std::string& run_id, bool cancel, const std::string& why = "");
  // Adopts one run; false when it is to be retried later.
  bool adopt_one(const UnfinishedRun& u, int& adopted);
  void add_active(ClaimedRun run, std::unique_ptr<Launch> launch, bool cancel_requested);
  void report_infrastructure(AgentApi& api, const std::string& run_id, const Infrastructure& infra);
  void set_fatal(const Status& st);
  void join_stop_threads();

  AgentOptions options_;
  AgentApi& claim_api_;
  AgentApi& monitor_api_;
  Launcher& launcher_;
  Clock& clock_;
  std::string id_;
  bool adopted_ = false;
  mutable std::mutex mu_;
  std::condition_variable slot_freed_;    // notified when a run leaves active_
  std::map<std::string, Active> active_;  // by run id; guarded by mu_
  std::vector<EndedRun> unreported_;      // guarded by mu_
  std::vector<std::pair<std::string, Infrastructure>> unreported_infra_;  // guarded by mu_
  std::vector<UnfinishedRun> to_adopt_;   // guarded by mu_
  struct StopThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<StopThread> stop_threads_;  // guarded by mu_
  std::atomic<bool> fatal_{false};
  Status fatal_status_;                   // guarded by mu_
};

// Whether `st` means the server will never accept this agent's token as it is.
bool is_auth_failure(const Status& st);

}  // namespace culvert::agent
