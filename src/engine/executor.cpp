// The executor: runs a flow's task graph (see run_core.hpp for the threading model).
#include <culvert/executor.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <signal.h>
#include <thread>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "engine/json_writer.hpp"
#include "engine/run_core.hpp"
#include "engine/summary.hpp"

namespace culvert {

using detail::FlowImpl;
using detail::Node;
using detail::NodeKind;
using detail::NodeOptions;
using detail::NodeRt;
using detail::RunCore;
using detail::TaskRunRt;

// ---- TaskContext ----

// An attempt on its own thread (attempt_ set) answers its identity from copies and
// reaches the run only while the worker still waits for it.
const std::string& TaskContext::task_name() const {
  return attempt_ ? attempt_->task_name : run_->flow.nodes[tr_->node].name;
}
int TaskContext::map_index() const { return attempt_ ? attempt_->map_index : tr_->map_index; }
int TaskContext::attempt() const { return attempt_ ? attempt_->attempt : tr_->attempts; }
const std::string& TaskContext::flow_name() const { return attempt_ ? attempt_->flow_name : run_->flow.name; }
const std::string& TaskContext::flow_run_id() const {
  return attempt_ ? attempt_->flow_run_id : run_->flow_run_id;
}
Clock& TaskContext::clock() const { return attempt_ ? *attempt_->clock : run_->clock; }
std::string TaskContext::parameter(std::string_view name) const {
  std::unique_lock<std::mutex> lk;
  if (attempt_) {
    lk = std::unique_lock(attempt_->mu);
    if (attempt_->abandoned) return {};
  }
  auto it = run_->param_text.find(std::string(name));
  return it == run_->param_text.end() ? std::string() : it->second;
}
void TaskContext::log(LogLevel level, std::string_view message) {
  std::unique_lock<std::mutex> lk;
  if (attempt_) {
    lk = std::unique_lock(attempt_->mu);
    if (attempt_->abandoned) return;
  }
  run_->log(tr_, level, message);
}


namespace detail {

RunCore::RunCore(const FlowImpl& f, const RunOptions& o, Clock& c, Random& r, std::vector<std::any> p,
                 std::map<std::string, std::string> pt, Pool* pool)
    : flow(f),
      plan(f.cached_plan()),
      opts(o),
      clock(c),
      random(r),
      cancel(o.cancel),
      flow_run_id(o.flow_run_id.empty() ? new_uuid() : o.flow_run_id),
      params(std::move(p)),
      param_text(std::move(pt)),
      pool_(pool) {
  date = format_rfc3339(clock.now()).substr(0, 10);
  observers = o.observers;
  const uint32_t n = static_cast<uint32_t>(flow.nodes.size());
  nodes = std::make_unique<NodeRt[]>(n);
  runs.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    runs[i].node = i;
    nodes[i].pending.store(static_cast<uint32_t>(plan.upstream_count(i)), std::memory_order_relaxed);
  }
  nodes_left_.store(n);
  for (const auto& [tag, limit] : flow.concurrency_limits) tags_[tag].limit = limit;
  has_limits_ = !tags_.empty();
  launcher_ = o.process_launcher != nullptr ? o.process_launcher : &default_process_launcher();
  distributor_ = o.distributor;
  if (!o.cache_storage.empty()) {
    cache_base_ = o.cache_storage;
  } else if (!flow.cache_storage.empty()) {
    cache_base_ = flow.cache_storage;
  } else if (const char* e = std::getenv("CULVERT_CACHE_URI"); e != nullptr && *e != '\0') {
    cache_base_ = e;
  } else {
    const char* home = std::getenv("HOME");
    cache_base_ = std::string("file://") + (home != nullptr ? home : "/tmp") + "/.culvert/cache";
  }
}


}  // namespace detail

// ---- Executor ----

Executor::Executor(int workers) : workers_(workers < 1 ? 1 : workers) {
  if (workers_ > 1) pool_ = std::make_unique<detail::Pool>(workers_);
}
Executor::~Executor() = default;

