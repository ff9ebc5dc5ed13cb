// The inside of a Flow: nodes (tasks), parameters and metadata, as recorded by the SDK
// and read by the executor, `describe` and `graph`. Not thread-safe while being built;
// read-only while runs use it.
#pragma once

#include <culvert/flow.hpp>

#include <any>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace culvert::detail {

enum class NodeKind : uint8_t { kCpp, kShell, kMap };

// Configuration most tasks leave at its defaults; allocated on first use so that a
// plain task costs little memory.
struct NodeOptions {
  int retries = 0;
  Millis retry_delay{0};
  double backoff = 1.0;
  Millis max_delay{0};
  double jitter = 0.0;
  std::function<bool(const TaskFailure&)> retry_on;
  Millis timeout{0};
  Millis kill_grace{5000};
  Millis cache_for{0};
  std::function<std::string(const CacheKeyContext&)> cache_key;
  std::string result_uri;
  std::string target_uri;
  std::vector<std::string> tags;
  std::vector<std::function<void(const TaskRunEvent&)>> on_state_change;
  std::vector<std::function<void(const TaskRunEvent&)>> on_failure;
  // Command tasks.
  std::string command;
  EnvMap env;
  std::string working_dir;
  // A distributed map (Task::distributed).
  std::shared_ptr<const Distributed> distributed;
};

struct Node {
  std::string name;
  NodeKind kind = NodeKind::kCpp;
  // What `describe` calls the task's code when it is not a command: "cpp", or the
  // language of a binding's task ("python").
  const char* code_kind = "cpp";
  Trigger trigger = Trigger::kAllSuccessful;
  bool reference = false;
  ValueOps ops;                       // codec of the value (of one element for maps)
  Body body;                          // kCpp
  std::unique_ptr<MapOps> map;        // kMap
  std::vector<InputRef> inputs;       // data inputs, in argument order
  std::vector<AnyEncode> input_encoders;
  std::vector<uint32_t> after;        // ordering dependencies
  std::unique_ptr<NodeOptions> opt;

  NodeOptions& options() {
    if (!opt) opt = std::make_unique<NodeOptions>();
    return *opt;
  }
};

struct ParamDef {
  std::string name;
  const char* type;
  std::optional<std::string> default_json;
  std::optional<std::string> default_text;
  ParamParse parse;
  std::any default_value;
};

// Upstream/downstream lists of every node (unique, data and ordering together) in
// compressed form, plus a topological order. Built by FlowImpl::plan().
struct Plan {
  std::vector<uint32_t> up_off, up, down_off, down;
  std::vector<uint8_t> terminal;  // no downstream
  size_t upstream_count(uint32_t n) const { return up_off[n + 1] - up_off[n]; }
};

class FlowImpl {
 public:
  explicit FlowImpl(std::string name) : name(std::move(name)) {}

  std::string name;
  std::string description;
  std::vector<Node> nodes;
  std::vector<ParamDef> params;
  std::optional<RunConfig> run_config;
  std::string storage;
  ScheduleSpec schedule;
  int max_run_retries = 0;
  std::map<std::string, int> concurrency_limits;
  std::string cache_storage;
  std::string result_storage;
  std::vector<std::function<void(const FlowRunEvent&)>> on_state_change;
  std::vector<std::function<void(const FlowRunEvent&)>> on_failure;
  // Definition errors found while building (reported by validate()).
  std::vector<std::string> errors;

  // Every change bumps the generation, which invalidates the cached validation.
  uint64_t generation = 0;

  Node& node(uint32_t i) {
    ++generation;
    return nodes[i];
  }
  void add_error(std::string e) {
    ++generation;
    errors.push_back(std::move(e));
  }
  // Every definition error, or OK. The outcome (and the plan) is cached until the
  // flow changes, so that validating before each run costs nothing. A cron schedule's
  // time zone is not looked up here (running a flow never needs the time-zone
  // database); validate_schedule_zone() does that, for Flow::validate().
  Status validate() const;
  // A cron schedule's time zone is in the time-zone database (or there is no cron schedule).
  Status validate_schedule_zone() const;
  // Builds the plan. REQUIRES: validate() is OK.
  Plan plan() const;
  // The cached plan. REQUIRES: validate() is OK for the current generation.
  const Plan& cached_plan() const { return cached_plan_; }

 private:
  Status validate_uncached() const;
  void validate_distributed(const Node& n, std::vector<std::string>& errs) const;
  mutable std::mutex cache_mu_;
  mutable uint64_t cached_gen_ = ~uint64_t{0};
  mutable Status cached_status_;
  mutable Plan cached_plan_;
};

// The storage of a distributed map: its own, else the flow's result storage ("" when none).
std::string distributed_storage(const FlowImpl& flow, const Node& node);
// The most chunks (child runs) one distributed map is split into.
inline constexpr size_t kMaxDistributedChunks = 10000;
// Its chunk size, given the element count (chunk_size 0: count / max_workers, rounded up;
// raised so that there are at most kMaxDistributedChunks chunks).
size_t distributed_chunk_size(const Distributed& d, size_t count);

// "{flow_name}" etc. replaced; unknown placeholders are left as written.
std::string render_template(std::string_view tmpl, std::string_view flow_name,
                            std::string_view flow_run_id, std::string_view task_name,
                            int map_index, std::string_view date);
// Names of placeholders in `tmpl` that render_template does not know.
std::vector<std::string> unknown_placeholders(std::string_view tmpl);

// The engine's read access to a Flow's definition (Flow keeps it private).
struct FlowAccess {
  static const FlowImpl& of(const Flow& flow) { return *flow.impl_; }
};

}  // namespace culvert::detail
