// The `culvert._culvert` extension: the Python SDK's bridge to the C++ engine and
// runtime. The Python package (python/culvert/) records a flow's tasks, then builds a
// culvert::Flow here through detail::DynamicFlow: each Python task is an engine task
// whose body calls the Python function, each value an engine value (std::any) holding
// a Python object, persisted through the task's serializer (pickle by default).
//
// The GIL: the engine's threads hold it only while Python code runs (a task body, a
// serializer, a hook, a retry_on or cache_key function); every wait of the engine
// (Executor::run, culvert::main, execute, register) runs with the GIL released.
// References to Python objects that the engine copies between threads are PyRef
// (shared, dropped under the GIL from whichever thread releases the last copy).
#define PYBIND11_DETAILED_ERROR_MESSAGES
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <culvert/clock.hpp>
#include <culvert/executor.hpp>
#include <culvert/main.hpp>

#include <algorithm>
#include <any>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "engine/dynamic_flow.hpp"
#include "runtime/runtime.hpp"

namespace py = pybind11;

namespace culvert::python {
namespace {

using detail::DynamicFlow;
using detail::InputRef;

// One reference to a Python object, releasable from any thread.
struct PyRef {
  PyObject* obj;
  explicit PyRef(PyObject* o) : obj(o) {}  // takes over a new reference
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  ~PyRef() {
    // At interpreter exit (a thread left behind by a timeout) the object is leaked.
    if (obj == nullptr || !Py_IsInitialized() || _Py_IsFinalizing()) return;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF(obj);
    PyGILState_Release(g);
  }
};
using Ref = std::shared_ptr<PyRef>;

// REQUIRES: the GIL.
Ref make_ref(py::handle h) { return std::make_shared<PyRef>(h.inc_ref().ptr()); }
py::object get(const Ref& r) { return py::reinterpret_borrow<py::object>(r->obj); }

// A task's value: a Python object.
struct PyValue {
  Ref obj;
};
// The values of a mapped task's runs, in map_index order (a reduce task gets a list).
struct PyValues {
  std::shared_ptr<std::vector<std::any>> items;
};

// Python tasks that are running now (any thread): culvert.main leaves the process with
// os._exit when one was left behind by a timeout, since the interpreter cannot finish
// while a thread it does not own holds Python state.
std::atomic<int> g_running{0};

// The task run whose Python code this thread runs (print and logging go there).
thread_local TaskContext* t_ctx = nullptr;
// Text printed by the task that has no newline yet: stdout's and stderr's.
thread_local std::string t_partial[2];

LogLevel stream_level(int stream) { return stream == 0 ? LogLevel::kInfo : LogLevel::kWarning; }

// Appends printed text; each complete line becomes a log line.
void write_stream(TaskContext& ctx, int stream, std::string_view text) {
  std::string& buf = t_partial[stream];
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string_view::npos; nl = text.find('\n', start)) {
    if (buf.empty()) {
      ctx.log(stream_level(stream), text.substr(start, nl - start));
    } else {
      buf.append(text.substr(start, nl - start));
      ctx.log(stream_level(stream), buf);
      buf.clear();
    }
    start = nl + 1;
  }
  buf.append(text.substr(start));
  if (buf.size() > 65536) {  // bounded: a long line without a newline is split
    ctx.log(stream_level(stream), buf);
    buf.clear();
  }
}
void flush_streams(TaskContext& ctx) {
  for (int s = 0; s < 2; ++s) {
    if (!t_partial[s].empty()) {
      ctx.log(stream_level(s), t_partial[s]);
      t_partial[s].clear();
    }
  }
}

// Exception types seen in task runs, by qualified name (retry_on by exception class).
py::object* g_skip_type = nullptr;

// REQUIRES: the GIL.
py::object to_py(const std::any& a) {
  if (!a.has_value()) return py::none();
  if (const auto* v = std::any_cast<PyValue>(&a)) return get(v->obj);
  if (const auto* l = std::any_cast<PyValues>(&a)) {
    py::list out;
    for (const auto& e : *l->items) out.append(to_py(e));
    return std::move(out);
  }
  if (const auto* i = std::any_cast<int64_t>(&a)) return py::int_(*i);
  if (const auto* d = std::any_cast<double>(&a)) return py::float_(*d);
  if (const auto* b = std::any_cast<bool>(&a)) return py::bool_(*b);
  if (const auto* s = std::any_cast<std::string>(&a)) return py::str(*s);
  throw std::runtime_error("a value of a type the Python SDK does not know");
}

std::string exception_text(py::error_already_set& e) {
  try {
    py::object tb = py::module_::import("traceback");
    py::object trace = e.trace() ? py::reinterpret_borrow<py::object>(e.trace()) : py::none();
    py::object value = e.value() ? py::reinterpret_borrow<py::object>(e.value()) : py::none();
    py::list lines = tb.attr("format_exception")(e.type(), value, trace);
    std::string out;
    for (auto l : lines) out += py::cast<std::string>(l);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  } catch (const std::exception&) {
    return e.what();
  }
}

std::string exception_message_of(py::error_already_set& e) {
  std::string type = py::cast<std::string>(e.type().attr("__qualname__"));
  py::object mod = py::getattr(e.type(), "__module__", py::none());
  if (!mod.is_none()) {
    std::string m = py::cast<std::string>(py::str(mod));
    if (m != "builtins") type = m + "." + type;
  }
  std::string msg = py::cast<std::string>(py::str(e.value()));
  return msg.empty() ? type : type + ": " + msg;
}

std::string exception_message(py::error_already_set& e) {
  try {
    return exception_message_of(e);
  } catch (const std::exception&) {
    return e.what();
  }
}

// Runs Python code for a task run: sets the thread's task context, turns a Python
// exception into the engine's (message "Type: text", traceback logged at ERROR;
// culvert.SKIP into SkipTask). REQUIRES: not holding the GIL.
template <typename F>
void call_task(TaskContext& ctx, F&& f, std::any& out) {
  g_running.fetch_add(1);
  struct Done {
    ~Done() { g_running.fetch_sub(1); }
  } done;
  std::string error;
  bool skip = false;
  {
    py::gil_scoped_acquire gil;
    struct Current {
      TaskContext* prev;
      explicit Current(TaskContext* c) : prev(t_ctx) { t_ctx = c; }
      ~Current() { t_ctx = prev; }
    } current(&ctx);
    try {
      py::object r = f();
      out = PyValue{make_ref(r)};
    } catch (py::error_already_set& e) {
      if (g_skip_type != nullptr && e.matches(*g_skip_type)) {
        skip = true;
        error = py::cast<std::string>(py::str(e.value()));
        if (error.empty()) error = "skipped";
      } else {
        ctx.log(LogLevel::kError, exception_text(e));
        error = exception_message(e);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    flush_streams(ctx);
  }
  if (skip) throw SkipTask(error);
  if (!error.empty()) throw std::runtime_error(error);
}

// ---- values through a serializer (an object with dumps(obj) -> bytes, loads(bytes)) ----

detail::AnyEncode value_encoder(Ref serializer) {
  return [serializer](const std::any& a) -> std::string {
    py::gil_scoped_acquire gil;
    try {
      py::object b = get(serializer).attr("dumps")(to_py(a));
      if (py::isinstance<py::str>(b)) return py::cast<std::string>(b);
      return py::cast<std::string>(py::bytes(b));
    } catch (py::error_already_set& e) {
      throw std::runtime_error(exception_message(e));
    }
  };
}

detail::AnyDecode value_decoder(Ref serializer) {
  return [serializer](std::string_view s, std::any& out) -> bool {
    py::gil_scoped_acquire gil;
    try {
      py::object o = get(serializer).attr("loads")(py::bytes(s.data(), s.size()));
      out = PyValue{make_ref(o)};
      return true;
    } catch (py::error_already_set&) {
      return false;
    }
  };
}

detail::ValueOps value_ops(Ref serializer) { return {value_encoder(serializer), value_decoder(serializer), true}; }

// ---- mapping over a Python sequence (or the values of a mapped task) ----

size_t map_size(const std::any& a) {
  if (const auto* l = std::any_cast<PyValues>(&a)) return l->items->size();
  const auto* v = std::any_cast<PyValue>(&a);
  if (v == nullptr) return 1;  // a parameter: the one run reports the error
  py::gil_scoped_acquire gil;
  Py_ssize_t n = PyObject_Length(v->obj->obj);
  if (n < 0) {
    PyErr_Clear();
    return 1;  // not a sequence: the one run's element() says so
  }
  return static_cast<size_t>(n);
}

// REQUIRES: the GIL.
py::object map_element(const std::any& a, size_t i) {
  if (const auto* l = std::any_cast<PyValues>(&a)) return to_py((*l->items)[i]);
  py::object seq = to_py(a);
  if (!PySequence_Check(seq.ptr())) {
    std::string what = "map() maps over a list or another sequence, not a value of type " +
                       py::cast<std::string>(py::type::of(seq).attr("__name__"));
    PyErr_SetString(PyExc_TypeError, what.c_str());
    throw py::error_already_set();
  }
  return seq[py::int_(i)];
}

std::any map_slice(const std::any& a, size_t i) {
  auto items = std::make_shared<std::vector<std::any>>();
  if (const auto* l = std::any_cast<PyValues>(&a)) {
    items->push_back((*l->items)[i]);
    return PyValues{items};
  }
  py::gil_scoped_acquire gil;
  try {
    items->push_back(PyValue{make_ref(map_element(a, i))});
  } catch (py::error_already_set&) {
    return a;  // the run reports the error from element 0 of the whole value
  }
  return PyValues{items};
}

std::any map_gather(std::vector<std::any>& outs) {
  auto items = std::make_shared<std::vector<std::any>>(std::move(outs));
  return PyValues{items};
}

// A distributed map's chunk inputs (MapOps::encode_range / decode_input): the elements
// [begin, end) as one Python list through the serializer of the value mapped over (the
// upstream task's), and such bytes back as that list. Under `execute` the parent writes
// them to storage and the child run reads them.
std::function<std::string(const std::any&, size_t, size_t)> range_encoder(Ref serializer) {
  return [serializer](const std::any& in, size_t begin, size_t end) -> std::string {
    py::gil_scoped_acquire gil;
    try {
      py::list elements;
      for (size_t i = begin; i < end; ++i) elements.append(map_element(in, i));
      py::object b = get(serializer).attr("dumps")(elements);
      if (py::isinstance<py::str>(b)) return py::cast<std::string>(b);
      return py::cast<std::string>(py::bytes(b));
    } catch (py::error_already_set& e) {
      throw std::runtime_error("elements " + std::to_string(begin) + ".." + std::to_string(end - 1) +
                               " cannot be serialized for the workers: " + exception_message(e));
    }
  };
}

detail::AnyDecode range_decoder(Ref serializer) {
  return [serializer](std::string_view s, std::any& out) -> bool {
    py::gil_scoped_acquire gil;
    try {
      py::object o = get(serializer).attr("loads")(py::bytes(s.data(), s.size()));
      if (!py::isinstance<py::list>(o)) return false;
      out = PyValue{make_ref(o)};
      return true;
    } catch (py::error_already_set&) {
      return false;
    }
  };
}

// ---- events for hooks and retry_on ----

py::dict task_event(const TaskRunEvent& ev) {
  py::dict d;
  d["task"] = std::string(ev.task);
  d["map_index"] = ev.map_index;
  d["state"] = state_name(ev.state);
  d["attempt"] = ev.attempt;
  d["message"] = std::string(ev.message);
  return d;
}

std::function<void(const TaskRunEvent&)> task_hook(py::handle fn) {
  Ref f = make_ref(fn);
  return [f](const TaskRunEvent& ev) {
    py::gil_scoped_acquire gil;
    try {
      get(f)(task_event(ev));
    } catch (py::error_already_set& e) {
      throw std::runtime_error(exception_message(e));
    }
  };
}

std::function<void(const FlowRunEvent&)> flow_hook(py::handle fn) {
  Ref f = make_ref(fn);
  return [f](const FlowRunEvent& ev) {
    py::gil_scoped_acquire gil;
    try {
      py::dict d;
      d["flow"] = std::string(ev.flow);
      d["flow_run_id"] = std::string(ev.flow_run_id);
      d["state"] = state_name(ev.state);
      d["message"] = std::string(ev.message);
      get(f)(d);
    } catch (py::error_already_set& e) {
      PyErr_Clear();
    }
  };
}

Millis ms_of(py::handle v) { return Millis(py::cast<int64_t>(v)); }

Trigger trigger_of(const std::string& t) {
  static const std::map<std::string, Trigger> kTriggers = {
      {"all_successful", Trigger::kAllSuccessful}, {"all_finished", Trigger::kAllFinished},
      {"any_failed", Trigger::kAnyFailed},         {"all_failed", Trigger::kAllFailed},
      {"any_successful", Trigger::kAnySuccessful}};
  auto it = kTriggers.find(t);
  if (it == kTriggers.end())
    throw py::value_error("unknown trigger '" + t +
                          "' (all_successful, all_finished, any_failed, all_failed, any_successful)");
  return it->second;
}

EnvMap env_of(py::handle h) {
  EnvMap env;
  if (h.is_none()) return env;
  for (auto [k, v] : py::cast<py::dict>(h)) env[py::cast<std::string>(py::str(k))] = py::cast<std::string>(py::str(v));
  return env;
}
std::vector<std::string> strings_of(py::handle h) {
  if (h.is_none()) return {};
  return py::cast<std::vector<std::string>>(h);
}
std::string str_of(const py::dict& d, const char* key) {
  if (!d.contains(key) || d[key].is_none()) return {};
  return py::cast<std::string>(py::str(d[key]));
}

RunConfig run_config_of(const py::dict& d) {
  std::string type = str_of(d, "type");
  py::object none = py::none();
  auto field = [&](const char* k) -> py::object { return d.contains(k) ? py::object(d[k]) : none; };
  if (type == "local") {
    LocalRun r;
    r.env = env_of(field("env"));
    r.working_dir = str_of(d, "working_dir");
    r.labels = strings_of(field("labels"));
    return r;
  }
  if (type == "docker") {
    DockerRun r;
    r.image = str_of(d, "image");
    r.env = env_of(field("env"));
    r.network_mode = str_of(d, "network_mode");
    r.volumes = strings_of(field("volumes"));
    r.cpu = str_of(d, "cpu");
    r.memory = str_of(d, "memory");
    r.labels = strings_of(field("labels"));
    return r;
  }
  if (type == "ecs") {
    EcsRun r;
    r.image = str_of(d, "image");
    r.env = env_of(field("env"));
    r.cpu = str_of(d, "cpu");
    r.memory = str_of(d, "memory");
    r.task_role_arn = str_of(d, "task_role_arn");
    r.execution_role_arn = str_of(d, "execution_role_arn");
    r.cluster = str_of(d, "cluster");
    r.subnets = strings_of(field("subnets"));
    r.security_groups = strings_of(field("security_groups"));
    if (!field("assign_public_ip").is_none()) r.assign_public_ip = py::cast<bool>(field("assign_public_ip"));
    r.task_definition = str_of(d, "task_definition");
    r.run_task_kwargs = str_of(d, "run_task_kwargs");
    r.labels = strings_of(field("labels"));
    return r;
  }
  if (type == "slurm") {
    SlurmRun r;
    r.partition = str_of(d, "partition");
    if (!field("cpus").is_none()) r.cpus = py::cast<int>(field("cpus"));
    r.memory = str_of(d, "memory");
    r.time_limit = str_of(d, "time_limit");
    r.extra_options = strings_of(field("extra_options"));
    r.env = env_of(field("env"));
    r.labels = strings_of(field("labels"));
    return r;
  }
  throw py::value_error("unknown run config type '" + type + "' (local, docker, ecs, slurm)");
}

ScheduleSpec schedule_of(const py::dict& d) {
  std::map<std::string, std::string> params;
  if (d.contains("parameters") && !d["parameters"].is_none())
    for (auto [k, v] : py::cast<py::dict>(d["parameters"]))
      params[py::cast<std::string>(py::str(k))] = py::cast<std::string>(py::str(v));
  std::string catchup = d.contains("catchup") ? str_of(d, "catchup") : "skip";
  bool active = !d.contains("active") || py::cast<bool>(d["active"]);
  if (d.contains("cron")) {
    Cron c(str_of(d, "cron"), d.contains("timezone") ? str_of(d, "timezone") : "UTC");
    c.parameters = params;
    c.catchup = catchup;
    c.active = active;
    return c;
  }
  Interval iv(std::chrono::seconds(py::cast<int64_t>(d["interval_seconds"])));
  if (d.contains("anchor_unix") && !d["anchor_unix"].is_none())
    iv.anchor = std::chrono::system_clock::time_point(std::chrono::seconds(py::cast<int64_t>(d["anchor_unix"])));
  iv.parameters = params;
  iv.catchup = catchup;
  iv.active = active;
  return iv;
}

// Collects a run's events for the Python caller (flow.run()).
class Collector final : public RunObserver {
 public:
  void on_task_run(const TaskRunEvent& ev) override {
    std::lock_guard lk(mu_);
    events.push_back({std::string(ev.task), ev.map_index, ev.state, ev.attempt, std::string(ev.message)});
  }
  void on_log(const LogEvent& ev) override {
    std::lock_guard lk(mu_);
    logs.push_back({std::string(ev.task), ev.map_index, ev.level, std::string(ev.message)});
  }
  struct Ev {
    std::string task;
    int map_index;
    State state;
    int attempt;
    std::string message;
  };
  struct Log {
    std::string task;
    int map_index;
    LogLevel level;
    std::string message;
  };
  std::vector<Ev> events;
  std::vector<Log> logs;

 private:
  std::mutex mu_;
};

// flow.run(chunked=True): each distributed map runs chunk by chunk in this process, as
// its workers would under `execute`: the chunk's inputs encoded (the serializer of the
// value mapped over), run by Executor::run_chunk on an executor of its own, its outcomes
// encoded and decoded as storage would carry them. Used to check that a map's elements
// and results survive the trip before deploying it.
class ChunkedDistributor final : public MapDistributor {
 public:
  ChunkedDistributor(const Flow& flow, int workers, std::map<std::string, std::string> parameters,
                     RunObserver* observer)
      : flow_(flow), executor_(workers), parameters_(std::move(parameters)), forward_(observer) {}
  Result<std::vector<ElementOutcome>> run(const DistributedMapCall& call) override {
    std::vector<ElementOutcome> all;
    all.reserve(call.count);
    const size_t step = static_cast<size_t>(std::max(1, call.chunk_size));
    for (size_t b = 0; b < call.count; b += step) {
      if (call.cancelled()) return Status{StatusCode::kCancelled, "the run was cancelled"};
      const size_t e = std::min(call.count, b + step);
      ChunkSpec spec{call.task, b, call.encode_inputs(b, e)};  // a serializer's error: the engine fails the map
      RunOptions opts;
      opts.flow_run_id = call.flow_run_id;
      opts.parameters = parameters_;
      opts.observers.push_back(&forward_);
      auto r = executor_.run_chunk(flow_, spec, opts);
      if (!r) return r.status();
      auto decoded = decode_chunk_outcomes(encode_chunk_outcomes(r->outcomes), e - b);
      if (!decoded) return decoded.status();
      for (auto& o : *decoded) {
        o.reported = false;  // the run reports each element's final state, into its summary too
        all.push_back(std::move(o));
      }
    }
    return all;
  }

 private:
  const Flow& flow_;
  Executor executor_;
  // The chunk's logs and its elements' states before their last, to the run's observer.
  class Forward final : public RunObserver {
   public:
    explicit Forward(RunObserver* to) : to_(to) {}
    void on_task_run(const TaskRunEvent& ev) override {
      if (to_ != nullptr && !is_final(ev.state)) to_->on_task_run(ev);
    }
    void on_log(const LogEvent& ev) override {
      if (to_ != nullptr) to_->on_log(ev);
    }

   private:
    RunObserver* to_;
  };
  std::map<std::string, std::string> parameters_;
  Forward forward_;
};

struct PyRun;

// A flow being built from Python, and the engine's Flow it becomes.
class PyFlow {
 public:
  explicit PyFlow(std::string name) : flow_(std::move(name)) {}

  uint32_t add_param(const std::string& name, const std::string& type, py::object default_value) {
    const bool has = !default_value.is_none();
    if (type == "int")
      return DynamicFlow::add_param<int64_t>(flow_, name, has ? std::optional<int64_t>(py::cast<int64_t>(default_value)) : std::nullopt);
    if (type == "float")
      return DynamicFlow::add_param<double>(flow_, name, has ? std::optional<double>(py::cast<double>(default_value)) : std::nullopt);
    if (type == "bool")
      return DynamicFlow::add_param<bool>(flow_, name, has ? std::optional<bool>(py::cast<bool>(default_value)) : std::nullopt);
    if (type == "string")
      return DynamicFlow::add_param<std::string>(flow_, name, has ? std::optional<std::string>(py::cast<std::string>(default_value)) : std::nullopt);
    throw py::value_error("parameter '" + name + "': unknown type '" + type + "'");
  }

  // inputs: [(index, is_param)]; fn(*values) -> value.
  uint32_t add_task(const std::string& name, py::object fn, const std::vector<std::pair<uint32_t, bool>>& inputs,
                    py::object serializer) {
    Ref f = make_ref(fn);
    Ref ser = make_ref(serializer);
    std::vector<InputRef> refs;
    std::vector<detail::AnyEncode> encoders;
    for (const auto& [i, is_param] : inputs) {
      refs.push_back({i, is_param});
      encoders.push_back(input_encoder(i, is_param));
    }
    const size_t n = inputs.size();
    detail::Body body = [f, n](TaskContext& ctx, const std::any* const* in, std::any& out) {
      call_task(ctx, [&] {
        py::tuple args(n);
        for (size_t i = 0; i < n; ++i) args[i] = to_py(*in[i]);
        return get(f)(*args);
      }, out);
    };
    uint32_t idx = DynamicFlow::add_task(flow_, name, std::move(body), std::move(refs), std::move(encoders), value_ops(ser));
    DynamicFlow::set_code_kind(flow_, idx, "python");
    serializers_.resize(idx + 1);
    serializers_[idx] = ser;
    return idx;
  }

  uint32_t add_map(const std::string& name, py::object fn, uint32_t input, bool is_param, py::object serializer) {
    Ref f = make_ref(fn);
    Ref ser = make_ref(serializer);
    detail::MapOps ops;
    ops.size = &map_size;
    ops.slice = &map_slice;
    ops.gather = &map_gather;
    ops.body = [f](TaskContext& ctx, const std::any& in, size_t i, std::any& out) {
      call_task(ctx, [&] { return get(f)(map_element(in, i)); }, out);
    };
    // The elements travel through the serializer of the value mapped over (a parameter
    // has none: the map's own; such a map cannot be chunked, which run_chunk reports).
    Ref elements = (!is_param && input < serializers_.size() && serializers_[input]) ? serializers_[input] : ser;
    ops.encode_range = range_encoder(elements);
    ops.decode_input = range_decoder(elements);
    uint32_t idx = DynamicFlow::add_map(flow_, name, std::move(ops), {input, is_param}, input_encoder(input, is_param),
                                        value_ops(ser));
    DynamicFlow::set_code_kind(flow_, idx, "python");
    serializers_.resize(idx + 1);
    serializers_[idx] = ser;
    return idx;
  }

  uint32_t add_shell(const std::string& name, const std::string& command) {
    ShellTask t = flow_.shell(name, command);
    serializers_.resize(t.index() + 1);
    return t.index();
  }

  void set_task_options(uint32_t index, const py::dict& o) {
    auto h = DynamicFlow::handle(flow_, index);
    if (o.contains("retries"))
      h.set_retries(py::cast<int>(o["retries"]), o.contains("retry_delay_ms") ? ms_of(o["retry_delay_ms"]) : Millis(0));
    if (o.contains("backoff"))
      h.set_backoff(py::cast<double>(o["backoff"]), o.contains("max_delay_ms") ? ms_of(o["max_delay_ms"]) : Millis(0));
    if (o.contains("jitter")) h.set_jitter(py::cast<double>(o["jitter"]));
    if (o.contains("retry_on")) {
      Ref f = make_ref(o["retry_on"]);
      h.set_retry_on([f](const TaskFailure& failure) {
        py::gil_scoped_acquire gil;
        try {
          py::dict d;
          d["state"] = state_name(failure.state);
          d["message"] = failure.message;
          d["exit_code"] = failure.exit_code;
          d["attempt"] = failure.attempt;
          return py::cast<bool>(get(f)(d));
        } catch (py::error_already_set& e) {
          throw std::runtime_error(exception_message(e));
        }
      });
    }
    if (o.contains("timeout_ms")) h.set_timeout(ms_of(o["timeout_ms"]));
    if (o.contains("grace_ms")) h.set_kill_grace(ms_of(o["grace_ms"]));
    if (o.contains("trigger")) h.set_trigger(trigger_of(py::cast<std::string>(o["trigger"])));
    if (o.contains("after"))
      for (auto a : o["after"]) h.add_after(DynamicFlow::handle(flow_, py::cast<uint32_t>(a)));
    if (o.contains("tags")) h.set_tags(strings_of(o["tags"]));
    if (o.contains("reference")) h.set_reference(py::cast<bool>(o["reference"]));
    if (o.contains("cache_for_ms")) h.set_cache_for(ms_of(o["cache_for_ms"]));
    if (o.contains("cache_key")) {
      Ref f = make_ref(o["cache_key"]);
      h.set_cache_key([f](const CacheKeyContext& c) {
        py::gil_scoped_acquire gil;
        try {
          py::dict d;
          d["flow_name"] = std::string(c.flow_name);
          d["task_name"] = std::string(c.task_name);
          d["map_index"] = c.map_index;
          d["inputs_digest"] = std::string(c.inputs_digest);
          d["parameters"] = c.parameters != nullptr ? *c.parameters : std::map<std::string, std::string>{};
          return py::cast<std::string>(py::str(get(f)(d)));
        } catch (py::error_already_set& e) {
          throw std::runtime_error(exception_message(e));
        }
      });
    }
    if (o.contains("result")) h.set_result(py::cast<std::string>(o["result"]));
    if (o.contains("target")) h.set_target(py::cast<std::string>(o["target"]));
    if (o.contains("on_state_change"))
      for (auto f : o["on_state_change"]) h.add_on_state_change(task_hook(f));
    if (o.contains("on_failure"))
      for (auto f : o["on_failure"]) h.add_on_failure(task_hook(f));
    if (o.contains("env"))
      for (const auto& [k, v] : env_of(o["env"])) h.set_env(k, v);
    if (o.contains("working_dir")) h.set_working_dir(py::cast<std::string>(o["working_dir"]));
    if (o.contains("distributed")) {
      py::dict d = py::cast<py::dict>(o["distributed"]);
      Distributed dist;
      dist.max_workers = py::cast<int>(d["max_workers"]);
      if (d.contains("chunk_size") && !d["chunk_size"].is_none()) dist.chunk_size = py::cast<int>(d["chunk_size"]);
      dist.storage = str_of(d, "storage");
      if (d.contains("run_config") && !d["run_config"].is_none())
        dist.run_config = run_config_of(py::cast<py::dict>(d["run_config"]));
      h.set_distributed(std::move(dist));
    }
  }

  void set_flow_options(const py::dict& o) {
    if (o.contains("description")) flow_.description(py::cast<std::string>(o["description"]));
    if (o.contains("storage")) flow_.storage(py::cast<std::string>(o["storage"]));
    if (o.contains("run_config")) flow_.run_config(run_config_of(py::cast<py::dict>(o["run_config"])));
    if (o.contains("schedule")) flow_.schedule(schedule_of(py::cast<py::dict>(o["schedule"])));
    if (o.contains("max_run_retries")) flow_.max_run_retries(py::cast<int>(o["max_run_retries"]));
    if (o.contains("concurrency_limits"))
      for (auto [k, v] : py::cast<py::dict>(o["concurrency_limits"]))
        flow_.concurrency_limit(py::cast<std::string>(k), py::cast<int>(v));
    if (o.contains("cache_storage")) flow_.cache_storage(py::cast<std::string>(o["cache_storage"]));
    if (o.contains("result_storage")) flow_.result_storage(py::cast<std::string>(o["result_storage"]));
    if (o.contains("on_state_change"))
      for (auto f : o["on_state_change"]) flow_.on_state_change(flow_hook(f));
    if (o.contains("on_failure"))
      for (auto f : o["on_failure"]) flow_.on_failure(flow_hook(f));
  }

  // The engine's definition errors, its advice in the Python SDK's words.
  std::string validate() const {
    Status s = flow_.validate();
    if (s.is_ok()) return {};
    std::string msg = s.message();
    static const std::string kCpp =
        "give the flow .result_storage(\"s3://bucket/prefix\") (or file:///dir on a shared file system), "
        "or the task .distributed({.storage = ...})";
    static const std::string kPy =
        "give the flow result_storage=\"s3://bucket/prefix\" (or file:///dir on a shared file system): "
        "culvert.Flow(name, result_storage=...), or the map storage=...: task.map(items, workers=N, storage=...)";
    for (size_t at = msg.find(kCpp); at != std::string::npos; at = msg.find(kCpp, at + kPy.size()))
      msg.replace(at, kCpp.size(), kPy);
    return msg;
  }
  std::string describe_json() const { return flow_.describe_json(); }
  std::string graph_dot() const { return flow_.graph_dot(); }

  std::unique_ptr<PyRun> run(const std::map<std::string, std::string>& parameters, int workers,
                                    const std::string& flow_run_id, ManualClock* clock,
                                    const std::string& cache_storage, bool chunked);

  int register_main(const std::string& describe_json, const std::string& artifact_path,
                    const std::vector<std::string>& args) {
    py::gil_scoped_release nogil;
    return runtime::register_command_main(flow_, describe_json, artifact_path, args);
  }

  int main(const std::vector<std::string>& args) {
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    py::gil_scoped_release nogil;
    return culvert::main(flow_, static_cast<int>(copy.size()), argv.data());
  }

 private:
  // The encoder of an input for cache keys: the parameter's codec, or the upstream
  // task's serializer.
  detail::AnyEncode input_encoder(uint32_t index, bool is_param) {
    if (is_param) {
      return [](const std::any& a) -> std::string {
        if (const auto* i = std::any_cast<int64_t>(&a)) return Codec<int64_t>::encode(*i);
        if (const auto* d = std::any_cast<double>(&a)) return Codec<double>::encode(*d);
        if (const auto* b = std::any_cast<bool>(&a)) return Codec<bool>::encode(*b);
        if (const auto* s = std::any_cast<std::string>(&a)) return *s;
        return {};
      };
    }
    if (index >= serializers_.size() || !serializers_[index]) return nullptr;  // a command task: no value
    Ref ser = serializers_[index];
    auto one = value_encoder(ser);
    return [one](const std::any& a) -> std::string {
      if (const auto* l = std::any_cast<PyValues>(&a)) {
        std::string out;
        for (const auto& e : *l->items) detail::put_item(out, one(e));
        return out;
      }
      return one(a);
    };
  }

  Flow flow_;
  std::vector<Ref> serializers_;  // by task index; empty for command tasks
};

// The outcome of one flow.run(): the engine's RunResult and the events collected,
// turned into Python objects only when asked for (a run of 10,000 tasks should not pay
// for 10,000 dictionaries nobody reads).
struct PyRun {
  RunResult result;
  Collector collector;

  py::list task_runs() const {
    py::list runs;
    for (const auto& t : result.task_runs) {
      py::dict d;
      d["task"] = t.task;
      d["map_index"] = t.map_index;
      d["state"] = state_name(t.state);
      d["attempts"] = t.attempts;
      d["message"] = t.message;
      runs.append(d);
    }
    return runs;
  }
  py::list events() const {
    py::list out;
    for (const auto& e : collector.events)
      out.append(py::make_tuple(e.task, e.map_index, state_name(e.state), e.attempt, e.message));
    return out;
  }
  py::list logs() const {
    py::list out;
    for (const auto& l : collector.logs) out.append(py::make_tuple(l.task, l.map_index, log_level_name(l.level), l.message));
    return out;
  }
  py::object value(size_t i) const {
    if (i >= result.values.size()) throw py::index_error("no task " + std::to_string(i));
    return to_py(result.values[i]);
  }
};

std::unique_ptr<PyRun> PyFlow::run(const std::map<std::string, std::string>& parameters, int workers,
                                   const std::string& flow_run_id, ManualClock* clock,
                                   const std::string& cache_storage, bool chunked) {
  auto out = std::make_unique<PyRun>();
  RunOptions opts;
  opts.parameters = parameters;
  opts.flow_run_id = flow_run_id;
  opts.clock = clock;
  opts.cache_storage = cache_storage;
  opts.observers.push_back(&out->collector);
  Result<RunResult> r = invalid_argument("not run");
  {
    py::gil_scoped_release nogil;
    std::optional<ChunkedDistributor> distributor;
    if (chunked) {
      distributor.emplace(flow_, workers, parameters, &out->collector);
      opts.distributor = &*distributor;
    }
    Executor ex(workers);
    r = ex.run(flow_, opts);
  }
  if (!r) throw py::value_error(r.status().message());
  out->result = std::move(*r);
  return out;
}

// The current task run's context, or an error when this thread runs no task.
TaskContext& current() {
  if (t_ctx == nullptr) throw py::value_error("culvert.context() is only available inside a running task");
  return *t_ctx;
}

}  // namespace
}  // namespace culvert::python

PYBIND11_MODULE(_culvert, m) {
  using namespace culvert;
  using namespace culvert::python;
  m.doc() = "The C++ engine and runtime behind the culvert package.";

  py::class_<ManualClock>(m, "ManualClock")
      .def(py::init<>())
      .def("advance", [](ManualClock& c, double seconds) {
        c.advance(std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9)));
      })
      .def("now", [](const ManualClock& c) {
        return std::chrono::duration<double>(c.now().time_since_epoch()).count();
      });

  py::class_<PyRun>(m, "Run")
      .def_property_readonly("state", [](const PyRun& r) { return std::string(state_name(r.result.state)); })
      .def_property_readonly("message", [](const PyRun& r) { return r.result.message; })
      .def_property_readonly("flow_run_id", [](const PyRun& r) { return r.result.flow_run_id; })
      .def("task_runs", &PyRun::task_runs)
      .def("events", &PyRun::events)
      .def("logs", &PyRun::logs)
      .def("value", &PyRun::value)
      .def("json", [](const PyRun& r) { return r.result.to_json(); });

  py::class_<PyFlow>(m, "Flow")
      .def(py::init<std::string>())
      .def("add_param", &PyFlow::add_param)
      .def("add_task", &PyFlow::add_task)
      .def("add_map", &PyFlow::add_map)
      .def("add_shell", &PyFlow::add_shell)
      .def("set_task_options", &PyFlow::set_task_options)
      .def("set_flow_options", &PyFlow::set_flow_options)
      .def("validate", &PyFlow::validate)
      .def("describe_json", &PyFlow::describe_json)
      .def("graph_dot", &PyFlow::graph_dot)
      .def("run", &PyFlow::run, py::arg("parameters"), py::arg("workers"), py::arg("flow_run_id"),
           py::arg("clock").none(true), py::arg("cache_storage"), py::arg("chunked") = false)
      .def("main", &PyFlow::main)
      .def("register_main", &PyFlow::register_main);

  m.def("set_skip_type", [](py::object t) {
    static py::object held;
    held = t;
    g_skip_type = &held;
  });



  // Log lines of the current task run (print, logging): false when this thread runs none.
  m.def("log", [](int level, const std::string& text) {
    if (t_ctx == nullptr) return false;
    LogLevel l = level >= 40 ? LogLevel::kError : level >= 30 ? LogLevel::kWarning
               : level >= 20 ? LogLevel::kInfo : LogLevel::kDebug;
    t_ctx->log(l, text);
    return true;
  });
  // print() inside a task (stream 0: stdout at INFO, 1: stderr at WARNING); false when
  // this thread runs none.
  m.def("write", [](int stream, const std::string& text) {
    if (t_ctx == nullptr) return false;
    write_stream(*t_ctx, stream == 0 ? 0 : 1, text);
    return true;
  });
  m.def("flush_cout", [] { std::cout.flush(); });
  m.def("in_task", [] { return t_ctx != nullptr; });
  m.def("running_tasks", [] { return g_running.load(); });
  m.def("task_info", [] {
    TaskContext& c = current();
    py::dict d;
    d["task_name"] = c.task_name();
    d["map_index"] = c.map_index();
    d["attempt"] = c.attempt();
    d["flow_name"] = c.flow_name();
    d["flow_run_id"] = c.flow_run_id();
    return d;
  });
  m.def("cancelled", [] { return current().cancelled(); });
  m.def("parameter", [](const std::string& name) { return current().parameter(name); });
  // Sleeps on the run's clock (simulated in tests) in steps, returning early (false)
  // when the task run is cancelled or past its timeout.
  m.def("sleep", [](double seconds) {
    TaskContext& c = current();
    py::gil_scoped_release nogil;
    Clock& clock = c.clock();
    const SteadyTime end = clock.steady_now() + std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
    for (;;) {
      if (c.cancelled()) return false;
      SteadyTime now = clock.steady_now();
      if (now >= end) return true;
      clock.sleep_for(std::min<std::chrono::nanoseconds>(end - now, std::chrono::milliseconds(50)));
    }
  });
}
