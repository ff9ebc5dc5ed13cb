// ServerReporter: a RunObserver that forwards a flow run's task-run states and log
// lines to the orchestration server in batches (POST /api/v1/task-runs/states and
// POST /api/v1/logs), from a background thread, so the engine's workers never wait on
// the network.
//
// Events are buffered under a mutex; the flusher thread sends whatever is buffered every
// `flush_interval` (or sooner when a batch is large). Task-run updates of one task run
// within a batch are coalesced to the latest (with the time it first went Running; a
// Retrying update is never coalesced away, it goes ahead of the later ones), and
// consecutive task runs of a mapped task that say the same thing go as one item with a
// map_count, which the server stores as one range. A failed send keeps the batch and retries
// on the next round when the server is unreachable or failing; a batch it refuses as
// invalid is dropped and counted. Requests carry at most `max_request_items` items and
// `max_request_bytes` of log messages; messages are cut to 16 KiB as the server would.
// Logs beyond `max_buffered_logs` are dropped with a counted notice. When the server
// refuses the run's log lines for good (413: the run reached the server's per-run log
// quota), the reporter says so once (options.warn), stops sending logs and counts the
// lines it drops from then on; task-run states go on, and the run finishes as usual.
// flush() sends everything and reports the first error. Thread-safe.
#pragma once

#include <culvert/clock.hpp>
#include <culvert/observer.hpp>
#include <culvert/status.hpp>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.hpp"

namespace culvert::client {
class ApiClient;
}

namespace culvert::runtime {

struct ReporterOptions {
  std::chrono::milliseconds flush_interval{200};
  size_t batch_size = 2000;            // a batch is sent early once this many wait
  size_t max_request_items = 1000;     // items per request (keeps bodies under the limit)
  size_t max_request_bytes = 512 * 1024;  // log message bytes per request (under the body limit)
  size_t max_buffered_logs = 200000;
  // Where the one warning about refused log lines goes. Default: standard error.
  std::function<void(const std::string&)> warn;
  // close() keeps retrying the final flush this long while the server is unreachable.
  std::chrono::milliseconds close_wait{300000};
  // The flow run's attempt (its run_count once Running), sent with every task-run item
  // and log line as run_attempt. 0: not sent (the server takes the run's current one).
  int run_attempt = 0;
  // The time close() waits on between its retries. Default: the system clock.
  // REQUIRES: outlives the reporter.
  Clock* clock = nullptr;
};

class ServerReporter final : public RunObserver {
 public:
  ServerReporter(client::ClientOptions client, std::string flow_run_id, ReporterOptions options = {});
  ~ServerReporter() override;

  void on_task_run(const TaskRunEvent& ev) override;
  void on_log(const LogEvent& ev) override;

  // Adds a run-level log line (no task).
  void log(LogLevel level, std::string message);
  // Sends everything buffered so far; blocks until sent or failed.
  Status flush();
  // Stops the background thread after a final flush.
  Status close();

  // Log lines dropped (buffer full, or refused by the server as invalid).
  size_t dropped_logs() const;
  // Task-run updates the server refused as invalid (not retried).
  size_t dropped_task_updates() const;
  // Whether the server refused the run's log lines for good (its log quota).
  bool logs_refused() const;
  std::string last_error() const;

 private:
  struct TaskUpdate {
    uint32_t task_index;  // the task's position in the flow: one per task name
    std::string task;
    int map_index;
    State state;
    int attempt;
    std::string message;
    SysTime timestamp;
    std::optional<SysTime> start;  // when it first went Running, once known to a batch
    std::optional<SysTime> next_start;  // Retrying: when the next attempt starts
  };
  struct LogLine {
    std::string task;  // empty: run-level
    int map_index;
    LogLevel level;
    std::string message;
    SysTime timestamp;
  };
  Status send_locked_batch(std::vector<TaskUpdate>& tasks, std::vector<LogLine>& logs);
  // Sends coalesced updates (one per task run, in task and map-index order) as items;
  // on a retryable failure, moves what was not applied into `unsent`.
  Status send_task_items(std::vector<TaskUpdate>& pending, std::vector<TaskUpdate>& unsent);
  void loop();

  std::string flow_run_id_;
  ReporterOptions options_;
  std::unique_ptr<client::ApiClient> api_;  // used under send_mu_ only
  // A second connection, so that a long batch has two requests in flight: the next
  // chunk is encoded and sent while the server writes the previous one.
  std::unique_ptr<client::ApiClient> api2_;  // used under send_mu_ only
  std::mutex send_mu_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TaskUpdate> tasks_;  // guarded by mu_
  std::vector<LogLine> logs_;      // guarded by mu_
  size_t dropped_ = 0;             // guarded by mu_
  size_t dropped_tasks_ = 0;       // guarded by mu_
  std::string last_error_;         // guarded by mu_
  bool closing_ = false;           // guarded by mu_
  bool logs_refused_ = false;      // guarded by mu_
  std::thread thread_;
};

}  // namespace culvert::runtime
