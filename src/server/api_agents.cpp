// The API (api_impl.hpp): agents (register, heartbeat, deregister, list; claims as long
// polls). An agent is bound to the token that registered it: only that token acts as the
// agent (heartbeat, claim, deregister, its runs' infrastructure); an admin token may
// deregister it too.
#include "server/api_impl.hpp"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/crypto.hpp"

namespace culvert::server {

Status may_act_as_agent(const Principal& p, const store::Agent& a, bool admin_too) {
  // An agent registered before agents were bound to tokens answers to any runner token
  // until it registers again.
  if (!a.token_id || *a.token_id == p.token_id) return Status::ok();
  if (admin_too && p.scope == Scope::kAdmin) return Status::ok();
  return {StatusCode::kPermissionDenied, "agent " + a.id + " ('" + a.name +
                                             "') is bound to the token that registered it; this token may not act as it"};
}

namespace {

Status stopped_agent(const store::Agent& a) {
  return conflict("agent " + a.id + " ('" + a.name + "') is stopped (deregistered); register it again");
}

}  // namespace

bool Api::Impl::agent_healthy(const store::Agent& a) const {
  if (a.stopped_at) return false;
  SysTime last = a.last_heartbeat ? *a.last_heartbeat : a.created;
  return clock.now() - last <= options.agent_heartbeat_interval * options.agent_missed_heartbeats;
}

Response Api::Impl::register_agent(Call& c, store::Store& st) {
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto a = parse_agent(*b);
  if (!a) return status_response(a.status());
  a->token_id = c.principal.token_id;
  auto r = st.register_agent(*a);
  if (!r) return store_error(r.status());
  if (auto s = st.heartbeat_agent(r->id, clock.now()); !s) return store_error(s);
  spdlog::info("agent registered: {} ({}, labels [{}])", r->name, r->id, fmt::join(r->labels, ","));
  return json_response(201, to_json(*r, true));
}

Response Api::Impl::heartbeat_agent(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  auto agent = st.get_agent(id);
  if (!agent) return store_error(agent.status());
  if (auto s = may_act_as_agent(c.principal, *agent, false); !s) return status_response(s);
  if (agent->stopped_at) return status_response(stopped_agent(*agent));
  if (auto s = st.heartbeat_agent(id, clock.now()); !s) return store_error(s);
  return json_response(200, {{"id", id}, {"health", "healthy"}});
}

Response Api::Impl::deregister_agent(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  auto agent = st.get_agent(id);
  if (!agent) return store_error(agent.status());
  if (auto s = may_act_as_agent(c.principal, *agent, true); !s) return status_response(s);
  if (auto s = st.deregister_agent(id, clock.now()); !s) return store_error(s);
  auto after = st.get_agent(id);
  if (!after) return store_error(after.status());
  spdlog::info("agent deregistered: {} ({})", after->name, after->id);
  return json_response(200, to_json(*after, false));
}

Response Api::Impl::list_agents(Call&, store::Store& st) {
  auto r = st.list_agents();
  if (!r) return store_error(r.status());
  json arr = json::array();
  for (const auto& a : *r) arr.push_back(to_json(a, agent_healthy(a)));
  return json_response(200, {{"agents", std::move(arr)}});
}

void Api::Impl::claim(const CallPtr& c, store::Store& st) {
  auto b = body(*c, true);
  if (!b) return c->respond(status_response(b.status()));
  auto cb = parse_claim(*b, options.max_wait);
  if (!cb) return c->respond(status_response(cb.status()));
  const auto& id = c->params.get("id");
  auto agent = st.get_agent(id);
  if (!agent) return c->respond(store_error(agent.status()));
  if (auto s = may_act_as_agent(c->principal, *agent, false); !s) return c->respond(status_response(s));
  if (agent->stopped_at) return c->respond(status_response(stopped_agent(*agent)));
  // The types it launches: as the claim says, else its registered type. Kept on the
  // agent for the diagnosis of runs it does not take.
  std::vector<std::string> types = cb->types.value_or(std::vector<std::string>{agent->type});
  if (types != agent->run_config_types) {
    if (auto s = st.set_agent_types(id, types); !s) return c->respond(store_error(s));
  }
  if (auto s = st.heartbeat_agent(id, clock.now()); !s) return c->respond(store_error(s));
  metrics->add_claim_request();
  ClaimPoll p{id, agent->labels, std::move(types), cb->max, clock.steady_now() + cb->wait};
  poll_claim(c, st, std::move(p), false);
}

void Api::Impl::poll_claim(const CallPtr& c, store::Store& st, ClaimPoll p, bool timed_out) {
  uint64_t gen = waiters.claim_generation();
  std::map<std::string, std::string> secrets;  // run id -> run token
  store::ClaimRequest req;
  req.agent_id = p.agent_id;
  req.agent_labels = p.labels;
  req.run_config_types = p.types;
  req.max = p.max;
  req.now = clock.now();
  SysTime expires = req.now + options.run_token_ttl;
  req.run_token = [&secrets, expires](const store::FlowRun& run) {
    std::string secret = new_api_token("cvt_run_");
    store::NewToken t;
    t.name = "run " + run.id;
    t.scope = "run";
    t.hash = sha256_hex(secret);
    t.expires = expires;
    t.flow_run_id = run.id;
    secrets[run.id] = std::move(secret);
    return t;
  };
  if (c->peer_gone.load()) {
    // The agent went away while parked: claim nothing for it (a run handed to a
    // closed connection would wait for the Submitted deadline).
    c->answered = true;
    return c->respond(json_response(200, {{"runs", json::array()}}));
  }
  auto r = st.claim_runs(req);
  if (!r) return c->respond(store_error(r.status()));
  if (r->empty() && !timed_out && clock.steady_now() < p.deadline) {
    if (!c->watching && c->req.watch_peer) {
      c->watching = true;
      c->req.watch_peer([this, weak = std::weak_ptr<Call>(c)] {
        auto call = weak.lock();
        if (!call || call->answered.load() || call->peer_gone.exchange(true)) return;
        metrics->add_abandoned_claim();
      });
    }
    auto labels = p.labels;
    auto deadline = p.deadline;
    waiters.park_claim(std::move(labels), deadline, gen, [this, c, p = std::move(p)](bool t) mutable {
      repost(c, [this, c, p = std::move(p), t](store::Store& s) mutable { poll_claim(c, s, std::move(p), t); });
    });
    return;
  }
  json arr = json::array();
  for (const auto& run : *r) {
    json j = to_json(run);
    j["token"] = secrets[run.id];
    // How often the run must report that it is alive: this server's interval (a run
    // silent for three of them is crashed), which the agent passes on to the run.
    j["heartbeat_seconds"] = std::max<int64_t>(1, (options.agent_heartbeat_interval.count() + 999) / 1000);
    arr.push_back(std::move(j));
    spdlog::info("flow run {} claimed by agent {}", run.id, p.agent_id);
  }
  metrics->add_claimed_runs(r->size());
  c->answered = true;
  c->respond(json_response(200, {{"runs", std::move(arr)}}));
}

}  // namespace culvert::server
