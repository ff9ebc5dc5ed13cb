// The API (api_impl.hpp): logs (append; reads as long polls).
#include "server/api_impl.hpp"

#include <algorithm>
#include <set>

namespace culvert::server {

Response Api::Impl::append_logs(Call& c, store::Store& st) {
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto batch = parse_log_batch(*b, clock.now());
  if (!batch) return status_response(batch.status());
  std::set<std::string> runs;
  for (size_t i = 0; i < batch->size(); ++i) {
    auto& l = (*batch)[i];
    // A child run's token also writes its own elements' lines to its parent.
    if (Status ok = may_report(c.principal, l.flow_run_id, l.task, l.map_index, 1, l.run_attempt,
                               "line [" + std::to_string(i) + "]");
        !ok)
      return status_response(ok);
    runs.insert(l.flow_run_id);
  }
  // A runner token writes logs only for runs on its own agents (or on none).
  for (const auto& id : runs)
    if (Status ok = may_write_run(c.principal, id, st); !ok) return store_error(ok);
  if (batch->empty()) return json_response(201, {{"ids", json::array()}});
  auto r = st.append_logs(*batch, options.max_log_bytes_per_run);
  if (!r) return store_error(r.status());
  for (const auto& id : runs) waiters.notify_logs(id);
  return json_response(201, {{"ids", *r}});
}

void Api::Impl::read_logs(const CallPtr& c, store::Store& st) {
  const auto& id = c->params.get("id");
  if (!c->principal.may_access_run(id)) return c->respond(status_response(forbidden_run()));
  auto after = parse_int_param(c->req.query_param("after"), "after", 0, INT64_MAX, 0);
  if (!after) return c->respond(status_response(after.status()));
  // A larger limit is clamped (the answer is bounded by bytes as well).
  auto limit = parse_int_param(c->req.query_param("limit"), "limit", 1, INT64_MAX, kMaxLogPage);
  if (!limit) return c->respond(status_response(limit.status()));
  *limit = std::min<int64_t>(*limit, kMaxLogPage);
  auto wait = parse_int_param(c->req.query_param("wait_ms"), "wait_ms", 0, options.max_wait.count(), 0);
  if (!wait) return c->respond(status_response(wait.status()));
  auto attempt = parse_int_param(c->req.query_param("run_attempt"), "run_attempt", 1, 1000000, 0);
  if (!attempt) return c->respond(status_response(attempt.status()));
  LogPoll p{id, *after, static_cast<int>(*limit), clock.steady_now() + Millis(*wait),
            *attempt > 0 ? std::optional<int>(static_cast<int>(*attempt)) : std::nullopt};
  poll_logs(c, st, std::move(p), false);
}

void Api::Impl::poll_logs(const CallPtr& c, store::Store& st, LogPoll p, bool timed_out) {
  uint64_t gen = waiters.log_generation();
  auto run = st.get_flow_run(p.run_id);
  if (!run) return c->respond(store_error(run.status()));
  // Read in small steps, up to the limit or the byte cap, and one line beyond: whether
  // more are there already.
  constexpr int kChunk = 100;
  int asked = std::min(kChunk, p.limit + 1);
  auto logs = st.read_logs(p.run_id, p.after, asked, p.run_attempt);
  if (!logs) return c->respond(store_error(logs.status()));
  if (logs->empty() && !is_final(run->state) && !timed_out && clock.steady_now() < p.deadline) {
    auto deadline = p.deadline;
    std::string run_id = p.run_id;
    waiters.park_logs(run_id, deadline, gen, [this, c, p = std::move(p)](bool t) mutable {
      repost(c, [this, c, p = std::move(p), t](store::Store& s) mutable { poll_logs(c, s, std::move(p), t); });
    });
    return;
  }
  std::string items;
  size_t bytes = 0;
  int listed = 0;
  bool more = false;
  int64_t last = p.after;
  for (;;) {
    for (const auto& l : *logs) {
      if (listed == p.limit || (listed > 0 && bytes >= options.max_answer_bytes)) {
        more = true;
        break;
      }
      std::string text = to_json(l).dump(-1, ' ', false, json::error_handler_t::replace);
      if (!items.empty()) items += ',';
      items += text;
      bytes += text.size() + 1;
      ++listed;
      last = l.id;
    }
    if (more || static_cast<int>(logs->size()) < asked) break;  // fewer than asked: the end
    asked = std::min(kChunk, p.limit + 1 - listed);
    logs = st.read_logs(p.run_id, last, asked, p.run_attempt);
    if (!logs) return c->respond(store_error(logs.status()));
    if (logs->empty()) break;
  }
  Response r;
  r.body = "{\"logs\":[" + items + "],\"next_cursor\":" + json(std::to_string(last)).dump() +
           ",\"more\":" + (more ? "true" : "false") + ",\"flow_run_state\":" + json(state_name(run->state)).dump() + "}";
  c->respond(std::move(r));
}

}  // namespace culvert::server
