// The API (api_impl.hpp): flows (versions, schedules).
#include "server/api_impl.hpp"

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
  auto r = st.list_flows(project_id, !all);
  if (!r) return store_error(r.status());
  json arr = json::array();
  for (const auto& f : *r) {
    if (auto n = c.req.query_param("name"); n && *n != f.name) continue;
    arr.push_back(to_json(f, false));
  }
  return json_response(200, {{"flows", std::move(arr)}});
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
