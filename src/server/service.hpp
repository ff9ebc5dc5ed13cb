// Background services run by the server on its timer: liveness (liveness.hpp) and,
// later, the schedule service. The server calls run_once() every interval() on a
// database-pool thread, never concurrently with itself, with that thread's store.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <culvert/clock.hpp>

namespace culvert::store {
class Store;
}

namespace culvert::server {

// What services tell the rest of the server about runs they changed, so that parked
// claims wake at once. Implemented by the server (forwarding to Waiters). Thread-safe.
class RunEvents {
 public:
  virtual ~RunEvents() = default;
  // A run with these labels is due now (created, rescheduled, returned to Pending).
  virtual void run_due(const std::vector<std::string>& labels) = 0;
  // A run becomes due at `t` (in the future).
  virtual void run_due_at(SysTime t) = 0;
  // A run's state changed (the server drops cached run tokens and wakes log readers).
  virtual void run_changed(const std::string& run_id, bool final) = 0;
  // A child run of `parent_run_id` changed its state (the server wakes the parent's
  // waits on its children). Default: nothing.
  virtual void child_changed(const std::string& parent_run_id) { (void)parent_run_id; }
};

class BackgroundService {
 public:
  virtual ~BackgroundService() = default;
  virtual std::string name() const = 0;
  // How often run_once() is called.
  virtual Millis interval() const = 0;
  // One pass. Blocking store calls are fine here; errors are logged by the service.
  virtual void run_once(store::Store& store) = 0;
};

}  // namespace culvert::server
