#include "agent/agent.hpp"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <optional>
#include <thread>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace culvert::agent {
namespace {

bool retry_later(const Status& st) {
  return st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kTimeout;
}

}  // namespace

bool is_auth_failure(const Status& st) {
  return st.code() == StatusCode::kUnauthenticated || st.code() == StatusCode::kPermissionDenied;
}

Result<RunConfigBasics> decode_run_config_basics(const std::string& run_config_json) {
  auto rc = nlohmann::json::parse(run_config_json.empty() ? std::string("{}") : run_config_json, nullptr, false);
  if (rc.is_discarded() || !rc.is_object()) return invalid_argument("the run config is not a JSON object");
  RunConfigBasics out;
  if (auto it = rc.find("type"); it != rc.end() && !it->is_null()) {
    if (!it->is_string()) return invalid_argument("the run config's \"type\" is not a string");
    out.type = it->get<std::string>();
  }
  if (auto it = rc.find("env"); it != rc.end() && !it->is_null()) {
    if (!it->is_object()) return invalid_argument("the run config's \"env\" is not an object");
    for (const auto& [k, v] : it->items()) out.env[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  return out;
}

std::map<std::string, std::string> run_environment(const AgentOptions& options, const RunConfigBasics& run_config,
                                                   const ClaimedRun& run) {
  std::map<std::string, std::string> env;
  if (options.workers > 0) env["CULVERT_WORKERS"] = std::to_string(options.workers);
  for (const auto& [k, v] : options.env) env[k] = v;
  for (const auto& [k, v] : run_config.env) env[k] = v;
  env["CULVERT_API_URL"] = options.api_url;
  env["CULVERT_API_TOKEN"] = run.token;
  env["CULVERT_FLOW_RUN_ID"] = run.id;
  return env;
}

Agent::Agent(AgentOptions options, AgentApi& claim_api, AgentApi& monitor_api, Launcher& launcher,
             Clock& clock)
    : options_(std::move(options)),
      claim_api_(claim_api),
      monitor_api_(monitor_api),
      launcher_(launcher),
      clock_(clock) {}

Agent::~Agent() { join_stop_threads(); }

void Agent::join_stop_threads() {
  std::vector<StopThread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(stop_threads_);
  }
  for (auto& t : threads) t.thread.join();
}

Status Agent::register_self() {
  auto id = monitor_api_.register_agent(options_.name, launcher_.type(), options_.labels, options_.max_concurrent);
  if (!id) return id.status();
  id_ = *id;
  return Status::ok();
}

Status Agent::deregister_self() {
  if (id_.empty()) return Status::ok();
  return monitor_api_.deregister_agent(id_);
}

size_t Agent::active_runs() const {
  std::lock_guard lock(mu_);
  return active_.size();
}

size_t Agent::pending_reports() const {
  std::lock_guard lock(mu_);
  return unreported_.size();
}

size_t Agent::stops_in_progress() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, a] : active_)
    if (a.stop_done && !a.stop_done->load()) ++n;
  return n;
}

void Agent::set_fatal(const Status& st) {
  std::lock_guard lock(mu_);
  if (fatal_.load()) return;
  fatal_status_ = st;
  fatal_.store(true);
}

void Agent::add_active(ClaimedRun run, std::unique_ptr<Launch> launch, bool cancel_requested) {
  std::string id = run.id;
  std::lock_guard lock(mu_);
  active_.emplace(std::move(id), Active{std::move(run), std::move(launch), cancel_requested, nullptr});
}

void Agent::report_infrastructure(AgentApi& api, const std::string& run_id, const Infrastructure& infra) {
  Status st = api.report_infrastructure(run_id, infra);
  if (st.is_ok()) return;
  spdlog::warn("run {}: reporting its infrastructure ({} {}) failed{}: {}", run_id, infra.kind, infra.id,
               retry_later(st) ? " (will retry)" : "", st.to_string());
  if (!retry_later(st)) return;
  std::lock_guard lock(mu_);
  unreported_infra_.emplace_back(run_id, infra);
}