namespace {

struct Parameters {
  std::vector<std::any> values;
  std::map<std::string, std::string> text;
};

// The run's parameter values, parsed by each parameter's type, defaults filled in.
Result<Parameters> parse_parameters(const FlowImpl& f, const std::map<std::string, std::string>& given) {
  Parameters out;
  out.values.resize(f.params.size());
  for (const auto& [name, value] : given) {
    bool known = false;
    for (const auto& p : f.params) known |= p.name == name;
    if (!known) {
      std::string names;
      for (const auto& p : f.params) names += (names.empty() ? "" : ", ") + p.name;
      return invalid_argument("unknown parameter '" + name + "'" +
                              (names.empty() ? " (the flow has no parameters)" : " (known: " + names + ")"));
    }
  }
  for (size_t i = 0; i < f.params.size(); ++i) {
    const auto& p = f.params[i];
    auto it = given.find(p.name);
    if (it != given.end()) {
      if (!p.parse(it->second, out.values[i]))
        return invalid_argument("parameter '" + p.name + "' expects " + (p.type[0] == 'i' ? "an " : "a ") + p.type +
                                ", got '" + it->second + "'");
      out.text[p.name] = it->second;
    } else if (p.default_text) {
      out.values[i] = p.default_value;
      out.text[p.name] = *p.default_text;
    } else {
      return invalid_argument("missing required parameter '" + p.name + "' (" + p.type + "); give it with --param " +
                              p.name + "=VALUE");
    }
  }
  return out;
}

// Records each element's final state and message in chunk mode (slot map_index - start;
// each slot is written by the one thread that runs that element).
class ChunkObserver final : public RunObserver {
 public:
  ChunkObserver(uint32_t node, size_t start, size_t count) : node_(node), start_(start), slots_(count) {}
  void on_task_run(const TaskRunEvent& ev) override {
    if (ev.task_index != node_ || ev.map_index < 0) return;
    size_t i = static_cast<size_t>(ev.map_index) - start_;
    if (i >= slots_.size() || !is_final(ev.state)) return;
    slots_[i].assign(ev.message);
  }
  std::string& message(size_t i) { return slots_[i]; }

 private:
  uint32_t node_;
  size_t start_;
  std::vector<std::string> slots_;
};

}  // namespace

Result<ChunkResult> Executor::run_chunk(const Flow& flow, const ChunkSpec& chunk, const RunOptions& options) {
  const FlowImpl& f = detail::FlowAccess::of(flow);
  if (Status s = f.validate(); !s) return s;
  auto params = parse_parameters(f, options.parameters);
  if (!params) return params.status();
  uint32_t idx = 0;
  while (idx < f.nodes.size() && f.nodes[idx].name != chunk.task) ++idx;
  if (idx == f.nodes.size()) return not_found("flow '" + f.name + "' has no task '" + chunk.task + "'");
  const Node& node = f.nodes[idx];
  if (node.kind != NodeKind::kMap || !node.opt || !node.opt->distributed)
    return invalid_argument("task '" + chunk.task + "' of flow '" + f.name + "' is not a distributed map");
  const auto& up = node.inputs[0];
  if (up.is_param) return invalid_argument("task '" + chunk.task + "' maps over a parameter, which cannot be chunked");
  std::any input;
  if (!node.map->decode_input(chunk.inputs, input))
    return invalid_argument("the chunk's inputs do not decode as elements of task '" + chunk.task +
                            "' (were they written by another version of the flow?)");
  const size_t count = node.map->size(input);
  if (chunk.start + count > static_cast<size_t>(INT32_MAX))
    return invalid_argument("the chunk's map indexes pass the highest one");

  std::lock_guard run_lock(run_mu_);
  Clock& clock = options.clock != nullptr ? *options.clock : system_clock();
  SecureRandom secure;
  Random& random = options.random != nullptr ? *options.random : static_cast<Random&>(secure);
  ChunkObserver messages(idx, chunk.start, count);
  RunOptions opts = options;
  opts.distributor = nullptr;
  opts.observers.insert(opts.observers.begin(), &messages);
  detail::RunCore core(f, opts, clock, random, std::move(params->values), std::move(params->text), pool_.get());
  core.nodes[up.index].value = std::move(input);
  if (pool_) pool_->set_handler(&core);
  core.run_chunk(idx, chunk.start, count);
  if (pool_) pool_->set_handler(nullptr);

  ChunkResult result;
  result.outcomes.resize(count);
  const NodeRt& nr = core.nodes[idx];
  for (size_t i = 0; i < count; ++i) {
    const TaskRunRt& tr = nr.children[i];
    ElementOutcome& o = result.outcomes[i];
    o.state = tr.state;
    o.attempts = tr.attempts;
    o.message = std::move(messages.message(i));
    if (node.ops.has_value && node.ops.encode != nullptr && tr.out.has_value() && tr.state != State::kSkipped &&
        is_successful(tr.state))
      o.value = node.ops.encode(tr.out);
    if (result.state == State::kSuccess && !is_successful(tr.state)) {
      result.state = tr.state == State::kCancelled ? State::kCancelled : State::kFailed;
      result.message = "task run [" + std::to_string(chunk.start + i) + "] ended " + state_name(tr.state) +
                       (o.message.empty() ? "" : ": " + o.message);
    }
  }
  if (result.state == State::kSuccess)
    result.message = "elements " + std::to_string(chunk.start) + ".." + std::to_string(chunk.start + count) +
                     " of task '" + chunk.task + "' succeeded";
  return result;
}

