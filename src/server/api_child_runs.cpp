// The API (api_impl.hpp): child runs — one flow run per chunk of a distributed mapped
// task of a parent run: creation, the parent's listing and its long poll, the summary in
// a run's answer, and what a child's run token may report of its parent.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "server/api_impl.hpp"

namespace culvert::server {
namespace {

json by_state_json(const std::vector<store::StateCount>& counts, int64_t* total, int64_t* final_count) {
  json by = json::object();
  for (const auto& c : counts) {
    by[state_name(c.state)] = c.count;
    if (total) *total += c.count;
    if (final_count && is_final(c.state)) *final_count += c.count;
  }
  return by;
}

store::ChildRunEntry entry_of(const store::FlowRun& r) {
  return {r.id, r.child.value_or(store::ChildRun{}), r.state, r.state_message, r.run_count, r.infrastructure};
}

}  // namespace

void Api::Impl::changed(const store::FlowRun& run) {
  events.run_changed(run.id, is_final(run.state));
  if (run.child) events.child_changed(run.child->parent_run_id);
}

Status Api::Impl::may_report(const Principal& p, const std::string& run_id, const std::optional<std::string>& task,
                             int64_t map_index, int64_t map_count, std::optional<int>& run_attempt,
                             const std::string& what) {
  if (p.may_access_run(run_id)) return Status::ok();
  if (!p.child || p.child->parent_run_id != run_id) return forbidden_run();
  const ChildScope& c = *p.child;
  const std::string scope = "the token of child run " + p.flow_run_id + " may report of its parent flow run " +
                            run_id + " only task '" + c.task + "', attempt " + std::to_string(c.parent_attempt) +
                            ", map indexes " + std::to_string(c.start) + " to " + std::to_string(c.end - 1);
  if (!task || *task != c.task)
    return {StatusCode::kPermissionDenied, scope + "; " + what + " is for task '" + task.value_or("") + "'"};
  if (map_index < c.start || map_index + std::max<int64_t>(map_count, 1) > c.end)
    return {StatusCode::kPermissionDenied, scope + "; " + what + " is for map indexes " + std::to_string(map_index) +
                                               " to " + std::to_string(map_index + std::max<int64_t>(map_count, 1) - 1)};
  if (run_attempt && *run_attempt != c.parent_attempt)
    return {StatusCode::kPermissionDenied, scope + "; " + what + " is for attempt " + std::to_string(*run_attempt)};
  run_attempt = c.parent_attempt;
  return Status::ok();
}

Response Api::Impl::create_children(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto req = parse_child_runs_create(*b);
  if (!req) return status_response(req.status());
  auto tasks = tasks_of_run(st, id);
  if (!tasks) return store_error(tasks.status());
  const FlowTasks& ft = **tasks;
  const std::string version = "flow '" + ft.flow_name + "' version " + std::to_string(ft.flow_version);
  if (ft.mapped.find(req->task) == ft.mapped.end())
    return status_response(unprocessable("field 'task': " + version + " has no task '" + req->task + "'"));
  auto d = ft.distributed.find(req->task);
  if (d == ft.distributed.end())
    return status_response(unprocessable("field 'task': task '" + req->task + "' of " + version +
                                         " is not a distributed mapped task (its task entry has no \"distributed\" "
                                         "member)"));
  store::NewChildRuns spec;
  spec.parent_run_id = id;
  spec.task = req->task;
  spec.chunks = std::move(req->chunks);
  if (!d->second.run_config_json.empty()) {
    spec.run_config_json = d->second.run_config_json;
    spec.run_config_type = d->second.run_config_type;
  }
  spec.state_message = "created by " + (c.principal.is_run_token() ? "its parent flow run " + id : c.principal.name) +
                       " for task '" + req->task + "'";
  auto made = st.create_child_runs(spec);
  if (!made) return store_error(made.status());
  std::string items;
  CappedList list{SIZE_MAX};
  int created = 0;
  for (const auto& [run, fresh] : *made) {
    list.add(items, to_json(entry_of(run)));
    if (fresh && created++ == 0) announce(run);  // the children share their labels: one wake-up
  }
  if (created > 0) spdlog::info("flow run {}: {} child runs created for task {}", id, created, req->task);
  return text_response("{\"children\":[" + items + "]}");
}

void Api::Impl::list_children(const CallPtr& c, store::Store& st) {
  const auto& id = c->params.get("id");
  if (!c->principal.may_access_run(id)) return c->respond(status_response(forbidden_run()));
  ChildPoll p;
  p.parent_id = id;
  if (auto t = c->req.query_param("task"); t && !t->empty()) {
    if (t->size() > kMaxNameLength) return c->respond(status_response(unprocessable("query parameter 'task' is too long")));
    p.task = *t;
  }
  auto attempt = parse_int_param(c->req.query_param("parent_attempt"), "parent_attempt", 1, 1000000, 0);
  if (!attempt) return c->respond(status_response(attempt.status()));
  if (*attempt > 0) p.parent_attempt = static_cast<int>(*attempt);
  auto above = parse_int_param(c->req.query_param("final_above"), "final_above", -1, INT64_MAX, -1);
  if (!above) return c->respond(status_response(above.status()));
  p.final_above = *above;
  auto wait = parse_int_param(c->req.query_param("wait_ms"), "wait_ms", 0, options.max_wait.count(), 0);
  if (!wait) return c->respond(status_response(wait.status()));
  p.deadline = clock.steady_now() + Millis(*wait);
  poll_children(c, st, std::move(p), false);
}

void Api::Impl::poll_children(const CallPtr& c, store::Store& st, ChildPoll p, bool timed_out) {
  uint64_t gen = waiters.children_generation();
  auto parent = st.get_flow_run(p.parent_id);
  if (!parent) return c->respond(store_error(parent.status()));
  store::ChildRunQuery q;
  q.parent_run_id = p.parent_id;
  q.task = p.task;
  q.parent_attempt = p.parent_attempt.value_or(parent->run_count);
  auto counts = st.count_child_runs(q);
  if (!counts) return c->respond(store_error(counts.status()));
  int64_t total = 0, final_count = 0;
  json by_state = by_state_json(*counts, &total, &final_count);
  if (final_count <= p.final_above && !timed_out && clock.steady_now() < p.deadline) {
    auto deadline = p.deadline;
    std::string parent_id = p.parent_id;
    waiters.park_children(parent_id, deadline, gen, [this, c, p = std::move(p)](bool t) mutable {
      repost(c, [this, c, p = std::move(p), t](store::Store& s) mutable { poll_children(c, s, std::move(p), t); });
    });
    return;
  }
  q.limit = kMaxChildListing;
  auto children = st.list_child_runs(q);
  if (!children) return c->respond(store_error(children.status()));
  CappedList list{options.max_answer_bytes};
  std::string items;
  size_t listed = 0;
  for (const auto& e : *children) {
    if (list.full()) break;
    list.add(items, to_json(e));
    ++listed;
  }
  c->respond(text_response("{\"children\":[" + items + "],\"count\":" + std::to_string(total) +
                           ",\"listed\":" + std::to_string(listed) + ",\"final\":" + std::to_string(final_count) +
                           ",\"by_state\":" + by_state.dump() + ",\"parent_attempt\":" +
                           std::to_string(*q.parent_attempt) + ",\"parent_state\":" +
                           json(state_name(parent->state)).dump() + "}"));
}

Result<std::string> Api::Impl::children_summary(store::Store& st, const store::FlowRun& run) {
  if (run.child || run.run_count < 1) return std::string("null");
  store::ChildRunQuery q;
  q.parent_run_id = run.id;
  q.parent_attempt = run.run_count;
  auto counts = st.count_child_runs(q);
  if (!counts) return counts.status();
  if (counts->empty()) return std::string("null");
  int64_t total = 0;
  json by_state = by_state_json(*counts, &total, nullptr);
  return "{\"count\":" + std::to_string(total) + ",\"by_state\":" + by_state.dump() + ",\"parent_attempt\":" +
         std::to_string(run.run_count) + "}";
}

}  // namespace culvert::server
