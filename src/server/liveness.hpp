// Liveness of flow runs (docs/CONCEPTS.md), a BackgroundService run on the server's timer.
//
// Each pass:
//  - a Running run whose heartbeat is older than `heartbeat_timeout` (default 3 × 10 s)
//    becomes Crashed with a message saying when it was last heard from; if its flow
//    allows it (max_run_retries > the retries already used), it is then rescheduled:
//    forced back to Scheduled, due now, for a new attempt. A Cancelling run that stops
//    heartbeating becomes Cancelled (its infrastructure is gone, as requested).
//  - a Submitted run not Running within `submitted_deadline` (default 60 s) returns to
//    Pending, so another claim can take it; except while the agent that claimed it has
//    reported its infrastructure and still heartbeats (within `heartbeat_timeout`): that
//    agent is still starting it (a Fargate task takes 30-90 s to reach RUNNING) and its
//    own start timeout (the ECS agent's --task-start-timeout) decides.
// Every change is a compare-and-set on the run's version, so a run that moved on in the
// meantime (or that another server replica handled) is left alone.
//
// After the service starts (a server start or restart), it judges heartbeats only once
// `heartbeat_timeout` has passed, and submissions once `submitted_deadline` has: while
// the server was down, runs could not heartbeat and agents could not report, so an old
// heartbeat says nothing about them until they have had that long to reach it again.
//
// Borrows the clock, events and metrics. run_once() is called by one thread at a time.
#pragma once

#include <optional>

#include <culvert/clock.hpp>

#include "server/service.hpp"
#include "store/store.hpp"

namespace culvert::server {

class Metrics;

struct LivenessOptions {
  Millis heartbeat_timeout{30000};   // Default: 3 missed heartbeats of 10 s
  Millis submitted_deadline{60000};  // Default: 60 s
  Millis interval{2000};             // how often a pass runs. Default: 2 s
  int batch = 500;                   // runs handled per pass and kind
};

struct LivenessCounts {
  int crashed = 0;
  int rescheduled = 0;
  int cancelled = 0;
  int returned_to_pending = 0;
};

// After `crashed` has become Crashed (found silent by liveness, or reported by its
// agent): when its flow allows run retries it has not used up (`max_run_retries`),
// forces it back to Scheduled, due `now`, for a new attempt. Returns the rescheduled
// run; nullopt when not allowed, or when the run moved on meanwhile.
std::optional<store::FlowRun> reschedule_after_crash(store::Store& store, const store::FlowRun& crashed, SysTime now);

class LivenessService final : public BackgroundService {
 public:
  // `metrics` may be null.
  LivenessService(Clock& clock, LivenessOptions options, RunEvents& events, Metrics* metrics);

  std::string name() const override { return "liveness"; }
  Millis interval() const override { return options_.interval; }
  void run_once(store::Store& store) override { (void)run_pass(store); }
  // One pass; returns what it changed (for tests and logs).
  LivenessCounts run_pass(store::Store& store);

 private:
  Clock& clock_;
  LivenessOptions options_;
  RunEvents& events_;
  Metrics* metrics_;
  SysTime started_;  // judgments wait one timeout after this (see above)
};

}  // namespace culvert::server
