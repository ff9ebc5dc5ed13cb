// The API (api_impl.hpp): API tokens.
#include "server/api_impl.hpp"

#include <spdlog/spdlog.h>

#include "core/crypto.hpp"

namespace culvert::server {

Response Api::Impl::create_token(Call& c, store::Store& st) {
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto t = parse_token_create(*b, clock.now());
  if (!t) return status_response(t.status());
  std::string secret = new_api_token();
  store::NewToken nt;
  nt.name = t->name;
  nt.scope = t->scope;
  nt.hash = sha256_hex(secret);
  nt.expires = t->expires;
  auto r = st.create_token(nt);
  if (!r) return store_error(r.status());
  json j = to_json(*r);
  j["token"] = secret;
  spdlog::info("token created: {} ({}, scope {})", r->name, r->id, r->scope);
  return json_response(201, j);
}

Response Api::Impl::list_tokens(Call& c, store::Store& st) {
  bool include_run = c.req.query_param("include_run").value_or("") == "true";
  auto r = st.list_tokens();
  if (!r) return store_error(r.status());
  json arr = json::array();
  for (const auto& t : *r) {
    if (t.scope == "run" && !include_run) continue;
    arr.push_back(to_json(t));
  }
  return json_response(200, {{"tokens", std::move(arr)}});
}

Response Api::Impl::revoke_token(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (auto s = st.revoke_token(id, clock.now()); !s) return store_error(s);
  auth.invalidate_token(id);
  spdlog::info("token revoked: {}", id);
  return json_response(200, {{"id", id}, {"revoked", true}});
}

}  // namespace culvert::server
