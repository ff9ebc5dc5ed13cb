// ServerReporter: a RunObserver that forwards a flow run's task-run states and log
// lines to the orchestration server in batches (POST /api/v1/task-runs/states and
// POST /api/v1/logs), from a background thread, so the engine's workers never wait on
// the network.
//
// Events are buffered under a mutex; the flusher thread sends whatever is buffered every
// `flush_interval` (or sooner when a batch is large). Task-run updates of one task run
// within a batch are coalesced to the latest (with the time it first went Running), and
// consecutive task runs of a mapped task that say the same thing go as one item with a
// map_count, which the server stores as one range. A failed send keeps the batch and retries
// on the next round when the server is unreachable or failing; a batch it refuses as
// invalid is dropped and counted. Requests carry at most `max_request_items` items.
// Logs beyond `max_buffered_logs` are dropped with a counted notice.
// flush() sends everything and reports the first error. Thread-safe.
#pragma once

#include <culvert/clock.hpp>
#include <culvert/observer.hpp>
#include <culvert/status.hpp>

#include <condition_variable>
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
  size_t max_buffered_logs = 200000;
  // close() keeps retrying the final flush this long while the server is unreachable.
  std::chrono::milliseconds close_wait{300000};
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
  };
  struct LogLine {
    std::string task;  // empty: run-level
    int map_index;
    LogLevel level;
    std::string message;
    SysTime timestamp;
  };
  Status send_locked_batch(std::vector<TaskUpdate>& tasks, std::vector<LogLine>& logs);
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
  std::thread thread_;
};

}  // namespace culvert::runtime