Result<int> Agent::claim_and_launch(Millis wait) {
  int free_slots = options_.max_concurrent - static_cast<int>(active_runs());
  if (free_slots <= 0) return 0;
  // The server hands out at most kMaxClaimBatch runs per claim (a larger "max" is
  // refused): an agent with more free slots claims again on its next pass.
  free_slots = std::min(free_slots, kMaxClaimBatch);
  const std::vector<std::string> types = launcher_.run_config_types();
  auto claimed = claim_api_.claim(id_, types, free_slots, wait);
  if (!claimed && claimed.status().code() == StatusCode::kConflict) {
    // The server says this agent is stopped: an admin deregistered it while it runs.
    // It is alive, so it registers again (same name and token: same id) and goes on.
    spdlog::warn("the server says this agent is stopped ({}); registering again", claimed.status().message());
    // Through the claim thread's own connection; the id (read by the monitor) stays.
    auto again = claim_api_.register_agent(options_.name, launcher_.type(), options_.labels, options_.max_concurrent);
    if (!again) return again.status();
    if (*again != id_) {
      return Status(StatusCode::kConflict, "registering again gave agent id " + *again + ", not " + id_);
    }
    claimed = claim_api_.claim(id_, types, free_slots, wait);
  }
  if (!claimed) return claimed.status();

  auto crash = [&](const ClaimedRun& run, const std::string& why) {
    std::string msg = fmt::format("{} agent '{}' could not start the run: {}", launcher_.type(), options_.name, why);
    spdlog::warn("run {}: {}", run.id, msg);
    Status st = claim_api_.set_run_state(run.id, State::kCrashed, msg);
    if (!st.is_ok()) spdlog::warn("run {}: reporting Crashed failed: {}", run.id, st.to_string());
  };
  // First what to launch (cheap checks, in order), then the launches, several at once
  // when the launcher allows it (a Slurm agent's sbatch is a round trip to the
  // controller: a claim of 50 runs would otherwise wait for 50 of them in a row).
  struct Pending {
    ClaimedRun* run;
    LaunchSpec spec;
    std::optional<Result<std::unique_ptr<Launch>>> result;
  };
  std::vector<Pending> pending;
  pending.reserve(claimed->size());
  for (auto& run : *claimed) {
    auto rc = decode_run_config_basics(run.run_config_json);
    if (!rc) {
      crash(run, rc.status().message());
      continue;
    }
    // The server claims only runs of our types; this holds against an older server.
    if (!rc->type.empty() && std::find(types.begin(), types.end(), rc->type) == types.end()) {
      crash(run, fmt::format("the run config is of type '{}', which a {} agent does not launch (it launches {})",
                             rc->type, launcher_.type(), fmt::join(types, ", ")));
      continue;
    }
    LaunchSpec spec;
    spec.flow_run_id = run.id;
    spec.flow_id = run.flow_id;
    spec.flow_name = run.flow_name;
    spec.run_config_json = run.run_config_json.empty() ? "{}" : run.run_config_json;
    spec.env = run_environment(options_, *rc, run);
    pending.push_back(Pending{&run, std::move(spec), std::nullopt});
  }
  auto launch_one = [this](Pending& p) {
    p.result = launcher_.launch(p.spec);
    if (*p.result) spdlog::info("run {} ({}): launched as {}", p.run->id, p.run->flow_name, (**p.result)->describe());
  };
  const size_t parallel =
      std::min(pending.size(), static_cast<size_t>(std::max(1, launcher_.launch_parallelism())));
  if (parallel <= 1) {
    for (auto& p : pending) launch_one(p);
  } else {
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    threads.reserve(parallel);
    for (size_t t = 0; t < parallel; ++t) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < pending.size(); i = next++) launch_one(pending[i]);
      });
    }
    for (auto& th : threads) th.join();
  }
  int launched = 0;
  for (auto& p : pending) {
    ClaimedRun& run = *p.run;
    auto& launch = *p.result;
    if (!launch) {
      crash(run, launch.status().message());
      continue;
    }
    Infrastructure infra = (*launch)->infrastructure();
    std::string id = run.id;
    add_active(std::move(run), std::move(*launch), false);
    report_infrastructure(claim_api_, id, infra);
    ++launched;
  }
  return launched;
}

