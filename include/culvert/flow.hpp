// Describing a flow: tasks, their data and ordering dependencies, parameters and
// metadata. A Flow only describes; an Executor (<culvert/executor.hpp>) runs it.
//
//   culvert::Flow flow("etl");
//   auto rows  = flow.parameter<int>("rows", 1000);
//   auto table = flow.task("extract", [](int n) { return load_rows(n); }, rows)
//                    .retries(3, std::chrono::seconds(10));
//   flow.task("load", [](const Table& t) { store(t); }, table);
//
// Tasks are typed: the value a task returns is the argument of the tasks that take
// its handle, checked at compile time. Handles (Task<T>, Param<T>, ShellTask) are
// cheap values that refer into their Flow; they are valid while the Flow lives.
// Task functions are stored type-erased (std::function over std::any), so a flow's
// translation unit instantiates only thin adapters. Task functions are called as
// const and may run concurrently (mapped tasks, thread pool): they must be
// thread-safe. Values passed between tasks must be copy-constructible.
//
// Definition errors that the compiler cannot catch (duplicate names, a cycle through
// after(), a malformed cron expression) are collected and reported by
// Flow::validate(), which culvert::main and Executor::run call first.
// A Flow is not thread-safe while it is being built; running it only reads it.
#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <culvert/cancel.hpp>
#include <culvert/clock.hpp>
#include <culvert/codec.hpp>
#include <culvert/detail/task_adapters.hpp>
#include <culvert/observer.hpp>
#include <culvert/run_config.hpp>
#include <culvert/state.hpp>
#include <culvert/status.hpp>

namespace culvert {

class Flow;
class TaskContext;
template <typename T> class Task;
template <typename T> class Param;
namespace detail {
class FlowImpl;
struct FlowAccess;
struct DynamicFlow;
struct RunCore;
struct TaskRunRt;
struct AttemptState;
}  // namespace detail

// When a task runs, given the final states of its upstream tasks (data and ordering).
// A trigger that is not met ends the task TriggerFailed when an upstream task failed,
// else Skipped. With kAllSuccessful an upstream Skipped task skips this one too.
enum class Trigger { kAllSuccessful, kAllFinished, kAnyFailed, kAllFailed, kAnySuccessful };
// "all_successful", "all_finished", "any_failed", "all_failed", "any_successful".
const char* trigger_name(Trigger t);

// Thrown by a task function to end its task run Skipped.
class SkipTask : public std::runtime_error {
 public:
  explicit SkipTask(const std::string& why = "skipped") : std::runtime_error(why) {}
};

// What a retry_on predicate sees about a failed attempt.
struct TaskFailure {
  State state = State::kFailed;  // Failed or TimedOut
  std::string message;
  int exit_code = -1;            // command tasks: the exit status; -1 otherwise
  int attempt = 1;
};

// What a cache_key function sees.
struct CacheKeyContext {
  std::string_view flow_name;
  std::string_view task_name;
  int map_index = -1;
  // Hex SHA-256 over the task's encoded input values (inputs without a codec count by
  // their upstream task's name only).
  std::string_view inputs_digest;
  // The run's parameter values, as text.
  const std::map<std::string, std::string>* parameters = nullptr;
};

// Given to a task function that takes `culvert::TaskContext&` as its first argument:
// the task run's identity, its cancellation token and its logger. Valid during the
// call only; used by the one thread that runs the task. A task with a timeout runs on
// a thread of its own; if it ignores its token past the grace period, the engine
// reports it TimedOut and moves on, and from then on this context drops log lines and
// answers parameter() with "" (the run it belonged to may be gone).
class TaskContext {
 public:
  const std::string& task_name() const;
  int map_index() const;
  int attempt() const;
  const std::string& flow_name() const;
  const std::string& flow_run_id() const;
  // True once the run is cancelled or this attempt's timeout has passed. A long task
  // should check it and return (or throw) promptly.
  bool cancelled() const { return token_.cancelled(); }
  const CancellationToken& token() const { return token_; }
  Clock& clock() const;
  // The run's value of a parameter, as text ("" when unknown).
  std::string parameter(std::string_view name) const;

