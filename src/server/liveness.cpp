#include "server/liveness.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/timefmt.hpp"
#include "server/metrics.hpp"
#include "store/store.hpp"

namespace culvert::server {
namespace {

std::string seconds_text(Millis d) {
  auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace

std::optional<store::FlowRun> reschedule_after_crash(store::Store& store, const store::FlowRun& crashed, SysTime now) {
  auto flow = store.get_flow(crashed.flow_id);
  if (!flow) {
    spdlog::warn("flow of crashed run {}: {}", crashed.id, flow.status().to_string());
    return std::nullopt;
  }
  int retries_used = std::max(0, crashed.run_count - 1);
  if (retries_used >= flow->max_run_retries) return std::nullopt;
  store::SetFlowRunState again;
  again.run_id = crashed.id;
  again.expected_version = crashed.version;
  again.state = State::kScheduled;
  again.forced = true;
  again.now = now;
  again.scheduled_start_time = now;
  again.message = "rescheduled after a crash: attempt " + std::to_string(retries_used + 2) + " of " +
                  std::to_string(flow->max_run_retries + 1) + " (max_run_retries " +
                  std::to_string(flow->max_run_retries) + ")";
  auto r = store.set_flow_run_state(again);
  if (!r) {
    if (r.status().code() != StatusCode::kConflict)
      spdlog::warn("rescheduling crashed run {}: {}", crashed.id, r.status().to_string());
    return std::nullopt;
  }
  spdlog::info("flow run {} rescheduled ({})", crashed.id, again.message);
  return *r;
}

LivenessService::LivenessService(Clock& clock, LivenessOptions options, RunEvents& events, Metrics* metrics)
    : clock_(clock), options_(options), events_(events), metrics_(metrics), started_(clock.now()) {}

LivenessCounts LivenessService::run_pass(store::Store& store) {
  LivenessCounts counts;
  SysTime now = clock_.now();

  const bool judge_heartbeats = now - started_ >= options_.heartbeat_timeout;
  const bool judge_submissions = now - started_ >= options_.submitted_deadline;
  auto stale = judge_heartbeats ? store.find_stale_running_runs(now - options_.heartbeat_timeout, options_.batch)
                                : Result<std::vector<store::FlowRun>>(std::vector<store::FlowRun>{});
  if (!stale) {
    spdlog::warn("liveness: cannot list stale running runs: {}", stale.status().to_string());
  } else {
    for (const auto& run : *stale) {
      SysTime last = run.heartbeat_at ? *run.heartbeat_at : (run.start_time ? *run.start_time : run.state_changed_at);
      store::SetFlowRunState change;
      change.run_id = run.id;
      change.expected_version = run.version;
      change.now = now;
      bool cancelling = run.state == State::kCancelling;
      change.state = cancelling ? State::kCancelled : State::kCrashed;
      change.message = std::string(cancelling ? "cancelled: " : "crashed: ") + "no heartbeat for more than " +
                       seconds_text(options_.heartbeat_timeout) + " (last at " + format_rfc3339(last) +
                       "); the flow run's process or infrastructure was lost";
      auto r = store.set_flow_run_state(change);
      if (!r) {
        if (r.status().code() != StatusCode::kConflict)
          spdlog::warn("liveness: run {}: {}", run.id, r.status().to_string());
        continue;  // moved on meanwhile (or another replica got there first)
      }
      events_.run_changed(run.id, true);
      if (run.child) events_.child_changed(run.child->parent_run_id);
      if (cancelling) {
        ++counts.cancelled;
        spdlog::info("liveness: flow run {} Cancelling -> Cancelled (no heartbeat)", run.id);
        continue;
      }
      ++counts.crashed;
      spdlog::warn("liveness: flow run {} Running -> Crashed (no heartbeat since {})", run.id, format_rfc3339(last));
      auto again = reschedule_after_crash(store, *r, now);
      if (!again) continue;
      ++counts.rescheduled;
      events_.run_changed(run.id, false);
      events_.run_due(again->labels);
    }
  }

  auto submitted = judge_submissions
                       ? store.find_stale_submitted_runs(now - options_.submitted_deadline, options_.batch,
                                                         now - options_.heartbeat_timeout)
                       : Result<std::vector<store::FlowRun>>(std::vector<store::FlowRun>{});
  if (!submitted) {
    spdlog::warn("liveness: cannot list stale submitted runs: {}", submitted.status().to_string());
  } else {
    for (const auto& run : *submitted) {
      store::SetFlowRunState change;
      change.run_id = run.id;
      change.expected_version = run.version;
      change.now = now;
      change.state = State::kPending;
      change.message = "not Running within " + seconds_text(options_.submitted_deadline) + " of its submission to agent " +
                       run.agent_id.value_or("?") + "; returned to Pending";
      auto r = store.set_flow_run_state(change);
      if (!r) {
        if (r.status().code() != StatusCode::kConflict)
          spdlog::warn("liveness: run {}: {}", run.id, r.status().to_string());
        continue;
      }
      ++counts.returned_to_pending;
      spdlog::warn("liveness: flow run {} Submitted -> Pending ({})", run.id, change.message);
      events_.run_changed(run.id, false);
      events_.run_due(r->labels);
    }
  }
  if (metrics_) metrics_->add_liveness(counts.crashed, counts.rescheduled, counts.returned_to_pending);
  return counts;
}

}  // namespace culvert::server