bool Agent::report_end(EndedRun& ended) {
  const std::string& run_id = ended.run_id;
  // Did the run report a final state itself?
  auto got = monitor_api_.get_run_state(run_id);
  if (!got) {
    bool later = retry_later(got.status());
    spdlog::warn("run {}: cannot read its state after its end{}: {}", run_id, later ? " (will retry)" : "",
                 got.status().to_string());
    return !later;
  }
  const State* state = &got->state;
  if (is_final(*state)) return true;
  if (*state == State::kSubmitted && !ended.exit.output_if_never_running.empty() && !ended.output_sent) {
    // It never reached Running: the infrastructure's own output says what went wrong.
    Status st = monitor_api_.send_logs(run_id, ended.exit.output_if_never_running);
    if (!st.is_ok()) spdlog::warn("run {}: sending the infrastructure's output failed: {}", run_id, st.to_string());
    ended.output_sent = true;
  }
  State to = State::kCrashed;
  std::string msg;
  if (ended.cancel_requested || *state == State::kCancelling) {
    to = State::kCancelled;
    // Who asked stays named in the final state (the Cancelling state's message).
    std::string cause = *state == State::kCancelling && !got->message.empty() ? " (" + got->message + ")" : "";
    msg = fmt::format("cancelled{}; {} stopped ({})", cause, ended.describe, ended.exit.reason);
  } else if (ended.adopted_gone) {
    msg = fmt::format("{} when the agent restarted, without reporting a final state", ended.exit.reason);
  } else {
    // Killed at its time limit while it ran: TimedOut (a run that never ran is Crashed).
    if (ended.exit.timed_out && *state == State::kRunning) to = State::kTimedOut;
    std::string what = launcher_.type() == "local" ? "process" : launcher_.type() + " infrastructure";
    // Killed for its memory: said first, and what the infrastructure said kept (an ECS
    // task's stop code and container reason, say).
    if (ended.exit.oom_killed)
      msg = fmt::format("the flow run's {} was killed for exceeding its memory limit (OOMKilled) without reporting a "
                        "final state ({}: {})",
                        what, ended.describe, ended.exit.reason);
    else
      msg = fmt::format("the flow run's {} {} without reporting a final state ({})", what, ended.exit.reason,
                        ended.describe);
  }
  Status st = monitor_api_.set_run_state(run_id, to, msg);
  if (st.is_ok()) {
    spdlog::info("run {}: {}: {}", run_id, state_name(to), msg);
    return true;
  }
  bool later = retry_later(st);
  spdlog::warn("run {}: reporting {} failed{}: {}", run_id, state_name(to), later ? " (will retry)" : "",
               st.to_string());
  return !later;
}

bool Agent::adopt_one(const UnfinishedRun& u, int& adopted) {
  const std::string& run_id = u.run.id;
  {
    std::lock_guard lock(mu_);
    if (active_.count(run_id)) return true;
  }
  if (!u.infrastructure) {
    // An earlier process of this agent may have started it and ended before recording
    // it: the launcher may still find it by its own means.
    LaunchSpec spec;
    spec.flow_run_id = run_id;
    spec.flow_id = u.run.flow_id;
    spec.flow_name = u.run.flow_name;
    spec.run_config_json = u.run.run_config_json.empty() ? "{}" : u.run.run_config_json;
    auto found = launcher_.find(spec);
    if (found) {
      Infrastructure infra = (*found)->infrastructure();
      spdlog::info("run {} ({}): found and adopted {}, which was never recorded ({})", run_id, u.run.flow_name,
                   (*found)->describe(), state_name(u.state));
      add_active(u.run, std::move(*found), false);
      report_infrastructure(monitor_api_, run_id, infra);
      ++adopted;
      return true;
    }
    if (retry_later(found.status())) {
      spdlog::warn("run {}: cannot search for its unrecorded infrastructure yet (will retry): {}", run_id,
                   found.status().to_string());
      return false;
    }
    if (u.state != State::kSubmitted) {
      // It reported Running itself, so something was started; with nothing recorded to
      // watch, the run's own heartbeats (the server's liveness check) tell whether it
      // still runs.
      spdlog::warn("run {}: {} with no infrastructure recorded; left to its own heartbeats", run_id,
                   state_name(u.state));
      return true;
    }
    // Claimed by an earlier process of this agent that ended before it recorded what
    // it started, and never reported Running: nothing to watch.
    EndedRun ended{run_id,
                   ExitInfo{.exit_code = -1,
                            .reason = "the agent's earlier process ended before it recorded the run's infrastructure; "
                                      "nothing of the run could be found"},
                   false, "", true};
    if (!report_end(ended)) {
      std::lock_guard lock(mu_);
      unreported_.push_back(std::move(ended));
    }
    return true;
  }
  LaunchSpec spec;
  spec.flow_run_id = run_id;
  spec.flow_id = u.run.flow_id;
  spec.flow_name = u.run.flow_name;
  spec.run_config_json = u.run.run_config_json.empty() ? "{}" : u.run.run_config_json;
  auto launch = launcher_.adopt(spec, *u.infrastructure);
  if (!launch) {
    const Status& st = launch.status();
    if (retry_later(st)) {
      spdlog::warn("run {}: cannot adopt {} {} yet (will retry): {}", run_id, u.infrastructure->kind,
                   u.infrastructure->id, st.to_string());
      return false;
    }
    EndedRun ended{run_id, ExitInfo{.exit_code = -1, .reason = st.message()}, u.state == State::kCancelling, "",
                   true};
    if (u.state == State::kCancelling) ended.describe = u.infrastructure->kind + " " + u.infrastructure->id;
    if (!report_end(ended)) {
      std::lock_guard lock(mu_);
      unreported_.push_back(std::move(ended));
    }
    return true;
  }
  spdlog::info("run {} ({}): adopted {} ({})", run_id, u.run.flow_name, (*launch)->describe(), state_name(u.state));
  add_active(u.run, std::move(*launch), false);
  ++adopted;
  return true;
}

