// One flow run inside the executor: per-task runtime state, scheduling, retries,
// timeouts, triggers, mapping, caching and event reporting. Internal to the engine.
//
// Threading: a RunCore is driven either by the calling thread (sequential executor) or
// by the workers of a Pool. Each task run is executed by one thread at a time; a
// node's state and value are written before its completion is published with an
// acq_rel decrement of its successors' pending counters, which is what makes them
// visible to the threads that run the successors.
//
// An attempt of a C++ task with a timeout runs on a thread of its own while the
// worker waits for it (run_guarded). Past the deadline plus the grace the worker gives
// it up: the attempt is TimedOut and the run goes on. The abandoned thread only
// touches its AttemptState (shared ownership): copies of its inputs, its own output,
// and flags its token reads; TaskContext calls into the run check `abandoned` under
// the state's mutex first.
#pragma once

#include <any>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <stdexcept>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <culvert/executor.hpp>

#include "core/crypto.hpp"
#include "engine/flow_impl.hpp"
#include "engine/pool.hpp"
#include <culvert/process.hpp>

namespace culvert::detail {

// A command that exited with a non-zero status (thrown by run_shell, read by the
// attempt loop for TaskFailure::exit_code).
class CommandFailed : public std::runtime_error {
 public:
  CommandFailed(int code, const std::string& what) : std::runtime_error(what), code(code) {}
  int code;
};

inline std::string format_millis(Millis d) {
  auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

struct TaskRunRt {
  uint32_t node = 0;
  int32_t map_index = -1;
  int32_t attempts = 0;
  State state = State::kPending;
  std::any out;
};

struct AttemptState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;       // the task function returned or threw
  bool abandoned = false;  // the worker gave up waiting (guarded by mu)
  std::atomic<bool> run_cancelled{false};  // mirrors the run's cancellation
  std::atomic<bool> expired{false};        // set when abandoned
  std::vector<std::any> inputs;            // copies, owned here
  std::any out;
  std::exception_ptr error;
  bool late = false;  // abandoned, or returned at or after the deadline (set by the worker)
  std::string task_name, flow_name, flow_run_id;  // identity, valid after abandonment
  int map_index = -1;
  int attempt = 0;
  Clock* clock = nullptr;
  SteadyTime deadline{};
};

struct NodeRt {
  std::atomic<uint32_t> pending{0};
  std::atomic<uint32_t> children_left{0};
  State state = State::kPending;
  std::string message;  // first failure message of a mapped node
  std::any value;
  std::unique_ptr<TaskRunRt[]> children;
  uint32_t n_children = 0;
};

struct RunCore final : Pool::Handler {
  RunCore(const FlowImpl& flow, const RunOptions& opts, Clock& clock, Random& random,
          std::vector<std::any> params, std::map<std::string, std::string> param_text,
          Pool* pool);

  // Drives the run to its end; returns when every task is final.
  void run();
  // Chunk mode (Executor::run_chunk): runs only the `count` elements of the distributed
  // map `node`, with map indexes start.., over the input already in its upstream's
  // value; returns when each is final.
  void run_chunk(uint32_t node, size_t start, size_t count);
  void run_item(void* item) override;

  // Called by TaskContext.
  void log(TaskRunRt* tr, LogLevel level, std::string_view message);

  const FlowImpl& flow;
  const Plan& plan;
  const RunOptions& opts;
  Clock& clock;
  Random& random;
  const CancellationSource* cancel;
  std::string flow_run_id;
  std::string date;
  std::vector<std::any> params;
  std::map<std::string, std::string> param_text;
  std::vector<RunObserver*> observers;
  std::unique_ptr<NodeRt[]> nodes;
  std::vector<TaskRunRt> runs;  // one per node: its unmapped (or not expanded) run

 private:
  TaskRunRt* execute(TaskRunRt* tr);
  void run_attempts(TaskRunRt* tr, const Node& node);
  void invoke(TaskRunRt* tr, const Node& node, TaskContext& ctx);
  void run_guarded(TaskRunRt* tr, const Node& node, const TaskContext& ctx, AttemptState& st,
                   const std::shared_ptr<AttemptState>& shared, SteadyTime deadline, Millis grace);
  void run_shell(TaskRunRt* tr, const Node& node, TaskContext& ctx);
  TaskRunRt* after_finish(TaskRunRt* tr);
  // A distributed map's driver: hands the elements to the distributor and takes back
  // their outcomes (the node's state and value in tr).
  void run_distributed(TaskRunRt* tr, const Node& node);
  // The state of a mapped node from its children's (its first failure in the node's
  // message), and its gathered value when successful.
  State aggregate_map(uint32_t n, std::any& value);
  TaskRunRt* complete(uint32_t node);
  void ready(uint32_t s, std::vector<uint32_t>& stack, TaskRunRt*& cont);
  void resolve_without_run(uint32_t s, State state, std::string message, std::vector<uint32_t>& stack);
  void finalize(TaskRunRt* tr, State state, std::string_view message);
  void emit(TaskRunRt* tr, State state, std::string_view message, Millis retry_delay = Millis(-1));
  void schedule(TaskRunRt* tr);
  bool acquire_tags(TaskRunRt* tr, const NodeOptions& o);
  void release_tags(const NodeOptions& o);
  bool wait_cancellable(Millis delay);
  Millis retry_delay(const NodeOptions& o, int attempt);
  const std::any* input(const InputRef& r) const {
    return r.is_param ? &params[r.index] : &nodes[r.index].value;
  }
  bool cancelled() const { return cancel != nullptr && cancel->cancelled(); }
  // Storage.
  Result<ObjectStore*> store_for(const std::string& uri);
  std::string render(const std::string& tmpl, const Node& node, int map_index) const;
  std::string cache_uri(const TaskRunRt* tr, const Node& node);
  bool try_cached(TaskRunRt* tr, const Node& node);
  Status persist(TaskRunRt* tr, const Node& node);

  Pool* pool_;
  MapDistributor* distributor_ = nullptr;
  uint32_t chunk_node_ = UINT32_MAX;  // chunk mode: the map whose elements run
  int32_t map_base_ = 0;              // chunk mode: map index of the input's element 0
  std::deque<TaskRunRt*> local_queue_;  // sequential mode
  std::atomic<uint32_t> nodes_left_{0};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;

  std::mutex random_mu_;
  std::mutex store_mu_;
  std::map<std::string, std::unique_ptr<ObjectStore>> stores_;
  std::string cache_base_;
  ProcessLauncher* launcher_;

  struct TagState {
    int limit = 0;
    int used = 0;
    std::deque<TaskRunRt*> waiting;
  };
  bool has_limits_ = false;
  std::mutex tag_mu_;
  std::unordered_map<std::string, TagState> tags_;
};

}  // namespace culvert::detail
