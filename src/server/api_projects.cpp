// The API (api_impl.hpp): projects.
#include "server/api_impl.hpp"

namespace culvert::server {

Response Api::Impl::create_project(Call& c, store::Store& st) {
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto p = parse_project_create(*b);
  if (!p) return status_response(p.status());
  auto r = st.create_project(p->name, p->description, p->skip_if_exists);
  if (!r) return store_error(r.status());
  return json_response(201, to_json(*r));
}

Response Api::Impl::list_projects(Call&, store::Store& st) {
  auto r = st.list_projects();
  if (!r) return store_error(r.status());
  json arr = json::array();
  for (const auto& p : *r) arr.push_back(to_json(p));
  return json_response(200, {{"projects", std::move(arr)}});
}

}  // namespace culvert::server
