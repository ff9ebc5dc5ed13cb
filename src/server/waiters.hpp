// Parked long-poll requests (claims waiting for work, log reads waiting for lines,
// parent runs waiting for their child runs),
// held without a thread: a waiter is a deadline plus a callback.
//
// A waiter is fired exactly once, and removed, when
//  - something it may want happened in this process (notify_runs for claims whose
//    agent labels cover the run's labels, notify_logs for log readers of that run,
//    notify_children for the waits on that run's children),
//  - its periodic re-check is due (`recheck_interval`; this is how work created by
//    another server replica on the same database is found), or the earliest due time
//    noted with notify_due_at() has passed,
//  - its deadline passed (timed_out = true), or fire_all() is called at shutdown.
// The callback then re-queries the store and answers or parks again.
//
// Lost wake-ups are prevented with generation counters: read the generation before
// querying the store and pass it to park_*(); if a notification came in between, the
// waiter fires at once.
//
// Callbacks run on the thread that triggered them (a notifier or the ticker) without
// any lock held; they must not block (post the re-query to the database pool).
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <culvert/clock.hpp>

namespace culvert::server {

class Waiters {
 public:
  using Fire = std::function<void(bool timed_out)>;

  Waiters(Clock& clock, Millis recheck_interval);

  uint64_t claim_generation() const;
  uint64_t log_generation() const;
  uint64_t children_generation() const;

  void park_claim(std::vector<std::string> agent_labels, SteadyTime deadline, uint64_t seen_generation,
                  Fire fire);
  void park_logs(std::string flow_run_id, SteadyTime deadline, uint64_t seen_generation, Fire fire);
  // A parent run waiting for its child runs to end (GET .../children with wait_ms).
  void park_children(std::string parent_run_id, SteadyTime deadline, uint64_t seen_generation, Fire fire);

  // Runs with these labels became due (created, rescheduled, returned to Pending).
  void notify_runs(const std::vector<std::string>& run_labels);
  // A run becomes due at `t` (in the future): wake claimers when it passes.
  void notify_due_at(SysTime t);
  // Log lines were appended to the run (or it reached a final state).
  void notify_logs(const std::string& flow_run_id);
  // A child run of the run changed its state (or the run itself did).
  void notify_children(const std::string& parent_run_id);

  // Fires waiters whose deadline or re-check time passed. Called periodically.
  void tick();
  // Fires every waiter with timed_out = true and makes later park_*() calls fire at
  // once (shutdown).
  void fire_all();
  size_t parked() const;

 private:
  enum class Kind { kClaim, kLogs, kChildren };
  struct Waiter {
    Kind kind;
    std::vector<std::string> labels;  // claims
    std::string run_id;               // logs; children: the parent
    SteadyTime deadline;
    SteadyTime recheck;
    Fire fire;
  };
  void park(Waiter w, uint64_t seen_generation);

  Clock& clock_;
  Millis recheck_interval_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  bool closed_ = false;
  uint64_t claim_gen_ = 0;
  uint64_t log_gen_ = 0;
  uint64_t children_gen_ = 0;
  std::optional<SysTime> next_due_;
  std::map<uint64_t, Waiter> waiters_;
};

}  // namespace culvert::server
