// The API (api_impl.hpp): flow runs (create, list, state, cancel, retry, history, diagnosis).
#include "server/api_impl.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/timefmt.hpp"
#include "server/liveness.hpp"

namespace culvert::server {
namespace {
// The state message of a run a token asked to cancel: who asked, by the token's name and
// scope (a run token: the flow run itself). Agents pass it on to the infrastructure they
// stop (an ECS task's StopTask reason, the run's log), and it stays in the run's history.
std::string cancel_requested_by(const Principal& p) {
  if (p.scope == Scope::kRun) return "cancel requested by flow run " + p.flow_run_id + " itself (its run token)";
  return "cancel requested by " + p.name + " (" + scope_name(p.scope) + " token)";
}
}  // namespace

// A runner token changes a run that is on an agent only as that agent: the token the
// agent is bound to. Run tokens act for their own run (checked by the caller); user and
// admin tokens for any run.
Status Api::Impl::may_write_run(const Principal& p, const std::string& run_id, store::Store& st) {
  if (p.scope != Scope::kRunner) return Status::ok();
  auto run = st.get_flow_run(run_id);
  if (!run) return run.status();
  if (!run->agent_id) return Status::ok();
  auto agent = st.get_agent(*run->agent_id);
  if (!agent) return agent.status().code() == StatusCode::kNotFound ? Status::ok() : agent.status();
  if (may_act_as_agent(p, *agent, false)) return Status::ok();
  return {StatusCode::kPermissionDenied, "flow run " + run_id + " is on agent " + agent->id + " ('" + agent->name +
                                             "'), which another token registered; this runner token may not change it"};
}

Response Api::Impl::create_run(Call& c, store::Store& st) {
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto req = parse_flow_run_create(*b);
  if (!req) return status_response(req.status());
  auto flow = req->flow_id ? st.get_flow(*req->flow_id) : st.find_latest_flow(*req->project, *req->flow);
  if (!flow) return store_error(flow.status());
  json desc = json::parse(flow->description_json, nullptr, false);
  if (auto s = check_parameters(desc, req->parameters); !s) return status_response(s);
  store::NewFlowRun spec;
  spec.flow_id = flow->id;
  spec.parameters_json = req->parameters.dump(-1, ' ', false, json::error_handler_t::replace);
  spec.labels = req->labels;
  spec.idempotency_key = req->idempotency_key;
  spec.scheduled_start_time = req->scheduled_start_time;
  spec.state_message = "created by " + c.principal.name;
  auto r = st.create_flow_run(spec);
  if (!r) return store_error(r.status());
  auto& [run, created] = *r;
  if (created) {
    announce(run);
    spdlog::info("flow run created: {} of {} v{}", run.id, run.flow_name, run.flow_version);
  }
  return json_response(created ? 201 : 200, to_json(run));
}

Response Api::Impl::list_runs(Call& c, store::Store& st) {
  store::FlowRunQuery q;
  if (auto f = c.req.query_param("flow_id"); f && !f->empty()) q.flow_id = *f;
  if (auto a = c.req.query_param("agent_id"); a && !a->empty()) {
    if (a->size() > kMaxNameLength) return status_response(unprocessable("query parameter 'agent_id' is too long"));
    q.agent_id = *a;
  }
  // `state` may repeat: runs in any of the states.
  for (const auto& [k, v] : c.req.query) {
    if (k != "state" || v.empty()) continue;
    auto state = parse_state(v);
    if (!state)
      return status_response(unprocessable("query parameter 'state': unknown state '" + v.substr(0, 64) +
                                           "' (states are spelled as in Running, Submitted, Cancelling...)"));
    if (std::find(q.states.begin(), q.states.end(), *state) == q.states.end()) q.states.push_back(*state);
  }
  if (auto parent = c.req.query_param("parent"); parent && !parent->empty()) {
    if (parent->size() > kMaxNameLength) return status_response(unprocessable("query parameter 'parent' is too long"));
    q.parent_run_id = *parent;
  }
  if (auto l = c.req.query_param("label"); l && !l->empty()) {
    if (l->size() > kMaxNameLength) return status_response(unprocessable("query parameter 'label' is too long"));
    q.label = *l;
  }
  for (const char* name : {"created_after", "created_before"}) {
    auto v = c.req.query_param(name);
    if (!v || v->empty()) continue;
    auto t = parse_rfc3339(*v);
    if (!t)
      return status_response(unprocessable(std::string("query parameter '") + name +
                                           "' must be an RFC 3339 time such as 2026-12-01T09:00:00Z"));
    (std::string_view(name) == "created_after" ? q.created_after : q.created_before) = *t;
  }
  if (auto p = c.req.query_param("project"); p && !p->empty()) {
    auto proj = st.find_project(*p);
    if (!proj) return store_error(proj.status());
    q.project_id = proj->id;
  }
  auto limit = parse_int_param(c.req.query_param("limit"), "limit", 1, 1000, 50);
  if (!limit) return status_response(limit.status());
  const int want = static_cast<int>(*limit);
  q.cursor = c.req.query_param("cursor").value_or("");
  // Read in steps of 50 runs (a run's parameters may be large) and stop at about
  // max_answer_bytes: a page cut short goes on after its last run.
  std::string items;
  std::string next;
  int listed = 0;
  for (;;) {
    q.limit = std::min(50, want - listed);
    auto r = st.list_flow_runs(q);
    if (!r) return store_error(r.status());
    next = r->next_cursor;
    bool cut = false;
    for (size_t i = 0; i < r->runs.size(); ++i) {
      if (listed > 0 && items.size() >= options.max_answer_bytes) {
        // After the last run listed: this step's previous one, or the previous step's last.
        next = i > 0 ? store::flow_run_cursor(r->runs[i - 1]) : q.cursor;
        cut = true;
        break;
      }
      if (listed > 0) items += ',';
      items += flow_run_text(r->runs[i]);
      ++listed;
    }
    if (cut || next.empty() || listed == want) break;
    q.cursor = next;
  }
  Response out;
  out.body = "{\"runs\":[" + items + "],\"next_cursor\":" + (next.empty() ? std::string("null") : json(next).dump()) + "}";
  return out;
}

Response Api::Impl::get_run(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto r = st.get_flow_run(id);
  if (!r) return store_error(r.status());
  auto children = children_summary(st, *r);
  if (!children) return store_error(children.status());
  Response out;
  out.body = flow_run_text(*r);
  out.body.pop_back();  // the closing brace
  out.body += ",\"children\":" + *children + "}";
  return out;
}

Response Api::Impl::set_state(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto ch = parse_state_change(*b);
  if (!ch) return status_response(ch.status());
  if (auto may = may_write_run(c.principal, id, st); !may) return store_error(may);
  store::SetFlowRunState s;
  s.run_id = id;
  s.state = ch->state;
  s.message = ch->message;
  // Who asked for a cancel is the server's to say, not the caller's: the caller's
  // message, when it gave one, follows.
  if (s.state == State::kCancelling)
    s.message = cancel_requested_by(c.principal) + (ch->message.empty() ? "" : ": " + ch->message);
  s.expected_version = ch->expected_version;
  s.scheduled_start_time = ch->scheduled_start_time;
  s.now = clock.now();
  auto r = st.set_flow_run_state(s);
  if (!r) return store_error(r.status());
  changed(*r);
  announce(*r);
  if (r->state == State::kCrashed) {
    // Lost infrastructure, whoever noticed it: a new attempt when the flow allows.
    if (auto again = reschedule_after_crash(st, *r, clock.now())) {
      changed(*again);
      announce(*again);
    }
  }
  return run_response(*r);
}

Response Api::Impl::heartbeat_run(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  if (Status ok = may_write_run(c.principal, id, st); !ok) return store_error(ok);
  auto r = st.heartbeat_flow_run(id, clock.now());
  if (!r) return store_error(r.status());
  return run_response(*r);
}

Response Api::Impl::cancel_run(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto run = st.get_flow_run(id);
    if (!run) return store_error(run.status());
    if (run->state == State::kCancelling) return run_response(*run);
    store::SetFlowRunState s;
    s.run_id = id;
    s.expected_version = run->version;
    s.now = clock.now();
    s.message = cancel_requested_by(c.principal);
    if (is_final(run->state)) {
      return status_response(conflict(std::string("cannot cancel flow run ") + id + ": illegal transition from " +
                                       state_name(run->state) + " to Cancelled: the run is already in a final state"));
    }
    s.state = (run->state == State::kRunning || run->state == State::kSubmitted) ? State::kCancelling
                                                                                    : State::kCancelled;
    auto r = st.set_flow_run_state(s);
    if (r) {
      changed(*r);
      spdlog::info("flow run {}: {} -> {} (cancel)", id, state_name(run->state), state_name(r->state));
      return run_response(*r);
    }
    if (r.status().code() != StatusCode::kConflict) return store_error(r.status());
    // Another writer moved the run; look again.
  }
  return status_response(conflict("flow run " + id + " kept changing while cancelling; try again"));
}