  // The task run's logger: lines go to every RunObserver (and so to the console, or
  // to the server under orchestration).
  void log(LogLevel level, std::string_view message);
  void debug(std::string_view m) { log(LogLevel::kDebug, m); }
  void info(std::string_view m) { log(LogLevel::kInfo, m); }
  void warning(std::string_view m) { log(LogLevel::kWarning, m); }
  void error(std::string_view m) { log(LogLevel::kError, m); }

 private:
  // Made by the engine only, for one attempt of one task run.
  friend struct detail::RunCore;
  TaskContext(detail::RunCore* run, detail::TaskRunRt* task_run, CancellationToken token,
              std::shared_ptr<detail::AttemptState> attempt = nullptr)
      : run_(run), tr_(task_run), token_(token), attempt_(std::move(attempt)) {}

  detail::RunCore* run_;
  detail::TaskRunRt* tr_;
  CancellationToken token_;
  std::shared_ptr<detail::AttemptState> attempt_;  // set for an attempt on its own thread
};

// JSON string literal for `s` (quoted and escaped).
std::string json_quote(std::string_view s);

// Parameter types: int (any integral type), float (double, float), bool, string.
template <typename T, typename Enable = void>
struct ParamType;
template <typename T>
struct ParamType<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static constexpr const char* name = "int";
  static std::string to_json(const T& v) { return std::to_string(v); }
};
template <typename T>
struct ParamType<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static constexpr const char* name = "float";
  static std::string to_json(const T& v) { return Codec<T>::encode(v); }
};
template <>
struct ParamType<bool> {
  static constexpr const char* name = "bool";
  static std::string to_json(const bool& v) { return v ? "true" : "false"; }
};
template <>
struct ParamType<std::string> {
  static constexpr const char* name = "string";
  static std::string to_json(const std::string& v) { return json_quote(v); }
};

// A parameter of the flow: a typed value given at run time (`--param name=value`).
template <typename T>
class Param {
 public:
  uint32_t index() const { return index_; }

 private:
  friend class Flow;
  Param(detail::FlowImpl* flow, uint32_t index) : flow_(flow), index_(index) {}
  detail::InputRef input_ref() const { return {index_, true}; }
  detail::FlowImpl* flow_impl() const { return flow_; }
  detail::FlowImpl* flow_;
  uint32_t index_;
};

// A mapped task run over many workers (Task::distributed, docs/SDK.md "Distributed
// maps"): its elements are split into chunks of `chunk_size`, and under orchestration each
// chunk runs as a child flow run of the same flow version, launched by an agent like any
// run (a process, a container, an ECS task, a Slurm job), at most `max_workers` at once.
// Chunks exchange their inputs and outputs only through `storage`, which every worker
// must reach (s3://, or file:// on a shared file system). Retries and timeouts stay per
// element, inside the chunk. Run locally (`run`), the map runs on the executor's own
// workers as any mapped task does.
struct Distributed {
  int max_workers = 10;        // 1..10000
  int chunk_size = 0;          // elements per chunk, 1..1000000; 0: count / max_workers, rounded up
  std::string storage;         // default: Flow::result_storage
  std::optional<RunConfig> run_config;  // the workers' run config; default: the flow's
};

// The untyped part of a task handle; its setters record configuration in the Flow.
class TaskBase {
 public:
  uint32_t index() const { return index_; }
  const std::string& name() const;

 protected:
  friend class Flow;
  friend struct detail::DynamicFlow;  // tasks whose types are known at run time only
  detail::FlowImpl* flow_impl() const { return flow_; }
  TaskBase(detail::FlowImpl* flow, uint32_t index) : flow_(flow), index_(index) {}
  void set_retries(int n, Millis delay);
  void set_backoff(double factor, Millis max_delay);
  void set_jitter(double fraction);
  void set_retry_on(std::function<bool(const TaskFailure&)> pred);
  void set_timeout(Millis t);
  void set_trigger(Trigger t);
  void add_after(const TaskBase& other);
  void set_tags(std::vector<std::string> tags);
  void set_reference(bool on);
  void set_cache_for(Millis d);
  void set_cache_key(std::function<std::string(const CacheKeyContext&)> fn);
  void set_result(std::string uri_template);
  void set_target(std::string uri_template);
  void add_on_state_change(std::function<void(const TaskRunEvent&)> fn);
  void add_on_failure(std::function<void(const TaskRunEvent&)> fn);
  void set_env(std::string key, std::string value);
  void set_working_dir(std::string dir);
  void set_kill_grace(Millis d);
  void set_distributed(Distributed d);

