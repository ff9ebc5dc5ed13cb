#include "agent/agent.hpp"

#include <thread>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace culvert::agent {

Agent::Agent(AgentOptions options, AgentApi& claim_api, AgentApi& monitor_api, Launcher& launcher,
             Clock& clock)
    : options_(std::move(options)),
      claim_api_(claim_api),
      monitor_api_(monitor_api),
      launcher_(launcher),
      clock_(clock) {}

Agent::~Agent() = default;

Status Agent::register_self() {
  auto id = claim_api_.register_agent(options_.name, launcher_.type(), options_.labels);
  if (!id) return id.status();
  id_ = *id;
  return Status::ok();
}

size_t Agent::active_runs() const {
  std::lock_guard lock(mu_);
  return active_.size();
}

Result<int> Agent::claim_and_launch(Millis wait) {
  int free_slots = options_.max_concurrent - static_cast<int>(active_runs());
  if (free_slots <= 0) return 0;
  auto claimed = claim_api_.claim(id_, free_slots, wait);
  if (!claimed) return claimed.status();
  int launched = 0;
  for (auto& run : *claimed) {
    LaunchSpec spec;
    spec.flow_run_id = run.id;
    spec.flow_name = run.flow_name;
    spec.command = options_.command;
    if (options_.command_for)
      if (auto direct = options_.command_for(run); !direct.empty()) spec.command = std::move(direct);
    spec.run_config_json = run.run_config_json.empty() ? "{}" : run.run_config_json;
    spec.env = options_.env;
    spec.env["CULVERT_API_URL"] = options_.api_url;
    spec.env["CULVERT_API_TOKEN"] = run.token;
    spec.env["CULVERT_FLOW_RUN_ID"] = run.id;
    auto launch = launcher_.launch(spec);
    if (!launch) {
      std::string msg = fmt::format("{} agent '{}' could not start the run: {}", launcher_.type(),
                                    options_.name, launch.status().message());
      spdlog::warn("run {}: {}", run.id, msg);
      Status st = claim_api_.set_run_state(run.id, State::kCrashed, msg);
      if (!st.is_ok()) spdlog::warn("run {}: reporting Crashed failed: {}", run.id, st.to_string());
      continue;
    }
    spdlog::info("run {} ({}): launched `{}` as {}", run.id, run.flow_name, fmt::join(spec.command, " "),
                 (*launch)->describe());
    std::string id = run.id;
    std::lock_guard lock(mu_);
    active_.emplace(std::move(id), Active{std::move(run), std::move(*launch), false});
    ++launched;
  }
  return launched;
}

std::vector<std::string> Agent::claimed_ids() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  return ids;
}

bool Agent::report_end(const EndedRun& ended) {
  const std::string& run_id = ended.run_id;
  // Did the run report a final state itself?
  auto state = monitor_api_.get_run_state(run_id);
  if (!state) {
    bool later = state.status().code() == StatusCode::kUnavailable || state.status().code() == StatusCode::kTimeout;
    spdlog::warn("run {}: cannot read its state after its end{}: {}", run_id, later ? " (will retry)" : "",
                 state.status().to_string());
    return !later;
  }
  if (is_final(*state)) return true;
  State to = State::kCrashed;
  std::string msg;
  if (ended.cancel_requested || *state == State::kCancelling) {
    to = State::kCancelled;
    msg = fmt::format("cancelled; {} stopped ({})", ended.describe, ended.exit.reason);
  } else {
    msg = fmt::format("the flow run's {} {} without reporting a final state ({})",
                      launcher_.type() == "local" ? "process" : launcher_.type() + " infrastructure",
                      ended.exit.oom_killed ? "was killed for exceeding its memory limit (OOMKilled)"
                                            : ended.exit.reason,
                      ended.describe);
  }
  Status st = monitor_api_.set_run_state(run_id, to, msg);
  if (st.is_ok()) {
    spdlog::info("run {}: {}: {}", run_id, state_name(to), msg);
    return true;
  }
  bool later = st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kTimeout;
  spdlog::warn("run {}: reporting {} failed{}: {}", run_id, state_name(to), later ? " (will retry)" : "",
               st.to_string());
  return !later;
}

size_t Agent::pending_reports() const {
  std::lock_guard lock(mu_);
  return unreported_.size();
}

void Agent::monitor_once(bool check_cancels) {
  std::vector<EndedRun> retry;
  {
    std::lock_guard lock(mu_);
    retry.swap(unreported_);
  }
  for (auto& ended : retry) {
    if (report_end(ended)) continue;
    std::lock_guard lock(mu_);
    unreported_.push_back(std::move(ended));
  }
  for (const auto& run_id : claimed_ids()) {
    Launch* launch;
    {
      std::lock_guard lock(mu_);
      auto it = active_.find(run_id);
      if (it == active_.end()) continue;
      launch = it->second.launch.get();
    }
    auto out = launch->drain_output();
    if (!out.empty()) {
      Status st = monitor_api_.send_logs(run_id, out);
      if (!st.is_ok()) spdlog::debug("run {}: sending output failed: {}", run_id, st.to_string());
    }
    auto exit = launch->poll();
    bool cancel_requested;
    {
      std::lock_guard lock(mu_);
      cancel_requested = active_[run_id].cancel_requested;
    }
    if (!exit && check_cancels) {
      auto state = monitor_api_.get_run_state(run_id);
      if (state && (*state == State::kCancelling || *state == State::kCancelled)) {
        spdlog::info("run {}: cancel requested; stopping {}", run_id, launch->describe());
        launch->stop(options_.stop_grace);
        cancel_requested = true;
        exit = launch->poll();
      } else if (state && is_final(*state)) {
        // The run reported its end but the infrastructure lingers: give it the grace
        // period to exit on its own, then stop it.
        launch->stop(options_.stop_grace);
        exit = launch->poll();
      }
    }
    if (!exit) continue;
    // The infrastructure is gone; its slot frees at once, its end is reported now or,
    // while the server cannot be reached, on a later pass.
    EndedRun ended{run_id, *exit, cancel_requested, launch->describe()};
    if (!report_end(ended)) {
      std::lock_guard lock(mu_);
      unreported_.push_back(std::move(ended));
    }
    {
      std::lock_guard lock(mu_);
      active_.erase(run_id);
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
  const Millis poll = options_.monitor_interval.count() > 0 ? options_.monitor_interval : launcher_.poll_interval();
  std::thread monitor([&] {
    SteadyTime next_hb = clock_.steady_now();
    SteadyTime next_cancel_check = clock_.steady_now();
    while (!stop.load()) {
      SteadyTime now = clock_.steady_now();
      if (now >= next_hb) {
        Status st = heartbeat_once();
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
  while (!stop.load()) {
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
      spdlog::warn("claim failed: {}; retrying in {} ms", r.status().to_string(), backoff.count());
      clock_.sleep_for(backoff);
      backoff = std::min(backoff * 2, Millis(5000));
    } else {
      backoff = Millis(200);
    }
  }
  monitor.join();
  return Status::ok();
}

}  // namespace culvert::agent
