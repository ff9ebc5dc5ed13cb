// The API (api_impl.hpp): flows (versions, schedules).
#include "server/api_impl.hpp"

#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

namespace culvert::server {

Response Api::Impl::register_flow(Call& c, store::Store& st) {
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto v = parse_flow_registration(*b);
  if (!v) return status_response(v.status());
  auto r = st.register_flow(*v);
  if (!r) return store_error(r.status());
  if (r->reused) {
    spdlog::info("flow registered again: {}/{} version {} unchanged ({})", r->project_name, r->name, r->version,
                 r->id);
    return json_response(200, to_json(*r, true));
  }
  spdlog::info("flow registered: {}/{} version {} ({})", r->project_name, r->name, r->version, r->id);
  return json_response(201, to_json(*r, true));
}

Response Api::Impl::list_flows(Call& c, store::Store& st) {
  std::optional<std::string> project_id;
  if (auto p = c.req.query_param("project"); p && !p->empty()) {
    auto proj = st.find_project(*p);
    if (!proj) return store_error(proj.status());
    project_id = proj->id;
  }
  bool all = c.req.query_param("all_versions").value_or("") == "true";
  // A larger limit is clamped (the answer is bounded by bytes as well).
  auto limit = parse_int_param(c.req.query_param("limit"), "limit", 1, INT64_MAX, kMaxTaskPage);
  if (!limit) return status_response(limit.status());
  const int want = static_cast<int>(std::min<int64_t>(*limit, kMaxTaskPage));
  store::FlowListPage page;
  if (auto n = c.req.query_param("name"); n && !n->empty()) page.name = *n;
  if (auto cur = c.req.query_param("cursor"); cur && !cur->empty()) page.after_id = *cur;
  CappedList list{options.max_answer_bytes};
  std::string items;
  int listed = 0;
  bool more = false;
  std::string last;
  for (;;) {
    page.limit = std::min(kStoreChunk, want + 1 - listed);
    auto r = st.list_flows(project_id, !all, page);
    if (!r && r.status().code() == StatusCode::kNotFound && page.after_id)
      return status_response(unprocessable("query parameter 'cursor' names no flow"));
    if (!r) return store_error(r.status());
    for (const auto& f : *r) {
      if (listed == want || list.full()) {
        more = true;
        break;
      }
      list.add(items, to_json(f, false));
      ++listed;
      last = f.id;
    }
    if (more || static_cast<int>(r->size()) < page.limit) break;
    page.after_id = last;
  }
  // next_cursor: null on the last page.
  return text_response("{\"flows\":[" + items + "],\"next_cursor\":" + (more ? json(last).dump() : "null") + "}");
}

Response Api::Impl::get_flow(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (c.principal.is_run_token()) {
    auto run = st.get_flow_run(c.principal.flow_run_id);
    if (!run) return store_error(run.status());
    if (run->flow_id != id) return status_response(forbidden_run());
  }
  auto r = st.get_flow(id);
  if (!r) return store_error(r.status());
  return json_response(200, to_json(*r, true));
}

Response Api::Impl::set_schedule(Call& c, store::Store& st) {
  auto b = body(c);
  if (!b) return status_response(b.status());
  if (!b->is_object() || !b->contains("active") || !(*b)["active"].is_boolean())
    return status_response(unprocessable("field 'active' is required (a boolean)"));
  const auto& id = c.params.get("id");
  if (auto s = st.set_schedule_active(id, (*b)["active"].get<bool>()); !s) return store_error(s);
  auto r = st.get_flow(id);
  if (!r) return store_error(r.status());
  return json_response(200, to_json(*r, false));
}

}  // namespace culvert::server