Result<RunResult> Executor::run(const Flow& flow, const RunOptions& options) {
  const FlowImpl& f = detail::FlowAccess::of(flow);
  if (Status s = f.validate(); !s) return s;
  auto parsed = parse_parameters(f, options.parameters);
  if (!parsed) return parsed.status();
  std::vector<std::any> params = std::move(parsed->values);
  std::map<std::string, std::string> text = std::move(parsed->text);

  std::lock_guard run_lock(run_mu_);
  Clock& clock = options.clock != nullptr ? *options.clock : system_clock();
  SecureRandom secure;
  Random& random = options.random != nullptr ? *options.random : static_cast<Random&>(secure);

  detail::SummaryObserver summary;
  RunOptions opts = options;
  opts.observers.insert(opts.observers.begin(), &summary);
  detail::RunCore core(f, opts, clock, random, std::move(params), std::move(text), pool_.get());

  auto flow_event = [&](State st, const std::string& msg) {
    FlowRunEvent ev{f.name, core.flow_run_id, st, msg, clock.now()};
    for (auto* o : opts.observers) o->on_flow_run(ev);
    for (const auto& h : f.on_state_change) {
      try { h(ev); } catch (...) {}
    }
    if (st == State::kFailed) {
      for (const auto& h : f.on_failure) {
        try { h(ev); } catch (...) {}
      }
    }
  };
  RunStartEvent start{f.name, core.flow_run_id, static_cast<uint32_t>(f.nodes.size()), clock.now()};
  for (auto* o : opts.observers) o->on_run_start(start);
  flow_event(State::kRunning, "");

  if (pool_) pool_->set_handler(&core);
  core.run();
  if (pool_) pool_->set_handler(nullptr);

  // Final state: reference tasks (default: terminal tasks) decide.
  RunResult result;
  result.flow = f.name;
  result.flow_run_id = core.flow_run_id;
  if (options.cancel != nullptr && options.cancel->cancelled()) {
    result.state = State::kCancelled;
    result.message = "the flow run was cancelled";
  } else {
    bool any_reference = false;
    for (const auto& n : f.nodes) any_reference |= n.reference;
    result.state = State::kSuccess;
    for (uint32_t i = 0; i < f.nodes.size(); ++i) {
      bool ref = any_reference ? f.nodes[i].reference : core.plan.terminal[i] != 0;
      State st = core.nodes[i].state;
      if (ref && (is_failure(st) || st == State::kCancelled)) {
        result.state = State::kFailed;
        result.message = "reference task '" + f.nodes[i].name + "' ended " + state_name(st);
        if (!core.nodes[i].message.empty()) result.message += ": " + core.nodes[i].message;
        break;
      }
    }
    if (result.state == State::kSuccess) result.message = "all reference tasks succeeded";
  }
  flow_event(result.state, result.message);
  result.task_runs = summary.take(f);
  result.values.resize(f.nodes.size());
  for (uint32_t i = 0; i < f.nodes.size(); ++i) result.values[i] = std::move(core.nodes[i].value);
  return result;
}


}  // namespace culvert
