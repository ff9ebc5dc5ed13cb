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

namespace {

// A command that exited with a non-zero status.
class CommandFailed : public std::runtime_error {
 public:
  CommandFailed(int code, const std::string& what) : std::runtime_error(what), code(code) {}
  int code;
};

std::string format_millis(Millis d) {
  auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

thread_local std::vector<uint32_t> tls_stack;

}  // namespace

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

void RunCore::schedule(TaskRunRt* tr) {
  if (pool_ != nullptr) pool_->push(tr);
  else local_queue_.push_back(tr);
}

void RunCore::run_item(void* item) {
  auto* tr = static_cast<TaskRunRt*>(item);
  while (tr != nullptr) tr = execute(tr);
}

void RunCore::run() {
  const uint32_t n = static_cast<uint32_t>(flow.nodes.size());
  if (n == 0) return;
  std::vector<uint32_t> stack;
  TaskRunRt* cont = nullptr;
  for (uint32_t i = 0; i < n; ++i) {
    if (plan.upstream_count(i) == 0) ready(i, stack, cont);
  }
  if (cont != nullptr) schedule(cont);
  // Nodes resolved without running (a cancelled run, an empty map) complete here.
  for (uint32_t s : stack) {
    TaskRunRt* c = complete(s);
    if (c != nullptr) schedule(c);
  }
  if (pool_ == nullptr) {
    while (!local_queue_.empty()) {
      TaskRunRt* tr = local_queue_.front();
      local_queue_.pop_front();
      while (tr != nullptr) tr = execute(tr);
    }
    return;
  }
  std::unique_lock lk(done_mu_);
  done_cv_.wait(lk, [&] { return done_; });
}

TaskRunRt* RunCore::execute(TaskRunRt* tr) {
  const Node& node = flow.nodes[tr->node];
  const NodeOptions* o = node.opt.get();
  if (cancelled()) {
    finalize(tr, State::kCancelled, "the flow run was cancelled");
    return after_finish(tr);
  }
  const bool limited = has_limits_ && o != nullptr && !o->tags.empty();
  if (limited && !acquire_tags(tr, *o)) return nullptr;  // parked until a slot frees
  run_attempts(tr, node);
  if (limited) release_tags(*o);
  return after_finish(tr);
}

void RunCore::run_attempts(TaskRunRt* tr, const Node& node) {
  const NodeOptions* o = node.opt.get();
  if (o != nullptr && (!o->target_uri.empty() || o->cache_for.count() > 0)) {
    if (try_cached(tr, node)) return;
  }
  for (;;) {
    ++tr->attempts;
    emit(tr, State::kRunning, {});
    SteadyTime deadline = SteadyTime::max();
    if (o != nullptr && o->timeout.count() > 0) deadline = clock.steady_now() + o->timeout;
    // A C++ task with a timeout runs on its own thread, so that one ignoring its token
    // can be given up (see run_guarded); its token reads flags the attempt owns.
    std::shared_ptr<AttemptState> guarded;
    if (deadline != SteadyTime::max() && node.kind != NodeKind::kShell) guarded = std::make_shared<AttemptState>();
    CancellationToken token = guarded ? CancellationToken(&guarded->run_cancelled, &clock, deadline, &guarded->expired)
                                      : CancellationToken(cancel != nullptr ? cancel->flag() : nullptr, &clock, deadline);
    TaskContext ctx(this, tr, token, guarded);
    TaskFailure failure;
    failure.attempt = tr->attempts;
    bool ok = false;
    try {
      if (guarded) run_guarded(tr, node, ctx, *guarded, guarded, deadline, o->kill_grace);
      else invoke(tr, node, ctx);
      ok = true;
    } catch (const SkipTask& e) {
      tr->out.reset();
      finalize(tr, State::kSkipped, e.what());
      return;
    } catch (const CommandFailed& e) {
      failure.message = e.what();
      failure.exit_code = e.code;
    } catch (const std::exception& e) {
      failure.message = e.what();
    } catch (...) {
      failure.message = "unknown exception";
    }
    // A guarded attempt timed out if it was abandoned or returned past its deadline.
    const bool timed_out = guarded ? guarded->late : token.timed_out();
    const bool run_cancelled = token.run_cancelled();
    if (ok && !timed_out && !run_cancelled) {
      Status st = persist(tr, node);
      if (st.is_ok()) {
        finalize(tr, State::kSuccess, {});
        return;
      }
      failure.message = "could not persist the result: " + st.message();
    }
    tr->out.reset();
    if (timed_out) {
      failure.state = State::kTimedOut;
      std::string what = "timed out after " + format_millis(o->timeout);
      if (!failure.message.empty() && !ok) what += ": " + failure.message;
      failure.message = std::move(what);
    } else if (run_cancelled) {
      finalize(tr, State::kCancelled,
               failure.message.empty() ? "the flow run was cancelled" : "the flow run was cancelled: " + failure.message);
      return;
    }
    bool retry = o != nullptr && tr->attempts <= o->retries && !cancelled();
    if (retry && o->retry_on) {
      try {
        retry = o->retry_on(failure);
      } catch (...) {
        retry = false;
      }
    }
    if (!retry) {
      finalize(tr, failure.state, failure.message);
      return;
    }
    Millis delay = retry_delay(*o, tr->attempts);
    emit(tr, State::kRetrying,
         failure.message + " (retry " + std::to_string(tr->attempts) + "/" + std::to_string(o->retries) +
             " in " + format_millis(delay) + ")",
         delay);
    if (!wait_cancellable(delay)) {
      finalize(tr, State::kCancelled, "the flow run was cancelled");
      return;
    }
  }
}

Millis RunCore::retry_delay(const NodeOptions& o, int attempt) {
  double d = static_cast<double>(o.retry_delay.count()) * std::pow(o.backoff, attempt - 1);
  if (o.max_delay.count() > 0) d = std::min(d, static_cast<double>(o.max_delay.count()));
  if (o.jitter > 0) {
    double u;
    {
      std::lock_guard lk(random_mu_);
      u = random.uniform01();
    }
    d *= 1.0 - o.jitter * u;
  }
  return Millis(static_cast<int64_t>(d));
}

bool RunCore::wait_cancellable(Millis delay) {
  const SteadyTime end = clock.steady_now() + delay;
  for (;;) {
    if (cancelled()) return false;
    SteadyTime now = clock.steady_now();
    if (now >= end) return true;
    clock.sleep_for(std::min<std::chrono::nanoseconds>(end - now, Millis(50)));
  }
}

void RunCore::invoke(TaskRunRt* tr, const Node& node, TaskContext& ctx) {
  switch (node.kind) {
    case NodeKind::kCpp: {
      const size_t n = node.inputs.size();
      const std::any* small[16];
      std::vector<const std::any*> big;
      const std::any** in = small;
      if (n > 16) {
        big.resize(n);
        in = big.data();
      }
      for (size_t i = 0; i < n; ++i) {
        in[i] = input(node.inputs[i]);
        if (!in[i]->has_value()) {
          const auto& up = node.inputs[i];
          throw std::runtime_error(
              up.is_param ? "parameter '" + flow.params[up.index].name + "' has no value"
                          : "no value from upstream task '" + flow.nodes[up.index].name + "' (it ended " +
                                state_name(nodes[up.index].state) + ")");
        }
      }
      node.body(ctx, in, tr->out);
      return;
    }
    case NodeKind::kMap: {
      const std::any* in = input(node.inputs[0]);
      node.map->body(ctx, *in, static_cast<size_t>(tr->map_index), tr->out);
      return;
    }
    case NodeKind::kShell:
      run_shell(tr, node, ctx);
      return;
  }
}

void RunCore::run_guarded(TaskRunRt* tr, const Node& node, const TaskContext& ctx, AttemptState& st,
                          const std::shared_ptr<AttemptState>& shared, SteadyTime deadline, Millis grace) {
  SteadyTime give_up_at = deadline + grace;
  // Copies of the inputs: the thread may outlive this run if it is abandoned.
  std::function<void(TaskContext&, const std::any* const*, std::any&)> body;
  if (node.kind == NodeKind::kMap) {
    const std::any* in = input(node.inputs[0]);
    st.inputs.push_back(node.map->slice(*in, static_cast<size_t>(tr->map_index)));
    auto map_body = node.map->body;
    body = [map_body](TaskContext& c, const std::any* const* in, std::any& out) { map_body(c, *in[0], 0, out); };
  } else {
    for (const auto& ref : node.inputs) {
      const std::any* in = input(ref);
      if (!in->has_value())
        throw std::runtime_error(ref.is_param ? "parameter '" + flow.params[ref.index].name + "' has no value"
                                              : "no value from upstream task '" + flow.nodes[ref.index].name +
                                                    "' (it ended " + state_name(nodes[ref.index].state) + ")");
      st.inputs.push_back(*in);
    }
    body = node.body;
  }
  st.task_name = node.name;
  st.flow_name = flow.name;
  st.flow_run_id = flow_run_id;
  st.map_index = tr->map_index;
  st.attempt = tr->attempts;
  st.clock = &clock;
  st.deadline = deadline;
  std::thread worker([shared, body = std::move(body), c = TaskContext(ctx)]() mutable {
    std::vector<const std::any*> in;
    for (const auto& a : shared->inputs) in.push_back(&a);
    std::any out;
    std::exception_ptr error;
    try {
      body(c, in.data(), out);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lk(shared->mu);
    if (shared->abandoned) return;  // nobody waits; the run (and its clock) may be gone
    shared->late = shared->clock->steady_now() >= shared->deadline;
    shared->out = std::move(out);
    shared->error = error;
    shared->done = true;
    shared->cv.notify_all();
  });
  std::unique_lock lk(st.mu);
  while (!st.done) {
    if (cancelled() && !st.run_cancelled.load()) {
      st.run_cancelled.store(true);
      give_up_at = std::min(give_up_at, clock.steady_now() + grace);  // a cancelled run waits one grace too
    }
    if (clock.steady_now() >= give_up_at) {
      st.abandoned = true;
      st.late = true;
      st.expired.store(true, std::memory_order_release);
      lk.unlock();
      worker.detach();
      throw std::runtime_error("the task ignored its cancellation for the grace period of " + format_millis(grace) +
                               " and was abandoned (its thread runs on; its result will be dropped)");
    }
    st.cv.wait_for(lk, std::chrono::milliseconds(10));
  }
  lk.unlock();
  worker.join();
  if (cancelled()) st.run_cancelled.store(true);  // as an unguarded attempt would see it
  tr->out = std::move(st.out);
  if (st.error) std::rethrow_exception(st.error);
}

void RunCore::run_shell(TaskRunRt* tr, const Node& node, TaskContext& ctx) {
  const NodeOptions& o = *node.opt;
  ProcessSpec spec{o.command, o.env, o.working_dir};
  spec.env.emplace("CULVERT_FLOW_NAME", flow.name);
  spec.env.emplace("CULVERT_FLOW_RUN_ID", flow_run_id);
  spec.env.emplace("CULVERT_TASK_NAME", node.name);
  spec.env.emplace("CULVERT_MAP_INDEX", std::to_string(tr->map_index));
  auto proc = launcher_->spawn(spec);
  if (!proc) throw std::runtime_error(proc.status().message());
  Process& p = **proc;
  auto on_line = [&](bool is_err, std::string_view line) {
    ctx.log(is_err ? LogLevel::kWarning : LogLevel::kInfo, line);
  };
  bool closed = false, exited = false, term_sent = false, kill_sent = false;
  int status = 0;
  SteadyTime term_at{};
  for (;;) {
    if (!closed) closed = p.read_output(50, on_line);
    if (!exited) exited = p.try_wait(&status);
    if (exited) {
      for (int i = 0; i < 64 && !closed; ++i) closed = p.read_output(0, on_line);
      p.flush(on_line);
      break;
    }
    if (closed) std::this_thread::sleep_for(std::chrono::milliseconds(10));  // child still running, pipes closed
    if (!term_sent && ctx.cancelled()) {
      p.signal_group(SIGTERM);
      term_sent = true;
      term_at = clock.steady_now();
      ctx.warning(std::string(ctx.token().timed_out() ? "timeout" : "cancelled") + ": sent SIGTERM to process group " +
                  std::to_string(p.pid()));
    } else if (term_sent && !kill_sent && clock.steady_now() - term_at >= o.kill_grace) {
      p.signal_group(SIGKILL);
      kill_sent = true;
      ctx.warning("sent SIGKILL to process group " + std::to_string(p.pid()));
    }
  }
  if (term_sent) p.signal_group(SIGKILL);  // whatever is left of the group
  if (term_sent && ctx.token().timed_out()) throw std::runtime_error("process group killed");
  if (term_sent) throw std::runtime_error("process group killed");
  if (status != 0) throw CommandFailed(status, "command exited with status " + std::to_string(status));
}

TaskRunRt* RunCore::after_finish(TaskRunRt* tr) {
  NodeRt& nr = nodes[tr->node];
  if (tr->map_index < 0) {
    nr.state = tr->state;
    nr.value = std::move(tr->out);
    return complete(tr->node);
  }
  if (nr.children_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return nullptr;
  // Last child of a mapped node: aggregate.
  const Node& node = flow.nodes[tr->node];
  State agg = State::kSuccess;
  bool any_skipped = false;
  for (uint32_t i = 0; i < nr.n_children; ++i) {
    State s = nr.children[i].state;
    if (s == State::kSkipped) any_skipped = true;
    else if (!is_successful(s)) {
      agg = s;
      nr.message = "task run [" + std::to_string(i) + "] ended " + state_name(s);
      break;
    }
  }
  if (agg == State::kSuccess && any_skipped) agg = State::kSkipped;
  nr.state = agg;
  if (agg == State::kSuccess && node.map->gather != nullptr) {
    std::vector<std::any> outs(nr.n_children);
    for (uint32_t i = 0; i < nr.n_children; ++i) outs[i] = std::move(nr.children[i].out);
    nr.value = node.map->gather(outs);
  }
  return complete(tr->node);
}

TaskRunRt* RunCore::complete(uint32_t n) {
  auto& stack = tls_stack;
  const size_t base = stack.size();
  stack.push_back(n);
  TaskRunRt* cont = nullptr;
  bool all_done = false;
  while (stack.size() > base) {
    uint32_t m = stack.back();
    stack.pop_back();
    for (uint32_t k = plan.down_off[m]; k < plan.down_off[m + 1]; ++k) {
      uint32_t s = plan.down[k];
      if (nodes[s].pending.fetch_sub(1, std::memory_order_acq_rel) == 1) ready(s, stack, cont);
    }
    if (nodes_left_.fetch_sub(1, std::memory_order_acq_rel) == 1) all_done = true;
  }
  if (all_done) {
    if (pool_ != nullptr) {
      std::lock_guard lk(done_mu_);
      done_ = true;
      done_cv_.notify_all();  // the last touch of this RunCore by a worker
    }
    return nullptr;
  }
  return cont;
}

void RunCore::resolve_without_run(uint32_t s, State state, std::string message, std::vector<uint32_t>& stack) {
  TaskRunRt* tr = &runs[s];
  finalize(tr, state, message);
  nodes[s].state = state;
  stack.push_back(s);
}

void RunCore::ready(uint32_t s, std::vector<uint32_t>& stack, TaskRunRt*& cont) {
  const Node& node = flow.nodes[s];
  NodeRt& nr = nodes[s];
  if (cancelled()) {
    resolve_without_run(s, State::kCancelled, "the flow run was cancelled", stack);
    return;
  }
  // Trigger.
  int n_up = 0, n_fail = 0, n_succ = 0, n_skip = 0;
  const char* first_fail = nullptr;
  const char* first_skip = nullptr;
  State fail_state = State::kFailed;
  for (uint32_t k = plan.up_off[s]; k < plan.up_off[s + 1]; ++k) {
    uint32_t u = plan.up[k];
    State st = nodes[u].state;
    ++n_up;
    if (is_failure(st) || st == State::kCancelled) {
      if (n_fail++ == 0) {
        first_fail = flow.nodes[u].name.c_str();
        fail_state = st;
      }
    } else if (st == State::kSkipped) {
      ++n_succ;
      if (n_skip++ == 0) first_skip = flow.nodes[u].name.c_str();
    } else {
      ++n_succ;
    }
  }
  bool met = true;
  switch (node.trigger) {
    case Trigger::kAllSuccessful: met = n_fail == 0; break;
    case Trigger::kAllFinished: met = true; break;
    case Trigger::kAnyFailed: met = n_fail > 0; break;
    case Trigger::kAllFailed: met = n_fail == n_up; break;
    case Trigger::kAnySuccessful: met = n_succ > 0 || n_up == 0; break;
  }
  if (!met) {
    if (n_fail > 0) {
      resolve_without_run(s, State::kTriggerFailed,
                          std::string("trigger ") + trigger_name(node.trigger) + " not met: upstream task '" +
                              first_fail + "' ended " + state_name(fail_state),
                          stack);
    } else {
      resolve_without_run(s, State::kSkipped,
                          std::string("trigger ") + trigger_name(node.trigger) + " not met: no upstream task failed",
                          stack);
    }
    return;
  }
  if (node.trigger == Trigger::kAllSuccessful && n_skip > 0) {
    resolve_without_run(s, State::kSkipped, std::string("upstream task '") + first_skip + "' was skipped", stack);
    return;
  }
  if (node.kind == NodeKind::kMap) {
    const std::any* in = input(node.inputs[0]);
    if (!in->has_value()) {
      const auto& up = node.inputs[0];
      resolve_without_run(s, State::kFailed,
                          up.is_param ? "parameter has no value"
                                      : "no value from upstream task '" + flow.nodes[up.index].name + "' (it ended " +
                                            state_name(nodes[up.index].state) + ")",
                          stack);
      return;
    }
    const size_t count = node.map->size(*in);
    MapEvent ev{s, node.name, static_cast<int>(count)};
    for (auto* o : observers) o->on_task_mapped(ev);
    if (count == 0) {
      nr.state = State::kSuccess;
      if (node.map->gather != nullptr) {
        std::vector<std::any> none;
        nr.value = node.map->gather(none);
      }
      stack.push_back(s);
      return;
    }
    nr.children = std::make_unique<TaskRunRt[]>(count);
    nr.n_children = static_cast<uint32_t>(count);
    nr.children_left.store(static_cast<uint32_t>(count), std::memory_order_relaxed);
    for (size_t i = 0; i < count; ++i) {
      nr.children[i].node = s;
      nr.children[i].map_index = static_cast<int32_t>(i);
    }
    for (size_t i = count; i-- > 1;) schedule(&nr.children[i]);
    if (cont == nullptr) cont = &nr.children[0];
    else schedule(&nr.children[0]);
    return;
  }
  if (cont == nullptr) cont = &runs[s];
  else schedule(&runs[s]);
}

void RunCore::finalize(TaskRunRt* tr, State state, std::string_view message) {
  tr->state = state;
  // Mapped children run concurrently: only unmapped runs keep their message here.
  if (tr->map_index < 0 && !is_successful(state)) nodes[tr->node].message.assign(message);
  emit(tr, state, message);
}

void RunCore::emit(TaskRunRt* tr, State state, std::string_view message, Millis retry_delay) {
  const Node& node = flow.nodes[tr->node];
  TaskRunEvent ev{tr->node, node.name, tr->map_index, state, tr->attempts, message, clock.now()};
  if (retry_delay.count() >= 0) ev.next_start = ev.timestamp + retry_delay;
  for (auto* o : observers) o->on_task_run(ev);
  if (node.opt != nullptr) {
    for (const auto& h : node.opt->on_state_change) {
      try {
        h(ev);
      } catch (const std::exception& e) {
        log(tr, LogLevel::kError, std::string("on_state_change hook failed: ") + e.what());
      }
    }
    if (is_failure(state)) {
      for (const auto& h : node.opt->on_failure) {
        try {
          h(ev);
        } catch (const std::exception& e) {
          log(tr, LogLevel::kError, std::string("on_failure hook failed: ") + e.what());
        }
      }
    }
  }
}

void RunCore::log(TaskRunRt* tr, LogLevel level, std::string_view message) {
  if (observers.empty()) return;
  LogEvent ev{tr->node, flow.nodes[tr->node].name, tr->map_index, level, message, clock.now()};
  for (auto* o : observers) o->on_log(ev);
}

bool RunCore::acquire_tags(TaskRunRt* tr, const NodeOptions& o) {
  std::lock_guard lk(tag_mu_);
  for (const auto& t : o.tags) {
    auto it = tags_.find(t);
    if (it != tags_.end() && it->second.used >= it->second.limit) {
      it->second.waiting.push_back(tr);
      return false;
    }
  }
  for (const auto& t : o.tags) {
    auto it = tags_.find(t);
    if (it != tags_.end()) ++it->second.used;
  }
  return true;
}

void RunCore::release_tags(const NodeOptions& o) {
  std::vector<TaskRunRt*> wake;
  {
    std::lock_guard lk(tag_mu_);
    for (const auto& t : o.tags) {
      auto it = tags_.find(t);
      if (it == tags_.end()) continue;
      --it->second.used;
      // Wake every waiter: those that still find no slot park again, and a waiter
      // that ends without taking a slot (a cancelled run) cannot strand the others.
      wake.insert(wake.end(), it->second.waiting.begin(), it->second.waiting.end());
      it->second.waiting.clear();
    }
  }
  for (auto* w : wake) schedule(w);
}

// ---- storage: results, targets, cache ----

Result<ObjectStore*> RunCore::store_for(const std::string& uri) {
  size_t p = uri.find("://");
  std::string scheme = p == std::string::npos ? uri : uri.substr(0, p);
  std::lock_guard lk(store_mu_);
  auto it = stores_.find(scheme);
  if (it != stores_.end()) return it->second.get();
  auto opened = opts.open_store ? opts.open_store(uri) : open_object_store(uri);
  if (!opened) return opened.status();
  ObjectStore* raw = opened->get();
  stores_.emplace(scheme, std::move(*opened));
  return raw;
}

std::string RunCore::render(const std::string& tmpl, const Node& node, int map_index) const {
  return render_template(tmpl, flow.name, flow_run_id, node.name, map_index, date);
}

std::string RunCore::cache_uri(const TaskRunRt* tr, const Node& node) {
  std::string digest_input;
  bool opaque_input = false;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const auto& in = node.inputs[i];
    const std::any* v = input(in);
    if (node.input_encoders[i] != nullptr && v->has_value()) {
      put_item(digest_input, node.input_encoders[i](*v));
    } else {
      put_item(digest_input, in.is_param ? "param:" + flow.params[in.index].name
                                         : "task:" + flow.nodes[in.index].name);
      opaque_input = true;
    }
  }
  // An input without a codec cannot be hashed: assume it follows from the parameters.
  if (opaque_input) {
    for (const auto& [k, v] : param_text) {
      put_item(digest_input, k);
      put_item(digest_input, v);
    }
  }
  std::string digest = sha256_hex(digest_input);
  std::string key;
  if (node.opt->cache_key) {
    CacheKeyContext c{flow.name, node.name, tr->map_index, digest, &param_text};
    key = node.opt->cache_key(c);
  } else {
    key = flow.name + "\n" + node.name + "\n" + std::to_string(tr->map_index) + "\n" + digest;
  }
  return join_uri(cache_base_, flow.name + "/" + node.name + "/" + sha256_hex(key));
}

bool RunCore::try_cached(TaskRunRt* tr, const Node& node) {
  const NodeOptions& o = *node.opt;
  auto load = [&](const std::string& bytes, const std::string& from) -> bool {
    if (node.ops.has_value) {
      std::any v;
      if (!node.ops.decode(bytes, v)) {
        log(tr, LogLevel::kWarning, "ignoring " + from + ": it does not decode");
        return false;
      }
      tr->out = std::move(v);
    }
    return true;
  };
  if (!o.target_uri.empty()) {
    std::string uri = render(o.target_uri, node, tr->map_index);
    auto store = store_for(uri);
    if (!store) {
      log(tr, LogLevel::kWarning, "target " + uri + ": " + store.status().message());
    } else {
      auto data = (*store)->get(uri);
      if (data && load(*data, "target " + uri)) {
        finalize(tr, State::kCached, "target exists: " + uri);
        return true;
      }
      if (!data && data.status().code() != StatusCode::kNotFound)
        log(tr, LogLevel::kWarning, "target " + uri + ": " + data.status().message());
    }
  }
  if (o.cache_for.count() > 0) {
    std::string uri;
    try {
      uri = cache_uri(tr, node);
    } catch (const std::exception& e) {
      log(tr, LogLevel::kWarning, std::string("cache key failed: ") + e.what());
      return false;
    }
    auto store = store_for(uri);
    if (!store) {
      log(tr, LogLevel::kWarning, "cache " + uri + ": " + store.status().message());
      return false;
    }
    auto data = (*store)->get(uri);
    if (!data) {
      if (data.status().code() != StatusCode::kNotFound)
        log(tr, LogLevel::kWarning, "cache " + uri + ": " + data.status().message());
      return false;
    }
    // "culvert-cache 1\n<expires unix ms>\n<payload>"
    const std::string& d = *data;
    size_t a = d.find('\n');
    size_t b = a == std::string::npos ? a : d.find('\n', a + 1);
    if (a == std::string::npos || b == std::string::npos || d.compare(0, a, "culvert-cache 1") != 0) {
      log(tr, LogLevel::kWarning, "ignoring malformed cache entry " + uri);
      return false;
    }
    int64_t expires = std::strtoll(d.c_str() + a + 1, nullptr, 10);
    if (to_unix_ms(clock.now()) >= expires) return false;
    if (!load(d.substr(b + 1), "cache entry " + uri)) return false;
    finalize(tr, State::kCached, "cached until " + format_rfc3339(from_unix_ms(expires)));
    return true;
  }
  return false;
}

Status RunCore::persist(TaskRunRt* tr, const Node& node) {
  const NodeOptions* o = node.opt.get();
  if (o == nullptr || (o->result_uri.empty() && o->target_uri.empty() && o->cache_for.count() == 0)) {
    return Status::ok();
  }
  std::string bytes;
  if (node.ops.has_value) {
    if (!tr->out.has_value()) return internal_error("the task produced no value");
    bytes = node.ops.encode(tr->out);
  }
  auto put = [&](const std::string& uri, std::string_view data) -> Status {
    auto store = store_for(uri);
    if (!store) return store.status();
    return (*store)->put(uri, data);
  };
  if (!o->result_uri.empty()) {
    Status s = put(render(o->result_uri, node, tr->map_index), bytes);
    if (!s) return s;
  }
  if (!o->target_uri.empty()) {
    Status s = put(render(o->target_uri, node, tr->map_index), bytes);
    if (!s) return s;
  }
  if (o->cache_for.count() > 0) {
    int64_t expires = to_unix_ms(clock.now() + o->cache_for);
    Status s = put(cache_uri(tr, node), "culvert-cache 1\n" + std::to_string(expires) + "\n" + bytes);
    if (!s) return s;
  }
  return Status::ok();
}

}  // namespace detail

// ---- Executor ----

Executor::Executor(int workers) : workers_(workers < 1 ? 1 : workers) {
  if (workers_ > 1) pool_ = std::make_unique<detail::Pool>(workers_);
}
Executor::~Executor() = default;

Result<RunResult> Executor::run(const Flow& flow, const RunOptions& options) {
  const FlowImpl& f = flow.impl();
  if (Status s = f.validate(); !s) return s;
  // Parameters.
  std::vector<std::any> params(f.params.size());
  std::map<std::string, std::string> text;
  for (const auto& [name, value] : options.parameters) {
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
    auto it = options.parameters.find(p.name);
    if (it != options.parameters.end()) {
      if (!p.parse(it->second, params[i]))
        return invalid_argument("parameter '" + p.name + "' expects " + (p.type[0] == 'i' ? "an " : "a ") + p.type +
                                ", got '" + it->second + "'");
      text[p.name] = it->second;
    } else if (p.default_text) {
      params[i] = p.default_value;
      text[p.name] = *p.default_text;
    } else {
      return invalid_argument("missing required parameter '" + p.name + "' (" + p.type + "); give it with --param " +
                              p.name + "=VALUE");
    }
  }

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

// ---- RunResult ----

const TaskRunSummary* RunResult::find(std::string_view task, int map_index) const {
  for (const auto& t : task_runs)
    if (t.task == task && t.map_index == map_index) return &t;
  return nullptr;
}

std::string RunResult::to_json() const {
  detail::JsonWriter w;
  w.begin_object();
  w.key("flow").str(flow);
  w.key("flow_run_id").str(flow_run_id);
  w.key("state").str(state_name(state));
  w.key("message").str(message);
  w.key("task_runs").begin_array();
  for (const auto& t : task_runs) {
    w.begin_object();
    w.key("task").str(t.task);
    w.key("map_index").num(t.map_index);
    w.key("state").str(state_name(t.state));
    w.key("attempts").num(t.attempts);
    w.key("duration_ms").num(t.duration_ms);
    w.key("message").str(t.message);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

std::string RunResult::to_text() const {
  size_t wname = 4;
  for (const auto& t : task_runs) {
    size_t len = t.task.size() + (t.map_index >= 0 ? std::to_string(t.map_index).size() + 2 : 0);
    wname = std::max(wname, len);
  }
  std::string out;
  auto pad = [](std::string s, size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
  };
  out += pad("TASK", wname + 2) + pad("STATE", 15) + pad("ATTEMPTS", 10) + pad("DURATION", 11) + "MESSAGE\n";
  for (const auto& t : task_runs) {
    std::string name = t.task + (t.map_index >= 0 ? "[" + std::to_string(t.map_index) + "]" : "");
    out += pad(name, wname + 2) + pad(state_name(t.state), 15) + pad(std::to_string(t.attempts), 10) +
           pad(std::to_string(t.duration_ms) + "ms", 11) + t.message + "\n";
  }
  out += "flow " + flow + " (" + flow_run_id + "): " + state_name(state);
  if (!message.empty()) out += " - " + message;
  out += "\n";
  return out;
}

}  // namespace culvert