  detail::FlowImpl* flow_;
  uint32_t index_;
};

// Fluent configuration shared by every kind of task handle.
template <typename D>
class TaskOps : public TaskBase {
 public:
  // Up to `n` more attempts after a failure (Failed or TimedOut), waiting `delay`
  // before the first retry.
  D& retries(int n, Millis delay = Millis(0)) { set_retries(n, delay); return self(); }
  // Each further retry waits `factor` times longer, at most `max_delay` (0: no cap).
  D& retry_backoff(double factor, Millis max_delay = Millis(0)) { set_backoff(factor, max_delay); return self(); }
  // Each delay is shortened by a random fraction in [0, fraction) (0 <= fraction <= 1).
  D& retry_jitter(double fraction) { set_jitter(fraction); return self(); }
  // Retry only the failures for which `pred` returns true.
  D& retry_on(std::function<bool(const TaskFailure&)> pred) { set_retry_on(std::move(pred)); return self(); }
  // Each attempt may take at most `t`; then its token is cancelled. A C++ task that
  // returns within the grace period (default 5 s) ends TimedOut then; one that ignores
  // its token is reported TimedOut when the grace has passed, and its thread is left
  // to finish on its own (its result is dropped). Command tasks: SIGTERM to the process
  // group, SIGKILL after the grace.
  D& timeout(Millis t) { set_timeout(t); return self(); }
  D& grace(Millis d) { set_kill_grace(d); return self(); }
  D& trigger(Trigger t) { set_trigger(t); return self(); }
  // Ordering dependencies: this task starts after `others` have finished.
  template <typename... Ts>
  D& after(const Ts&... others) {
    static_assert((std::is_base_of_v<TaskBase, Ts> && ...), "after() takes task handles");
    (add_after(others), ...);
    return self();
  }
  // Tags; Flow::concurrency_limit(tag, n) bounds the running task runs per tag.
  D& tags(std::vector<std::string> t) { set_tags(std::move(t)); return self(); }
  // Marks a reference task: reference tasks decide the flow run's final state
  // (default: the terminal tasks).
  D& reference(bool on = true) { set_reference(on); return self(); }
  // Reuse a result persisted by an earlier run for `d` (state Cached). The key is the
  // task's name and inputs unless cache_key() says otherwise.
  D& cache_for(Millis d) { set_cache_for(d); return self(); }
  D& cache_key(std::function<std::string(const CacheKeyContext&)> fn) { set_cache_key(std::move(fn)); return self(); }
  // Skip the task (Cached, value read back) when an object exists at the rendered
  // template; after a successful run the value is written there.
  // Templates may use {flow_name} {flow_run_id} {task_name} {map_index} {date}.
  D& target(std::string uri_template) { set_target(std::move(uri_template)); return self(); }
  D& on_state_change(std::function<void(const TaskRunEvent&)> fn) { add_on_state_change(std::move(fn)); return self(); }
  D& on_failure(std::function<void(const TaskRunEvent&)> fn) { add_on_failure(std::move(fn)); return self(); }

 protected:
  using TaskBase::TaskBase;
  D& self() { return static_cast<D&>(*this); }
};

// A typed task handle: produces a T (void: no value).
template <typename T>
class Task : public TaskOps<Task<T>> {
 public:
  // Persist each output to the rendered URI template through Codec<T>.
  // REQUIRES (compile time): T has a codec (<culvert/codec.hpp>).
  Task& result(std::string uri_template) {
    static_assert(detail::check_storable<T>());
    this->set_result(std::move(uri_template));
    return *this;
  }
  // As TaskOps::cache_for and TaskOps::target. REQUIRES (compile time): T has a codec.
  Task& cache_for(Millis d) {
    static_assert(detail::check_storable<T>());
    return TaskOps<Task<T>>::cache_for(d);
  }
  Task& target(std::string uri_template) {
    static_assert(detail::check_storable<T>());
    return TaskOps<Task<T>>::target(std::move(uri_template));
  }
  // Runs this mapped task (flow.map) over many workers (see Distributed). REQUIRES
  // (compile time): the results have a codec; (at validation) the elements have one,
  // the task is a mapped one and some storage is given.
  Task& distributed(Distributed options) {
    if constexpr (!std::is_void_v<T>) static_assert(detail::check_storable<T>());
    this->set_distributed(std::move(options));
    return *this;
  }

