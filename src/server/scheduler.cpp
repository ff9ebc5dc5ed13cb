#include "server/scheduler.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/timefmt.hpp"
#include "store/store.hpp"

namespace culvert::server {
namespace {

// Creates one scheduled run; returns it (existing when the key was already used).
Result<store::FlowRun> create_scheduled_run(store::Store& st, const store::Flow& flow, const Schedule& schedule,
                                            SysTime fire, const char* why, RunEvents* events, SysTime now) {
  store::NewFlowRun spec;
  spec.flow_id = flow.id;
  spec.parameters_json = schedule.parameters_json();
  spec.idempotency_key = schedule_run_key(flow.id, fire);
  spec.scheduled_start_time = fire;
  spec.auto_scheduled = true;
  spec.state_message = std::string(why) + " for " + format_rfc3339(fire);
  auto r = st.create_flow_run(spec);
  if (!r) return r.status();
  if (r->second && events) {
    if (fire <= now) events->run_due(r->first.labels);
    else events->run_due_at(fire);
  }
  return r->first;
}

}  // namespace

SchedulerService::SchedulerService(Clock& clock, SchedulerOptions options, RunEvents& events)
    : clock_(clock), options_(options), events_(events) {}

void SchedulerService::run_once(store::Store& st) {
  last_created_ = 0;
  auto flows = st.list_scheduled_flows();
  if (!flows) {
    spdlog::warn("scheduler: cannot list scheduled flows: {}", flows.status().to_string());
    return;
  }
  const SysTime now = clock_.now();
  for (const auto& flow : *flows) {
    if (!flow.schedule_json) continue;
    auto schedule = Schedule::from_json_text(*flow.schedule_json);
    if (!schedule) {
      spdlog::warn("scheduler: flow {} ({}): bad schedule: {}", flow.name, flow.id, schedule.status().message());
      continue;
    }
    auto latest = st.latest_auto_scheduled_start(flow.id);
    if (!latest) {
      spdlog::warn("scheduler: flow {}: {}", flow.name, latest.status().to_string());
      continue;
    }
    std::optional<SysTime> cursor = *latest;
    if (!cursor && flow.version > 1) {
      // A new version continues where the versions before it stopped.
      auto versions = st.list_flows(flow.project_id, false);
      if (versions) {
        for (const auto& v : *versions) {
          if (v.name != flow.name || v.id == flow.id) continue;
          auto l = st.latest_auto_scheduled_start(v.id);
          if (l && *l && (!cursor || **l > *cursor)) cursor = **l;
        }
      }
    }
    // Runs already created ahead of now count against max_ahead, so passes keep a
    // steady window of upcoming runs instead of adding max_ahead more each time.
    PlanOptions popts = options_.plan;
    if (cursor && *cursor >= now - popts.grace) {
      size_t ahead = schedule->fire_times(now - popts.grace, *cursor + std::chrono::seconds(1),
                                          popts.max_ahead + 1).size();
      if (ahead >= popts.max_ahead) continue;
      popts.max_ahead -= ahead;
    }
    Plan plan = plan_runs(*schedule, cursor, now, popts);
    if (plan.skipped_missed)
      spdlog::info("scheduler: flow {}: missed fire times skipped (catch-up policy {})", flow.name,
                   catchup_name(schedule->catchup()));
    for (SysTime fire : plan.fire_times) {
      auto run = create_scheduled_run(st, flow, *schedule, fire, "scheduled", &events_, now);
      if (!run) {
        spdlog::warn("scheduler: flow {}: cannot create the run for {}: {}", flow.name, format_rfc3339(fire),
                     run.status().to_string());
        break;
      }
      ++last_created_;
    }
  }
  if (last_created_ > 0) spdlog::info("scheduler: {} scheduled run(s) created or confirmed", last_created_);
}

}  // namespace culvert::server