Result<int> Agent::adopt_unfinished() {
  adopted_ = true;
  auto runs = monitor_api_.list_unfinished_runs(id_);
  if (!runs) return runs.status();
  int adopted = 0;
  for (const auto& u : *runs) {
    if (adopt_one(u, adopted)) continue;
    std::lock_guard lock(mu_);
    to_adopt_.push_back(u);
  }
  return adopted;
}

void Agent::start_stop(const std::string& run_id, bool cancel, const std::string& why) {
  Launch* launch;
  auto done = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(run_id);
    if (it == active_.end() || it->second.stop_done) return;
    it->second.stop_done = done;
    if (cancel) it->second.cancel_requested = true;
    launch = it->second.launch.get();
  }
  const std::string what = !cancel ? "the run reported its end" : why.empty() ? "cancel requested" : why;
  spdlog::info("run {}: {}; stopping {}", run_id, what, launch->describe());
  if (cancel) {
    // The run's log says who stopped it, whatever the infrastructure keeps of it.
    Status st = monitor_api_.send_logs(run_id, {fmt::format("[agent] {}; stopping {}", what, launch->describe())});
    if (!st.is_ok()) spdlog::debug("run {}: sending the cancel's log line failed: {}", run_id, st.to_string());
  }
  // The Launch stays in active_ (and alive) until `done` is set.
  auto work = [launch, done, cancel, why, grace = options_.stop_grace] {
    if (cancel) launch->cancel(grace, why);
    else launch->stop_lingering(grace);
    done->store(true);
  };
  if (options_.run_async) {
    options_.run_async(std::move(work));
  } else {
    std::lock_guard lock(mu_);
    stop_threads_.push_back(StopThread{std::thread(std::move(work)), done});
  }
}

void Agent::monitor_once(bool check_cancels) {
  std::vector<EndedRun> retry;
  std::vector<std::pair<std::string, Infrastructure>> infra;
  std::vector<UnfinishedRun> adopt;
  {
    std::lock_guard lock(mu_);
    retry.swap(unreported_);
    infra.swap(unreported_infra_);
    adopt.swap(to_adopt_);
  }
  for (auto& ended : retry) {
    if (report_end(ended)) continue;
    std::lock_guard lock(mu_);
    unreported_.push_back(std::move(ended));
  }
  for (const auto& [run_id, i] : infra) report_infrastructure(monitor_api_, run_id, i);
  int adopted = 0;
  for (auto& u : adopt) {
    if (adopt_one(u, adopted)) continue;
    std::lock_guard lock(mu_);
    to_adopt_.push_back(std::move(u));
  }

  // The launches to look at: every one not being stopped right now. (A finished stop
  // left its exit behind; the poll below picks it up.)
  struct Watched {
    std::string run_id;
    Launch* launch;
    bool cancel_requested;
    bool stopped;  // a stop of ours finished
  };
  std::vector<Watched> watched;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, a] : active_) {
      if (a.stop_done && !a.stop_done->load()) continue;
      watched.push_back({id, a.launch.get(), a.cancel_requested, a.stop_done != nullptr});
    }
  }
  // Threads of finished stops are joined here (at once: they are done).
  {
    std::vector<StopThread> finished;
    {
      std::lock_guard lock(mu_);
      auto mid = std::stable_partition(stop_threads_.begin(), stop_threads_.end(),
                                       [](const StopThread& t) { return !t.done->load(); });
      std::move(mid, stop_threads_.end(), std::back_inserter(finished));
      stop_threads_.erase(mid, stop_threads_.end());
    }
    for (auto& t : finished) t.thread.join();
  }
  for (const auto& w : watched) {
    auto out = w.launch->drain_output();
    if (out.empty()) continue;
    Status st = monitor_api_.send_logs(w.run_id, out);
    if (!st.is_ok()) spdlog::debug("run {}: sending output failed: {}", w.run_id, st.to_string());
  }
  std::vector<Launch*> launches;
  launches.reserve(watched.size());
  for (const auto& w : watched) launches.push_back(w.launch);
  std::vector<std::optional<ExitInfo>> exits = launcher_.poll_all(launches);
  exits.resize(watched.size());

  for (size_t i = 0; i < watched.size(); ++i) {
    const Watched& w = watched[i];
    if (!exits[i]) {
      if (w.stopped) {
        // Our stop returned but the infrastructure still runs: let the cancel check
        // try again.
        std::lock_guard lock(mu_);
        if (auto it = active_.find(w.run_id); it != active_.end()) it->second.stop_done.reset();
      }
      if (!check_cancels) continue;
      auto state = monitor_api_.get_run_state(w.run_id);
      if (!state) continue;
      if (state->state == State::kCancelling || state->state == State::kCancelled)
        start_stop(w.run_id, true, state->message);
      else if (is_final(state->state))
        start_stop(w.run_id, false);  // reported its end but lingers
      continue;
    }
    // The infrastructure is gone; its slot frees at once, its end is reported now or,
    // while the server cannot be reached, on a later pass.
    EndedRun ended{w.run_id, *exits[i], w.cancel_requested, w.launch->describe()};
    if (!report_end(ended)) {
      std::lock_guard lock(mu_);
      unreported_.push_back(std::move(ended));
    }
    {
      std::lock_guard lock(mu_);
      active_.erase(w.run_id);
    }
    slot_freed_.notify_all();
  }
}

