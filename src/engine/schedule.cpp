// The executor's scheduling: driving a run, readiness and triggers of successors, mapping,
// final states and events, concurrency limits by tag (see run_core.hpp).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <signal.h>
#include <thread>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "engine/run_core.hpp"

namespace culvert {
namespace detail {

namespace {

thread_local std::vector<uint32_t> tls_stack;

}  // namespace

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

void RunCore::run_chunk(uint32_t s, size_t start, size_t count) {
  chunk_node_ = s;
  map_base_ = static_cast<int32_t>(start);
  NodeRt& nr = nodes[s];
  nr.children = std::make_unique<TaskRunRt[]>(count);
  nr.n_children = static_cast<uint32_t>(count);
  nr.children_left.store(static_cast<uint32_t>(count), std::memory_order_relaxed);
  if (count == 0) return;
  for (size_t i = 0; i < count; ++i) {
    nr.children[i].node = s;
    nr.children[i].map_index = static_cast<int32_t>(start + i);
  }
  for (size_t i = 0; i < count; ++i) schedule(&nr.children[i]);  // in order on one worker
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
  if (node.kind == NodeKind::kMap && tr->map_index < 0) run_distributed(tr, node);
  else run_attempts(tr, node);
  if (limited) release_tags(*o);
  return after_finish(tr);
}


TaskRunRt* RunCore::after_finish(TaskRunRt* tr) {
  NodeRt& nr = nodes[tr->node];
  if (tr->map_index < 0) {
    nr.state = tr->state;
    nr.value = std::move(tr->out);
    return complete(tr->node);
  }
  if (nr.children_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return nullptr;
  if (tr->node == chunk_node_) {
    // Chunk mode: the chunk's last element; nothing downstream runs here.
    if (pool_ != nullptr) {
      std::lock_guard lk(done_mu_);
      done_ = true;
      done_cv_.notify_all();
    }
    return nullptr;
  }
  // Last child of a mapped node: aggregate.
  nr.state = aggregate_map(tr->node, nr.value);
  return complete(tr->node);
}

State RunCore::aggregate_map(uint32_t n, std::any& value) {
  NodeRt& nr = nodes[n];
  const Node& node = flow.nodes[n];
  State agg = State::kSuccess;
  bool any_skipped = false;
  for (uint32_t i = 0; i < nr.n_children; ++i) {
    State s = nr.children[i].state;
    if (s == State::kSkipped) any_skipped = true;
    else if (!is_successful(s)) {
      agg = s;
      nr.message = "task run [" + std::to_string(nr.children[i].map_index) + "] ended " + state_name(s);
      break;
    }
  }
  if (agg == State::kSuccess && any_skipped) agg = State::kSkipped;
  if (agg == State::kSuccess && node.map->gather != nullptr) {
    std::vector<std::any> outs(nr.n_children);
    for (uint32_t i = 0; i < nr.n_children; ++i) outs[i] = std::move(nr.children[i].out);
    value = node.map->gather(outs);
  }
  return agg;
}

void RunCore::run_distributed(TaskRunRt* tr, const Node& node) {
  const uint32_t s = tr->node;
  NodeRt& nr = nodes[s];
  const std::any* in = input(node.inputs[0]);
  const size_t count = node.map->size(*in);
  MapEvent ev{s, node.name, static_cast<int>(count)};
  for (auto* o : observers) o->on_task_mapped(ev);
  nr.children = std::make_unique<TaskRunRt[]>(count);
  nr.n_children = static_cast<uint32_t>(count);
  for (size_t i = 0; i < count; ++i) {
    nr.children[i].node = s;
    nr.children[i].map_index = static_cast<int32_t>(i);
  }
  const Distributed& d = *node.opt->distributed;
  DistributedMapCall call;
  call.task = node.name;
  call.flow_run_id = flow_run_id;
  call.storage = distributed_storage(flow, node);
  call.max_workers = d.max_workers;
  call.chunk_size = static_cast<int>(distributed_chunk_size(d, count));
  call.count = count;
  call.encode_inputs = [&node, in](size_t b, size_t e) { return node.map->encode_range(*in, b, e); };
  call.cancelled = [this] { return cancelled(); };
  std::vector<ElementOutcome> outs;
  if (count > 0) {
    // A codec that throws (a language binding's serializer) fails the map, not the process.
    Result<std::vector<ElementOutcome>> res = internal_error("not run");
    try {
      res = distributor_->run(call);
    } catch (const std::exception& e) {
      res = internal_error(std::string("the map's elements could not be handed to its workers: ") + e.what());
    }
    if (!res) {
      State st = res.status().code() == StatusCode::kCancelled || cancelled() ? State::kCancelled : State::kFailed;
      outs.assign(count, ElementOutcome{st, 0, res.status().message(), "", false});
    } else if (res->size() != count) {
      outs.assign(count, ElementOutcome{State::kFailed, 0,
                                        "the distributor answered " + std::to_string(res->size()) +
                                            " outcomes for " + std::to_string(count) + " elements",
                                        "", false});
    } else {
      outs = std::move(*res);
    }
  }
  for (size_t i = 0; i < count; ++i) {
    TaskRunRt& child = nr.children[i];
    ElementOutcome& o = outs[i];
    child.state = o.state;
    child.attempts = o.attempts;
    if (node.ops.has_value && o.state != State::kSkipped && is_successful(o.state) &&
        !node.ops.decode(o.value, child.out)) {
      child.state = State::kFailed;
      o.message = "the output of element " + std::to_string(i) + " cannot be decoded by the task's codec";
      o.reported = false;
    }
    if (!o.reported) emit(&child, child.state, o.message);
  }
  tr->state = aggregate_map(s, tr->out);
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
  if (node.kind == NodeKind::kMap && distributor_ != nullptr && node.opt != nullptr && node.opt->distributed) {
    // Its driver runs as one item (run_distributed); the elements run elsewhere.
    const std::any* in = input(node.inputs[0]);
    if (in->has_value()) {
      if (cont == nullptr) cont = &runs[s];
      else schedule(&runs[s]);
      return;
    }
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


}  // namespace detail
}  // namespace culvert
