// Attempts of a task run: retries with backoff and jitter, retry_on, timeouts (an
// attempt with a timeout runs on a thread of its own, run_guarded) and cancellation.
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
      node.map->body(ctx, *in, static_cast<size_t>(tr->map_index - map_base_), tr->out);
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
    st.inputs.push_back(node.map->slice(*in, static_cast<size_t>(tr->map_index - map_base_)));
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


}  // namespace detail
}  // namespace culvert