Response Api::Impl::retry_run(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  auto run = st.get_flow_run(id);
  if (!run) return store_error(run.status());
  if (!is_final(run->state))
    return status_response(conflict(std::string("cannot retry flow run ") + id + ": illegal transition from " +
                                    state_name(run->state) + " to Scheduled: only a run in a final state can be retried"));
  store::SetFlowRunState s;
  s.run_id = id;
  s.state = State::kScheduled;
  s.forced = true;
  s.expected_version = run->version;
  s.now = clock.now();
  s.scheduled_start_time = s.now;
  s.message = "retry requested by " + c.principal.name;
  auto r = st.set_flow_run_state(s);
  if (!r) return store_error(r.status());
  changed(*r);
  announce(*r);
  return run_response(*r);
}

Response Api::Impl::run_history(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto run = st.get_flow_run(id);
  if (!run) return store_error(run.status());
  return id_page_response(c.req, kMaxTaskPage, options.max_answer_bytes, kStoreChunk,
                          [&](int64_t after, int n) { return st.get_flow_run_history(id, after, n); });
}

Response Api::Impl::run_attempts(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto a = st.list_flow_run_attempts(id);
  if (!a) return store_error(a.status());
  json arr = json::array();
  for (const auto& e : *a) arr.push_back(to_json(e));
  return json_response(200, {{"attempts", std::move(arr)}});
}

