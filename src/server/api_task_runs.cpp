// The API (api_impl.hpp): task runs (listing; states through the group commit).
#include "server/api_impl.hpp"

namespace culvert::server {

Response Api::Impl::list_task_runs(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto run = st.get_flow_run(id);
  if (!run) return store_error(run.status());
  auto r = st.list_task_runs(id);
  if (!r) return store_error(r.status());
  json arr = json::array();
  for (const auto& t : *r) arr.push_back(to_json(t));
  return json_response(200, {{"task_runs", std::move(arr)}});
}

Response Api::Impl::list_task_run_history(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto after = parse_int_param(c.req.query_param("after"), "after", 0, INT64_MAX, 0);
  if (!after) return status_response(after.status());
  auto limit = parse_int_param(c.req.query_param("limit"), "limit", 1, 10000, 1000);
  if (!limit) return status_response(limit.status());
  auto r = st.list_task_run_history(id, *after, static_cast<int>(*limit));
  if (!r) return store_error(r.status());
  json arr = json::array();
  for (const auto& h : *r) arr.push_back(to_json(h));
  // A full page may have more after it.
  std::string next = static_cast<int64_t>(r->size()) == *limit ? std::to_string(r->back().id) : "";
  return json_response(200, {{"history", std::move(arr)}, {"next_cursor", next}});
}

void Api::Impl::task_run_states(const CallPtr& c, store::Store& st) {
  auto b = body(*c);
  if (!b) return c->respond(status_response(b.status()));
  auto batch = parse_task_run_batch(*b, clock.now());
  if (!batch) return c->respond(status_response(batch.status()));
  for (const auto& u : *batch)
    if (!c->principal.may_access_run(u.flow_run_id)) return c->respond(status_response(forbidden_run()));
  if (batch->empty()) return c->respond(json_response(200, {{"task_run_ids", json::array()}}));
  // Answered once written, possibly by the writer of another request's thread.
  task_states.submit(
      std::move(*batch),
      [c](const TaskStateCommit::Ids& ids) {
        if (!ids) return c->respond(store_error(ids.status()));
        c->respond(json_response(200, {{"task_run_ids", *ids}}));
      },
      [&st](const std::vector<store::TaskRunUpdate>& updates) { return st.upsert_task_runs(updates); });
}

}  // namespace culvert::server
