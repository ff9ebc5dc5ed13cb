// The schedule service (docs/SCHEDULES.md), a BackgroundService run on the server's timer.
//
// Each pass, for every flow whose latest version has an active schedule, it plans the
// runs to create (core/schedule.hpp: upcoming fire times within the horizon, missed ones
// by the flow's catch-up policy) and creates them with the stable idempotency key
// "sched:<flow_id>:<fire time>", so a restart or a second replica never doubles a run.
// The cursor is the latest fire time a run was created for, read from the store, so the
// service keeps no state of its own. A newly registered version continues after the
// latest fire time of the versions before it.
//
// (`culvert flow backfill` creates past runs with the same keys through the API.)
// Thread-safety: run_once() is called by one thread at a time (the server's timer).
#pragma once

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include <string>
#include <vector>

#include "core/schedule.hpp"
#include "server/service.hpp"

namespace culvert::server {

struct SchedulerOptions {
  Millis interval{5000};  // how often the service runs
  PlanOptions plan;       // horizon, max runs ahead, grace, catch-up batch
};

class SchedulerService final : public BackgroundService {
 public:
  // `clock` and `events` are not owned and must outlive the service.
  SchedulerService(Clock& clock, SchedulerOptions options, RunEvents& events);
  std::string name() const override { return "scheduler"; }
  Millis interval() const override { return options_.interval; }
  void run_once(store::Store& store) override;

  // Runs created by the last pass (for tests and metrics).
  size_t last_created() const { return last_created_; }

 private:
  Clock& clock_;
  SchedulerOptions options_;
  RunEvents& events_;
  size_t last_created_ = 0;
};

}  // namespace culvert::server
