#include <culvert/executor.hpp>
#include <culvert/main.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "engine/flow_impl.hpp"
#include "runtime/answers.hpp"
#include "runtime/child_runs.hpp"
#include "runtime/reporter.hpp"
#include "runtime/runtime.hpp"

namespace culvert::runtime {

using nlohmann::json;

namespace {

std::optional<std::string> env_var(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::optional<long> parse_positive(const std::string& s) {
  char* end = nullptr;
  long n = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || n <= 0) return std::nullopt;
  return n;
}

// Watches the run from the server's side while it executes: heartbeats, and cancels
// the local run when the server says Cancelling (or the run was ended elsewhere).
class RunWatcher {
 public:
  RunWatcher(const ExecuteEnv& env, Clock& clock, CancellationSource& cancel, ServerReporter& reporter)
      : env_(env), clock_(clock), cancel_(cancel), reporter_(reporter),
        api_(client::ClientOptions{.api_url = env.api_url, .api_token = env.api_token}) {
    thread_ = std::thread([this] { loop(); });
  }
  ~RunWatcher() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // The state the server reported that made us cancel, if any.
  std::optional<std::string> cancelled_by_server() const {
    std::lock_guard lock(mu_);
    return cancelled_state_;
  }
  // The Cancelling state's message (who asked), when that made us cancel; "" otherwise.
  std::string cancel_message() const {
    std::lock_guard lock(mu_);
    return cancel_message_;
  }

 private:
  void loop() {
    auto next_heartbeat = clock_.steady_now() + env_.heartbeat_interval;
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, env_.cancel_poll, [&] { return stop_; });
      if (stop_) break;
      lock.unlock();
      std::optional<FlowRunAnswer> run;
      if (clock_.steady_now() >= next_heartbeat) {
        next_heartbeat = clock_.steady_now() + env_.heartbeat_interval;
        run = read_state(api_.heartbeat_flow_run(env_.flow_run_id));
      }
      if (!run) run = read_state(api_.get_flow_run(env_.flow_run_id));
      lock.lock();
      const std::string* state = run ? &run->state : nullptr;
      if (state && (*state == "Cancelling" || *state == "Cancelled" || *state == "Crashed")) {
        if (!cancelled_state_) {
          cancelled_state_ = *state;
          // Who asked for a cancel (the Cancelling state's message) stays named.
          if (*state == "Cancelling") cancel_message_ = run->state_message;
          lock.unlock();
          reporter_.log(LogLevel::kWarning, "the server reports the run " + *state +
                                                (run->state_message.empty() ? "" : " (" + run->state_message + ")") +
                                                "; cancelling");
          cancel_.cancel();
          lock.lock();
        }
      }
    }
  }

  // The run's state in an answer; nullopt when there is none (unreachable server, or a
  // malformed answer: said once on the run's log, and the run goes on).
  std::optional<FlowRunAnswer> read_state(const Result<nlohmann::json>& answer) {
    if (!answer) return std::nullopt;
    auto run = decode_flow_run(*answer);
    if (run) return std::move(*run);
    if (!said_malformed_) {
      said_malformed_ = true;
      reporter_.log(LogLevel::kWarning, "ignoring a malformed answer while watching the run: " + run.status().message());
    }
    return std::nullopt;
  }

  const ExecuteEnv& env_;
  Clock& clock_;  // heartbeat cadence; polls wait cancel_poll of real time
  CancellationSource& cancel_;
  ServerReporter& reporter_;
  client::ApiClient api_;  // used by the watcher thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::optional<std::string> cancelled_state_;
  std::string cancel_message_;
  bool said_malformed_ = false;  // used by the watcher thread only
  std::thread thread_;
};

bool unreachable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kTimeout;
}


// Sets a state, retrying while the server is unreachable. When an earlier attempt may
// have been applied before the connection broke, a Conflict is checked against the
// run: already in `state` means done. `run_out`, when given, receives the run as the
// server answered it (a malformed answer is an error then).
Status set_state_with_retry(Clock& clock, client::ApiClient& api, const std::string& run_id, const char* state,
                            const std::string& message, std::chrono::milliseconds wait,
                            FlowRunAnswer* run_out = nullptr) {
  bool maybe_applied = false;
  auto r = retry_while_unreachable(clock, wait, [&]() -> Result<nlohmann::json> {
    auto a = api.set_flow_run_state(run_id, state, message);
    if (!a && unreachable(a.status())) maybe_applied = true;
    return a;
  });
  if (r) {
    if (run_out == nullptr) return Status::ok();
    auto decoded = decode_flow_run(*r);
    if (!decoded) return decoded.status();
    *run_out = std::move(*decoded);
    return Status::ok();
  }
  if (r.status().code() == StatusCode::kConflict && maybe_applied) {
    auto now = api.get_flow_run(run_id);
    if (now) {
      auto decoded = decode_flow_run(*now);
      if (decoded && decoded->state == state) {
        if (run_out != nullptr) *run_out = std::move(*decoded);
        return Status::ok();
      }
    }
  }
  return r.status();
}

}  // namespace

