// Log retention, a BackgroundService: deletes the log lines of flow runs that ended
// more than `retention` ago (the runs, their states and task runs stay). Off unless the
// server is started with --log-retention.
//
// Walks ended runs in end-time order from a cursor kept in memory, in batches of one
// transaction each (Store::prune_logs), so a pass costs what is new since the last
// one; after a restart the first pass walks every ended run once (runs without logs
// cost one index probe each). Borrows the clock. run_once() is called by one thread.
#pragma once

#include <culvert/clock.hpp>

#include "server/service.hpp"
#include "store/store.hpp"

namespace culvert::server {

struct RetentionOptions {
  Millis retention{0};          // 0: keep logs forever (the service is not started)
  Millis interval{600000};      // how often a pass runs. Default: 10 min
  int batch_runs = 500;         // runs per transaction
  int max_batches = 1000;       // per pass; the rest waits for the next pass
};

class RetentionService final : public BackgroundService {
 public:
  RetentionService(Clock& clock, RetentionOptions options);
  std::string name() const override { return "log-retention"; }
  Millis interval() const override { return options_.interval; }
  void run_once(store::Store& store) override { (void)run_pass(store); }
  // One pass; returns the number of log lines deleted.
  int64_t run_pass(store::Store& store);

 private:
  Clock& clock_;
  RetentionOptions options_;
  store::Store::PruneCursor cursor_;  // runs up to here are done
};

}  // namespace culvert::server
