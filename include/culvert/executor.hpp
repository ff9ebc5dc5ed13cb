// Running a flow: the Executor.
//
//   culvert::Executor executor(2);                 // a work-stealing pool of 2 threads
//   auto result = executor.run(flow, {.parameters = {{"rows", "10"}}});
//   if (!result) ...;                              // bad parameters or an invalid flow
//   result->state;                                 // the flow run's final state
//
// The executor owns its worker threads; one run at a time per Executor (run() calls
// from several threads are serialized). Time, randomness, storage and processes come
// through RunOptions so that tests use ManualClock, SeededRandom and fakes.
#pragma once

#include <any>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <culvert/cancel.hpp>
#include <culvert/clock.hpp>
#include <culvert/distribute.hpp>
#include <culvert/flow.hpp>
#include <culvert/observer.hpp>
#include <culvert/process.hpp>
#include <culvert/random.hpp>
#include <culvert/state.hpp>
#include <culvert/status.hpp>
#include <culvert/storage.hpp>

namespace culvert {

namespace detail { class Pool; }

using StoreOpener = std::function<Result<std::unique_ptr<ObjectStore>>(std::string_view uri)>;

struct RunOptions {
  // Parameter values as text, parsed by each parameter's type.
  std::map<std::string, std::string> parameters;
  // Default: a new UUID.
  std::string flow_run_id;
  // Default: the system clock. REQUIRES: outlives the run.
  Clock* clock = nullptr;
  // Jitter source. Default: a cryptographic generator. Used under a lock.
  Random* random = nullptr;
  // Receive every event; called concurrently from workers (see observer.hpp).
  std::vector<RunObserver*> observers;
  // Cancels the run from outside (signal, server). Default: none.
  const CancellationSource* cancel = nullptr;
  // Overrides Flow::cache_storage.
  std::string cache_storage;
  // Opens result/cache/target storage by URI. Default: open_object_store.
  StoreOpener open_store;
  // Starts command tasks' processes. Default: posix_spawn of /bin/sh -c.
  ProcessLauncher* process_launcher = nullptr;
  // Runs distributed maps (Task::distributed) elsewhere. Default: none, they run here
  // as any mapped task.
  MapDistributor* distributor = nullptr;
};

// One line of the run summary.
struct TaskRunSummary {
  std::string task;
  int map_index = -1;
  State state = State::kPending;
  int attempts = 0;
  int64_t duration_ms = 0;
  std::string message;
};

// The outcome of a run: final state, one summary line per task run (definition order,
// then map_index) and the tasks' output values.
class RunResult {
 public:
  std::string flow;
  std::string flow_run_id;
  State state = State::kPending;
  std::string message;
  std::vector<TaskRunSummary> task_runs;
  // Output of each task (definition order); empty when it produced none.
  std::vector<std::any> values;

  const TaskRunSummary* find(std::string_view task, int map_index = -1) const;
  // The value a task produced in this run, or nullptr.
  template <typename T>
  const T* value(const Task<T>& task) const {
    if (task.index() >= values.size()) return nullptr;
    return std::any_cast<T>(&values[task.index()]);
  }
  // The run summary document of docs/FORMATS.md.
  std::string to_json() const;
  // A human-readable table.
  std::string to_text() const;
};

class Executor {
 public:
  // workers <= 1: tasks run one at a time on the thread that calls run().
  // workers > 1: a work-stealing pool of that many threads.
  explicit Executor(int workers = 1);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  int workers() const { return workers_; }
  // Runs the flow to a final state. An error Status only for what prevents the run
  // from starting: an invalid flow (see Flow::validate) or bad parameters
  // (InvalidArgument naming the parameter).
  Result<RunResult> run(const Flow& flow, const RunOptions& options = {});
  // Runs one chunk of a distributed map: the mapped task's function over the chunk's
  // elements, each element a task run with map_index chunk.start + i (retries,
  // timeouts, hooks and events as in run; options.flow_run_id should be the run the
  // map belongs to). Nothing else of the flow runs. An error Status for bad parameters,
  // an invalid flow, a task that is not a distributed map, or inputs that do not decode.
  Result<ChunkResult> run_chunk(const Flow& flow, const ChunkSpec& chunk, const RunOptions& options = {});

 private:
  int workers_;
  std::unique_ptr<detail::Pool> pool_;
  std::mutex run_mu_;
};

}  // namespace culvert