Result<nlohmann::json> retry_while_unreachable(Clock& clock, std::chrono::milliseconds wait,
                                               const std::function<Result<nlohmann::json>()>& call) {
  const auto deadline = clock.steady_now() + wait;
  std::chrono::milliseconds backoff(250);
  for (;;) {
    auto r = call();
    if (r || !unreachable(r.status()) || clock.steady_now() + backoff > deadline) return r;
    clock.sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

int default_workers() {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(std::min(cores, 1024u));
}

Result<ExecuteEnv> execute_env_from_process() {
  ExecuteEnv env;
  std::vector<std::string> missing;
  auto need = [&](const char* name, std::string& out) {
    if (auto v = env_var(name)) out = *v;
    else missing.push_back(name);
  };
  need("CULVERT_API_URL", env.api_url);
  need("CULVERT_API_TOKEN", env.api_token);
  need("CULVERT_FLOW_RUN_ID", env.flow_run_id);
  if (!missing.empty()) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    return invalid_argument("execute runs a flow run for an agent and needs " + names +
                            " in the environment (to run a flow here, use `run`)");
  }
  if (auto v = env_var("CULVERT_HEARTBEAT_SECONDS")) {
    auto n = parse_positive(*v);
    if (!n) return invalid_argument("CULVERT_HEARTBEAT_SECONDS must be a positive number, got '" + *v + "'");
    env.heartbeat_interval = std::chrono::seconds(*n);
  }
  if (auto v = env_var("CULVERT_CANCEL_POLL_MS")) {
    auto n = parse_positive(*v);
    if (!n) return invalid_argument("CULVERT_CANCEL_POLL_MS must be a positive number, got '" + *v + "'");
    env.cancel_poll = std::chrono::milliseconds(*n);
  }
  if (auto v = env_var("CULVERT_SERVER_WAIT_SECONDS")) {
    auto n = parse_positive(*v);
    if (!n) return invalid_argument("CULVERT_SERVER_WAIT_SECONDS must be a positive number, got '" + *v + "'");
    env.server_wait = std::chrono::seconds(*n);
  }
  if (auto v = env_var("CULVERT_SIGNALLED_END")) {
    if (*v != "agent" && *v != "run")
      return invalid_argument("CULVERT_SIGNALLED_END must be 'agent' or 'run', got '" + *v + "'");
    env.signalled_end_by_agent = *v == "agent";
  }
  env.workers = default_workers();
  if (auto v = env_var("CULVERT_WORKERS")) {
    auto n = parse_positive(*v);
    if (!n || *n > 1024) return invalid_argument("CULVERT_WORKERS must be a number from 1 to 1024, got '" + *v + "'");
    env.workers = static_cast<int>(*n);
  }
  return env;
}

namespace {

// A child run: one chunk of its parent's distributed map. Its own run gets the run-level
// lines; the elements' task runs and their lines go to the parent, under the map task.
int execute_chunk(const Flow& flow, const ExecuteEnv& env, client::ApiClient& api, Clock& clock,
                  FlowRunAnswer& run) {
  const std::string prog = flow.name() + " execute";
  const ChildOf& child = *run.child;
  auto fail = [&](const std::string& message) {
    std::cerr << prog << ": " << message << "\n";
    (void)set_state_with_retry(clock, api, env.flow_run_id, "Failed", message, env.server_wait);
    return 1;
  };
  FlowRunAnswer running_run;
  if (Status running = set_state_with_retry(clock, api, env.flow_run_id, "Running", "", env.server_wait, &running_run);
      !running.is_ok()) {
    std::cerr << prog << ": the server refused to start flow run " << env.flow_run_id << ": " << running.message()
              << "\n";
    return 1;
  }
  if (Status valid = flow.validate(); !valid) return fail(valid.message());
  const detail::FlowImpl& impl = detail::FlowAccess::of(flow);
  const detail::Node* node = nullptr;
  for (const auto& n : impl.nodes)
    if (n.name == child.task) node = &n;
  if (node == nullptr || !node->opt || !node->opt->distributed)
    return fail("flow '" + flow.name() + "' has no distributed task '" + child.task + "' (was the flow changed?)");
  const std::string storage = detail::distributed_storage(impl, *node);

  client::ClientOptions client_options{.api_url = env.api_url, .api_token = env.api_token};
  ServerReporter own(client_options, env.flow_run_id,
                     ReporterOptions{.close_wait = env.server_wait, .run_attempt = running_run.run_count, .clock = &clock});
  ServerReporter elements(client_options, child.parent_run_id,
                          ReporterOptions{.close_wait = env.server_wait, .run_attempt = child.parent_attempt,
                                          .clock = &clock});
  CancellationSource cancel;
  SignalCancellation signals(cancel);
  std::optional<RunWatcher> watcher(std::in_place, env, clock, cancel, own);
  auto finish = [&](const char* state, const std::string& message) {
    Status flushed = elements.close();
    if (!flushed.is_ok()) std::cerr << prog << ": some task states or logs could not be sent: " << flushed.message() << "\n";
    (void)own.close();
    auto by = watcher->cancelled_by_server();
    if (by && (*by == "Cancelled" || *by == "Crashed")) return 1;
    Status st = set_state_with_retry(clock, api, env.flow_run_id, state, message, env.server_wait);
    watcher.reset();
    if (!st.is_ok()) {
      std::cerr << prog << ": cannot set the final state " << state << ": " << st.message() << "\n";
      return 1;
    }
    return std::string_view(state) == "Success" ? 0 : 1;
  };

  auto opened = open_object_store(storage);
  if (!opened) return finish("Failed", "cannot open the map's storage " + storage + ": " + opened.status().message());
  const std::string in = chunk_uri(storage, child.parent_run_id, child.parent_attempt, child.task, "in", child.chunk);
  const std::string out = chunk_uri(storage, child.parent_run_id, child.parent_attempt, child.task, "out", child.chunk);
  auto inputs = (*opened)->get(in);
  if (!inputs)
    return finish("Failed", "cannot read the chunk's inputs from " + in + ": " + inputs.status().message() +
                                (storage.starts_with("file://")
                                     ? " (a file:// storage must be a folder that the parent and every worker share)"
                                     : ""));
  own.log(LogLevel::kInfo, "chunk " + std::to_string(child.chunk) + " of task '" + child.task + "' of flow run " +
                               child.parent_run_id + ": elements " + std::to_string(child.start) + ".." +
                               std::to_string(child.end - 1));
  RunOptions opts;
  opts.flow_run_id = child.parent_run_id;
  opts.clock = env.clock;
  opts.parameters = std::move(run.parameters);
  opts.observers.push_back(&elements);
  opts.cancel = &cancel;
  Result<ChunkResult> result = invalid_argument("not run");
  {
    Executor executor(env.workers);
    result = executor.run_chunk(flow, ChunkSpec{child.task, static_cast<size_t>(child.start), std::move(*inputs)}, opts);
  }
  if (!result) return finish("Failed", result.status().message());
  if (result->outcomes.size() != static_cast<size_t>(child.end - child.start))
    return finish("Failed", "the chunk's inputs hold " + std::to_string(result->outcomes.size()) +
                                " elements, but the child run covers " + std::to_string(child.end - child.start));
  // Published whole under its name (storage writes are atomic per object).
  if (Status put = (*opened)->put(out, encode_chunk_outcomes(result->outcomes)); !put)
    return finish("Failed", "cannot write the chunk's outcomes to " + out + ": " + put.message());
  if (int sig = signals.signal_received(); sig != 0 && !watcher->cancelled_by_server() && env.signalled_end_by_agent) {
    (void)elements.close();
    (void)own.close();
    return 128 + sig;
  }
  return finish(state_name(result->state), result->message);
}

}  // namespace

int execute_flow(const Flow& flow, const ExecuteEnv& env) {
  const std::string prog = flow.name() + " execute";
  client::ApiClient api(client::ClientOptions{.api_url = env.api_url, .api_token = env.api_token});
  Clock& clock = env.clock != nullptr ? *env.clock : system_clock();
  auto answer = retry_while_unreachable(clock, env.server_wait, [&] { return api.get_flow_run(env.flow_run_id); });
  Result<FlowRunAnswer> run = answer ? decode_flow_run(*answer) : Result<FlowRunAnswer>(answer.status());
  if (!run) {
    std::cerr << prog << ": cannot read flow run " << env.flow_run_id << ": " << run.status().message() << "\n";
    return 1;
  }
  if (!run->flow_name.empty() && run->flow_name != flow.name()) {
    std::cerr << prog << ": flow run " << env.flow_run_id << " belongs to flow '" << run->flow_name << "', not '"
              << flow.name() << "'\n";
    (void)set_state_with_retry(clock, api, env.flow_run_id, "Crashed",
                               "the launched artifact is flow '" + flow.name() + "', not '" + run->flow_name + "'",
                               env.server_wait);
    return 1;
  }

  if (run->child) return execute_chunk(flow, env, api, clock, *run);

  RunOptions opts;
  opts.flow_run_id = env.flow_run_id;
  opts.clock = env.clock;
  opts.parameters = std::move(run->parameters);

  // The server counts the run's attempts as it goes Running; every log line and task-run
  // state carries that attempt, so that the attempts of a retried run stay apart.
  FlowRunAnswer running_run;
  if (Status running =
          set_state_with_retry(clock, api, env.flow_run_id, "Running", "", env.server_wait, &running_run);
      !running.is_ok()) {
    std::cerr << prog << ": the server refused to start flow run " << env.flow_run_id << ": "
              << running.message() << "\n";
    return 1;
  }

  ServerReporter reporter(
      client::ClientOptions{.api_url = env.api_url, .api_token = env.api_token}, env.flow_run_id,
      ReporterOptions{.close_wait = env.server_wait, .run_attempt = running_run.run_count, .clock = &clock});
  CancellationSource cancel;
  SignalCancellation signals(cancel);
  opts.observers.push_back(&reporter);
  opts.cancel = &cancel;
  // Distributed maps run their chunks as child runs of this one.
  ChildRunDistributor distributor(
      [&env] { return make_client_child_runs(env.api_url, env.api_token); },
      DistributorOptions{.parent_run_id = env.flow_run_id,
                         .parent_attempt = std::max(1, running_run.run_count),
                         .server_wait = env.server_wait,
                         .clock = env.clock,
                         .log = [&reporter](LogLevel l, const std::string& m) { reporter.log(l, m); }});
  opts.distributor = &distributor;

  Result<RunResult> result = invalid_argument("not run");
  std::optional<std::string> cancelled_by;
  // The watcher heartbeats until the final state is set: the final flush and state may
  // wait for a restarting server, and the run is alive while they do.
  std::optional<RunWatcher> watcher(std::in_place, env, clock, cancel, reporter);
  {
    Executor executor(env.workers);
    result = executor.run(flow, opts);
    cancelled_by = watcher->cancelled_by_server();
  }

  const char* final_state;
  std::string message;
  if (!result) {
    // Bad parameters or an invalid flow: the code's fault, not the infrastructure's.
    final_state = "Failed";
    message = result.status().message();
    reporter.log(LogLevel::kError, message);
  } else {
    final_state = state_name(result->state);
    message = result->message;
    // Cancelled on the server's word: the final state names who asked for it.
    if (result->state == State::kCancelled && cancelled_by && *cancelled_by == "Cancelling") {
      std::string who = watcher->cancel_message();
      if (!who.empty()) message += " (" + who + ")";
    }
  }
  Status flushed = reporter.close();
  if (!flushed.is_ok())
    std::cerr << prog << ": some task states or logs could not be sent: " << flushed.message() << "\n";
  if (reporter.dropped_logs() > 0 || reporter.dropped_task_updates() > 0)
    std::cerr << prog << ": dropped " << reporter.dropped_logs() << " log lines and "
              << reporter.dropped_task_updates() << " task-run updates"
              << (reporter.last_error().empty() ? "" : " (" + reporter.last_error() + ")") << "\n";

  if (cancelled_by && (*cancelled_by == "Cancelled" || *cancelled_by == "Crashed")) {
    // Someone else already ended the run; nothing to report.
    return 1;
  }
  if (int sig = signals.signal_received(); sig != 0 && !cancelled_by && env.signalled_end_by_agent) {
    // The infrastructure stopped the run, not a cancel: its agent knows why and sets the
    // final state.
    std::cerr << prog << ": stopped by signal " << sig << " without a cancel; the agent sets the final state\n";
    return 128 + sig;
  }
  Status st = set_state_with_retry(clock, api, env.flow_run_id, final_state, message, env.server_wait);
  watcher.reset();
  if (!st.is_ok()) {
    std::cerr << prog << ": cannot set the final state " << final_state << ": " << st.message() << "\n";
    return 1;
  }
  return result && result->state == State::kSuccess ? 0 : 1;
}

}  // namespace culvert::runtime