Status Agent::heartbeat_once() { return monitor_api_.heartbeat(id_); }

Status Agent::run(const std::atomic<bool>& stop) {
  if (id_.empty()) {
    Status st = register_self();
    if (!st.is_ok()) return st;
  }
  if (!adopted_) {
    auto n = adopt_unfinished();
    if (!n) {
      if (is_auth_failure(n.status())) return n.status();
      spdlog::warn("cannot list this agent's unfinished runs to adopt them: {}", n.status().to_string());
    } else if (*n > 0) {
      spdlog::info("adopted {} unfinished run(s) of an earlier process of this agent", *n);
    }
  }
  auto done = [&] { return stop.load() || fatal_.load(); };
  const Millis poll = options_.monitor_interval.count() > 0 ? options_.monitor_interval : launcher_.poll_interval();
  std::thread monitor([&] {
    SteadyTime next_hb = clock_.steady_now();
    SteadyTime next_cancel_check = clock_.steady_now();
    while (!done()) {
      SteadyTime now = clock_.steady_now();
      if (now >= next_hb) {
        Status st = heartbeat_once();
        if (is_auth_failure(st)) {
          set_fatal(st);
          break;
        }
        if (!st.is_ok()) spdlog::warn("heartbeat failed: {}", st.to_string());
        next_hb = now + options_.heartbeat_interval;
      }
      bool check = now >= next_cancel_check;
      if (check) next_cancel_check = now + options_.cancel_check_interval;
      monitor_once(check);
      clock_.sleep_for(poll);
    }
  });
  Millis backoff{200};
  while (!done()) {
    {
      // At capacity: wait until the monitor frees a slot (or a short while, to notice stop).
      std::unique_lock lock(mu_);
      if (active_.size() >= static_cast<size_t>(options_.max_concurrent)) {
        slot_freed_.wait_for(lock, std::chrono::milliseconds(250));
        continue;
      }
    }
    auto r = claim_and_launch(options_.claim_wait);
    if (!r) {
      if (is_auth_failure(r.status())) {
        set_fatal(r.status());
        break;
      }
      spdlog::warn("claim failed: {}; retrying in {} ms", r.status().to_string(), backoff.count());
      clock_.sleep_for(backoff);
      backoff = std::min(backoff * 2, Millis(5000));
    } else {
      backoff = Millis(200);
    }
  }
  monitor.join();
  join_stop_threads();
  if (fatal_.load()) {
    std::lock_guard lock(mu_);
    return fatal_status_;
  }
  Status st = deregister_self();
  if (!st.is_ok()) spdlog::warn("deregistering agent {} failed: {}", id_, st.to_string());
  return Status::ok();
}

}  // namespace culvert::agent