 private:
  friend class Flow;
  Task(detail::FlowImpl* flow, uint32_t index) : TaskOps<Task<T>>(flow, index) {}
  detail::InputRef input_ref() const { return {this->index_, false}; }
};

// A command task: `/bin/sh -c command` in a new process group. stdout lines are
// logged at INFO, stderr lines at WARNING; exit status 0 is Success. On timeout or
// cancellation the whole process group gets SIGTERM, then SIGKILL after the grace.
class ShellTask : public TaskOps<ShellTask> {
 public:
  ShellTask& env(std::string key, std::string value) { set_env(std::move(key), std::move(value)); return *this; }
  ShellTask& env(const EnvMap& vars) {
    for (const auto& [k, v] : vars) set_env(k, v);
    return *this;
  }
  ShellTask& working_dir(std::string dir) { set_working_dir(std::move(dir)); return *this; }
  // Time between SIGTERM and SIGKILL. Default: 5 s.
  ShellTask& kill_grace(Millis d) { set_kill_grace(d); return *this; }

 private:
  friend class Flow;
  ShellTask(detail::FlowImpl* flow, uint32_t index) : TaskOps<ShellTask>(flow, index) {}
};

class Flow {
 public:
  explicit Flow(std::string name);
  ~Flow();
  Flow(Flow&&) noexcept;
  Flow& operator=(Flow&&) noexcept;
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;

  // A parameter with a default value.
  template <typename T>
  Param<T> parameter(std::string name, T default_value) {
    static_assert(requires { ParamType<T>::name; },
                  "parameter types: integral, floating point, bool, std::string");
    std::any dv(default_value);
    return Param<T>(impl_.get(), add_param(std::move(name), ParamType<T>::name,
                                           ParamType<T>::to_json(default_value), raw_text(default_value),
                                           &detail::parse_param<T>, std::move(dv)));
  }
  // A required parameter: a run without a value for it is refused.
  template <typename T>
  Param<T> parameter(std::string name) {
    static_assert(requires { ParamType<T>::name; },
                  "parameter types: integral, floating point, bool, std::string");
    return Param<T>(impl_.get(), add_param(std::move(name), ParamType<T>::name, std::nullopt, std::nullopt,
                                           &detail::parse_param<T>, std::any()));
  }

  // A C++ task: fn(upstream values...) or fn(TaskContext&, upstream values...).
  template <typename F, typename... Srcs>
  auto task(std::string name, F fn, const Srcs&... sources) {
    static_assert((detail::Source<Srcs> && ...),
                  "flow.task(name, fn, args...): args must be Task<T> or Param<T> handles");
    static_assert((!std::is_void_v<detail::source_value_t<Srcs>> && ...),
                  "a Task<void> has no value to pass; use .after(task) for ordering");
    static_assert(detail::callable_v<F, detail::source_value_t<Srcs>...>,
                  "flow.task: fn cannot be called (as const) with the upstream values "
                  "(const T&...), optionally preceded by culvert::TaskContext&");
    using R = detail::task_result_t<F, detail::source_value_t<Srcs>...>;
    detail::Body body = [fn = std::move(fn)](TaskContext& ctx, const std::any* const* in,
                                             std::any& out) {
      detail::invoke_task<R, F, detail::source_value_t<Srcs>...>(
          fn, ctx, in, out, std::index_sequence_for<Srcs...>{});
    };
    check_owners(name, {sources.flow_impl()...});
    uint32_t idx = add_task(std::move(name), std::move(body), {sources.input_ref()...},
                            {detail::encoder<detail::source_value_t<Srcs>>()...},
                            detail::value_ops<R>());
    return Task<R>(impl_.get(), idx);
  }

