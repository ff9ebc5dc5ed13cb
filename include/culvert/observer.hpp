// Run events: every task-run state change and every log line of a flow run.
//
// The executor reports to RunObserver objects given in RunOptions. The local run
// summary is built from these events, and the orchestration runtime forwards the same
// events to the server. Observers are called from worker threads, concurrently for
// different task runs; events of one task run arrive in order. The string_views in an
// event are valid only during the call. An observer must not block for long: it holds
// up the worker that reports.
#pragma once

#include <cstdint>
#include <string_view>

#include <culvert/clock.hpp>
#include <culvert/state.hpp>

namespace culvert {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
// "DEBUG", "INFO", "WARNING", "ERROR".
const char* log_level_name(LogLevel level);

struct FlowRunEvent {
  std::string_view flow;
  std::string_view flow_run_id;
  State state;
  std::string_view message;
  SysTime timestamp;
};

struct TaskRunEvent {
  uint32_t task_index;   // position of the task in the flow (definition order)
  std::string_view task;
  int map_index;         // -1 for an unmapped task run
  State state;
  int attempt;           // 1 for the first run; 0 when the task never started
  std::string_view message;
  SysTime timestamp;
  // Retrying: when the next attempt is due to start (timestamp + the retry delay).
  // Other states: the epoch (no next attempt).
  SysTime next_start{};
};

struct LogEvent {
  uint32_t task_index;
  std::string_view task;
  int map_index;
  LogLevel level;
  std::string_view message;
  SysTime timestamp;
};

// A mapped task was expanded into `count` task runs (map_index 0..count-1). Reported
// before any event of those runs.
struct MapEvent {
  uint32_t task_index;
  std::string_view task;
  int count;
};

// Flow-run facts reported once, before any other event.
struct RunStartEvent {
  std::string_view flow;
  std::string_view flow_run_id;
  uint32_t task_count;
  SysTime timestamp;
};

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void on_run_start(const RunStartEvent&) {}
  virtual void on_flow_run(const FlowRunEvent&) {}
  virtual void on_task_run(const TaskRunEvent&) {}
  virtual void on_task_mapped(const MapEvent&) {}
  virtual void on_log(const LogEvent&) {}
};

}  // namespace culvert