Response Api::Impl::report_infrastructure(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  auto b = body(c);
  if (!b) return status_response(b.status());
  auto report = parse_infrastructure(*b);
  if (!report) return status_response(report.status());
  auto run = st.get_flow_run(id);
  if (!run) return store_error(run.status());
  if (!run->agent_id)
    return status_response(conflict("flow run " + id + " is not on an agent (it is " + state_name(run->state) +
                                    "); only the agent that claimed it reports its infrastructure"));
  // The run's own token, or the token of the agent the run is on.
  if (!c.principal.is_run_token()) {
    auto agent = st.get_agent(*run->agent_id);
    if (!agent && agent.status().code() != StatusCode::kNotFound) return store_error(agent.status());
    if (!agent || !may_act_as_agent(c.principal, *agent, false))
      return status_response({StatusCode::kPermissionDenied,
                              "flow run " + id + " is on agent " + *run->agent_id +
                                  ": only that agent's token or the run's own token may report its infrastructure"});
  }
  auto r = st.set_flow_run_infrastructure(id, *run->agent_id, report->kind, report->id, clock.now());
  if (!r) return store_error(r.status());
  spdlog::info("flow run {}: infrastructure {} {} (agent {})", id, report->kind, report->id, *run->agent_id);
  return run_response(*r);
}

Response Api::Impl::diagnose_run(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  auto run = st.get_flow_run(id);
  if (!run) return store_error(run.status());
  auto agents = st.list_agents();
  if (!agents) return store_error(agents.status());
  json out = {{"flow_run_id", id}, {"state", state_name(run->state)}, {"labels", run->labels}};
  out["run_config_type"] = run->run_config_type.empty() ? json(nullptr) : json(run->run_config_type);
  json list = json::array();
  int healthy = 0, covering = 0, labelled = 0;
  std::vector<std::string> other_types;  // why each healthy agent with the labels does not take it
  for (const auto& a : *agents) {
    bool h = agent_healthy(a);
    std::vector<std::string> missing;
    for (const auto& l : run->labels)
      if (!std::binary_search(a.labels.begin(), a.labels.end(), l)) missing.push_back(l);
    // The run-config type: a run config without one goes to any agent.
    bool launches = run->run_config_type.empty() ||
                    std::find(a.run_config_types.begin(), a.run_config_types.end(), run->run_config_type) !=
                        a.run_config_types.end();
    json type_mismatch = nullptr;
    if (!launches) {
      std::string types;
      for (const auto& t : a.run_config_types) types += (types.empty() ? "" : ", ") + t;
      type_mismatch = "agent " + a.name + " launches " + types + "; run needs " + run->run_config_type;
      if (h && missing.empty()) other_types.push_back(type_mismatch.get<std::string>());
    }
    healthy += h;
    labelled += (h && missing.empty());
    covering += (h && missing.empty() && launches);
    list.push_back({{"id", a.id}, {"name", a.name}, {"health", h ? "healthy" : a.stopped_at ? "stopped" : "unhealthy"},
                    {"labels", a.labels}, {"missing_labels", missing}, {"run_config_types", a.run_config_types},
                    {"type_mismatch", type_mismatch}, {"can_take", h && missing.empty() && launches}});
  }
  out["agents"] = std::move(list);
  std::string why;
  if (!is_waiting(run->state)) {
    why = std::string("the run is ") + state_name(run->state) + ", not waiting for an agent";
  } else if (run->scheduled_start_time > clock.now()) {
    why = "the run is not due until " + format_rfc3339(run->scheduled_start_time);
  } else if (healthy == 0) {
    why = "no healthy agent: start one with `culvert agent start`";
  } else if (labelled == 0) {
    why = "no healthy agent has every label of the run; see missing_labels per agent";
  } else if (covering == 0) {
    why = "no healthy agent with the run's labels launches its run-config type: ";
    for (size_t i = 0; i < other_types.size(); ++i) why += (i ? "; " : "") + other_types[i];
  } else {
    why = "a healthy agent covers the run; it should be claimed at the agent's next poll (it may be at its "
          "--max-concurrent limit)";
  }
  out["reason"] = why;
  return json_response(200, out);
}

}  // namespace culvert::server