  // A mapped task: one task run per element of the upstream vector (map_index
  // 0..n-1). Its handle is a Task<std::vector<R>> of the results in order (a reduce
  // task takes it), or Task<void> when fn returns nothing.
  template <typename F, typename Src>
  auto map(std::string name, F fn, const Src& source) {
    static_assert(detail::Source<Src>, "flow.map(name, fn, upstream): upstream must be a handle");
    using V = detail::source_value_t<Src>;
    static_assert(detail::is_vector<V>::value, "flow.map maps over a std::vector value");
    using E = typename V::value_type;
    static_assert(detail::callable_v<F, E>,
                  "flow.map: fn cannot be called (as const) with one element (const T&), "
                  "optionally preceded by culvert::TaskContext&");
    using R = detail::task_result_t<F, E>;
    detail::MapOps ops;
    ops.size = &detail::vector_size<V>;
    ops.slice = &detail::vector_slice<V>;
    ops.body = [fn = std::move(fn)](TaskContext& ctx, const std::any& in, size_t i, std::any& out) {
      const V& v = *std::any_cast<V>(&in);
      detail::call_into<R, F, E>(fn, ctx, out, v[i]);
    };
    if constexpr (!std::is_void_v<R>) ops.gather = &detail::gather<R>;
    if constexpr (HasCodec<V> && std::is_default_constructible_v<V>) {
      ops.encode_range = &detail::vector_encode_range<V>;
      ops.decode_input = &detail::decode_any<V>;
    }
    check_owners(name, {source.flow_impl()});
    uint32_t idx = add_map(std::move(name), std::move(ops), source.input_ref(),
                           detail::encoder<V>(), detail::value_ops<R>());
    if constexpr (std::is_void_v<R>) return Task<void>(impl_.get(), idx);
    else return Task<std::vector<R>>(impl_.get(), idx);
  }

  // A command task run with /bin/sh -c.
  ShellTask shell(std::string name, std::string command);

  Flow& description(std::string text);
  Flow& run_config(RunConfig config);
  // Where the flow's artifact is stored when registered (file:// or s3://).
  Flow& storage(std::string uri);
  Flow& schedule(ScheduleSpec s);
  Flow& max_run_retries(int n);
  // At most `limit` task runs with `tag` run at once.
  Flow& concurrency_limit(std::string tag, int limit);
  // Where distributed maps keep their chunks' inputs and outputs (s3://bucket/prefix, or
  // file:///dir on a file system every worker shares), unless a map names its own.
  Flow& result_storage(std::string uri);
  // Base URI for cache entries. Default: $CULVERT_CACHE_URI, else
  // file://$HOME/.culvert/cache.
  Flow& cache_storage(std::string uri);
  // Hooks on the flow run's state changes, and on its failure.
  Flow& on_state_change(std::function<void(const FlowRunEvent&)> fn);
  Flow& on_failure(std::function<void(const FlowRunEvent&)> fn);

  const std::string& name() const;
  size_t task_count() const;
  // OK, or InvalidArgument listing every definition error, including a cron schedule's
  // time zone that the time-zone database does not know. Running the flow (`run`,
  // `execute`, Executor::run) checks everything but that zone, so it needs no time-zone
  // database; `describe` and `register` check the zone as well.
  Status validate() const;
  // The flow description JSON (docs/FORMATS.md).
  std::string describe_json() const;
  // The task graph in Graphviz DOT.
  std::string graph_dot() const;

 private:
  friend struct detail::FlowAccess;  // the engine reads the definition through it
  friend struct detail::DynamicFlow;  // language bindings add runtime-typed tasks
  template <typename T>
  static std::string raw_text(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) return v;
    else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
    else return Codec<T>::encode(v);
  }
  // Records a definition error for handles that belong to another flow.
  void check_owners(const std::string& task, std::initializer_list<const detail::FlowImpl*> owners);
  uint32_t add_param(std::string name, const char* type, std::optional<std::string> default_json,
                     std::optional<std::string> default_text, detail::ParamParse parse,
                     std::any default_value);
  uint32_t add_task(std::string name, detail::Body body, std::vector<detail::InputRef> inputs,
                    std::vector<detail::AnyEncode> input_encoders, detail::ValueOps ops);
  uint32_t add_map(std::string name, detail::MapOps ops, detail::InputRef input,
                   detail::AnyEncode input_encoder, detail::ValueOps ops_out);

  std::unique_ptr<detail::FlowImpl> impl_;
};

}  // namespace culvert
