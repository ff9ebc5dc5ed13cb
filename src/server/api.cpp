#include "server/api.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "server/api_json.hpp"
#include "server/auth.hpp"
#include "server/liveness.hpp"
#include "server/metrics.hpp"
#include "server/waiters.hpp"
#include "server/work_pool.hpp"
#include "store/store.hpp"

namespace culvert::server {
namespace {

int http_status_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnprocessable: return 422;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kConflict: return 409;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kTimeout: return 504;
    case StatusCode::kCancelled: return 503;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

Response status_response(const Status& s) {
  int code = http_status_for(s.code());
  return error_response(code, error_code_for(code), s.message());
}

// A store error: the request was well-formed JSON by then, so the store's
// InvalidArgument means invalid content (422).
Response store_error(const Status& s) {
  if (s.code() == StatusCode::kInvalidArgument) return status_response(unprocessable(s.message()));
  if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kInternal)
    spdlog::error("store: {}", s.to_string());
  return status_response(s);
}

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Response run_response(const store::FlowRun& run) {
  Response r;
  r.body = flow_run_text(run);
  return r;
}

Status forbidden_run() {
  return {StatusCode::kPermissionDenied, "a run token may only act for its own flow run"};
}

bool is_waiting(State s) { return s == State::kScheduled || s == State::kPending || s == State::kRetrying; }

struct Call {
  Request req;
  PathParams params;
  Principal principal;
  size_t route = 0;
  Responder respond;
  // Long polls: the client closed its connection while parked; and whether the poll
  // has been answered (after which a close is an ordinary one).
  std::atomic<bool> peer_gone{false};
  std::atomic<bool> answered{false};
  bool watching = false;  // watch_peer asked (touched by the poll's own thread only)
};
using CallPtr = std::shared_ptr<Call>;

class RunEventsImpl final : public RunEvents {
 public:
  RunEventsImpl(Waiters& w, Authenticator& a) : waiters_(w), auth_(a) {}
  void run_due(const std::vector<std::string>& labels) override { waiters_.notify_runs(labels); }
  void run_due_at(SysTime t) override { waiters_.notify_due_at(t); }
  void run_changed(const std::string& run_id, bool final) override {
    auth_.invalidate_run(run_id);
    if (final) waiters_.notify_logs(run_id);
  }

 private:
  Waiters& waiters_;
  Authenticator& auth_;
};

}  // namespace

std::unique_ptr<RunEvents> make_run_events(Waiters& waiters, Authenticator& auth) {
  return std::make_unique<RunEventsImpl>(waiters, auth);
}

struct Api::Impl {
  using Handler = std::function<void(const CallPtr&, store::Store&)>;

  Clock& clock;
  WorkPool& pool;
  StoreForWorker stores;
  Authenticator& auth;
  Waiters& waiters;
  RunEvents& events;
  ApiOptions options;
  Router router;
  std::vector<Handler> handlers;
  std::map<size_t, Response (Impl::*)(Call&)> inline_routes;  // answered on the I/O thread, no store
  std::unique_ptr<Metrics> metrics;
  std::string health_body;

  Impl(Clock& c, WorkPool& p, StoreForWorker s, Authenticator& a, Waiters& w, RunEvents& e, ApiOptions o)
      : clock(c), pool(p), stores(std::move(s)), auth(a), waiters(w), events(e), options(std::move(o)) {
    build_routes();
    std::vector<std::pair<std::string, std::string>> labels;
    for (const auto& r : router.routes()) labels.emplace_back(r.method, r.pattern);
    metrics = std::make_unique<Metrics>(std::move(labels));
    health_body = json({{"status", "ok"}, {"version", options.version}}).dump();
  }

  // Adds a route whose handler answers synchronously.
  void add(RouteSpec spec, Response (Impl::*fn)(Call&, store::Store&)) {
    router.add(std::move(spec));
    handlers.push_back([this, fn](const CallPtr& c, store::Store& st) { c->respond((this->*fn)(*c, st)); });
  }
  // Adds a route answered on the I/O thread without the store or a token.
  void add_inline(RouteSpec spec, Response (Impl::*fn)(Call&)) {
    inline_routes[router.add(std::move(spec))] = fn;
    handlers.emplace_back();
  }
  // Adds a route whose handler answers (possibly later) through c->respond.
  void add_async(RouteSpec spec, void (Impl::*fn)(const CallPtr&, store::Store&)) {
    router.add(std::move(spec));
    handlers.push_back([this, fn](const CallPtr& c, store::Store& st) { (this->*fn)(c, st); });
  }

  void build_routes();

  // ---- dispatch
  void handle(Request req, Responder respond) {
    auto started = std::chrono::steady_clock::now();
    auto m = router.match(req.method, req.path);
    size_t route = m.status == 200 ? m.index : router.routes().size();
    Responder timed = [this, route, started, respond = std::move(respond)](Response r) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      metrics->observe_request(route, r.status, secs);
      if (spdlog::should_log(spdlog::level::debug)) {
        const char* pattern = route < router.routes().size() ? router.routes()[route].pattern.c_str() : "unmatched";
        spdlog::debug("http route={} status={} ms={:.3f}", pattern, r.status, secs * 1e3);
      }
      respond(std::move(r));
    };
    if (m.status == 404) {
      return timed(error_response(404, "not_found", "no route for " + req.method + " " + req.path));
    }
    if (m.status == 405) {
      auto r = error_response(405, "method_not_allowed",
                              "method " + req.method + " is not allowed on " + req.path + "; allowed: " + m.allow);
      r.headers.emplace_back("Allow", m.allow);
      return timed(std::move(r));
    }
    auto call = std::make_shared<Call>();
    call->req = std::move(req);
    call->params = std::move(m.params);
    call->route = m.index;
    call->respond = std::move(timed);
    if (auto it = inline_routes.find(m.index); it != inline_routes.end()) {
      return call->respond((this->*(it->second))(*call));
    }
    if (!pool.post([this, call](int worker) { run(call, worker); })) {
      call->respond(error_response(503, "unavailable", "the server is shutting down"));
    }
  }

  void run(const CallPtr& call, int worker) {
    try {
      auto& st = stores(worker);
      const auto& spec = router.routes()[call->route];
      if (spec.access != Access::kPublic) {
        auto p = auth.authenticate(call->req.authorization, st);
        if (!p) return call->respond(status_response(p.status()));
        if (auto s = authorize(*p, spec.access, spec.run_token); !s) return call->respond(status_response(s));
        call->principal = std::move(*p);
      }
      handlers[call->route](call, st);
    } catch (const std::exception& e) {
      spdlog::error("api: {} {} failed: {}", call->req.method, call->req.path, e.what());
      call->respond(error_response(500, "internal", "internal error"));
    }
  }

  // Re-runs `fn` on the pool (after a long poll woke up).
  void repost(const CallPtr& call, std::function<void(store::Store&)> fn) {
    bool ok = pool.post([this, call, fn = std::move(fn)](int worker) {
      try {
        fn(stores(worker));
      } catch (const std::exception& e) {
        spdlog::error("api: {} {} failed: {}", call->req.method, call->req.path, e.what());
        call->respond(error_response(500, "internal", "internal error"));
      }
    });
    if (!ok) call->respond(error_response(503, "unavailable", "the server is shutting down"));
  }

  Result<json> body(const Call& c, bool empty_is_object = false) { return parse_body(c.req.body, empty_is_object); }

  // Notifies parked claims about a run that may now be claimable.
  void announce(const store::FlowRun& run) {
    if (!is_waiting(run.state)) return;
    if (run.scheduled_start_time <= clock.now())
      events.run_due(run.labels);
    else
      events.run_due_at(run.scheduled_start_time);
  }

  // ---- public
  Response health(Call&) {
    Response r;
    r.body = health_body;
    return r;
  }
  Response openapi(Call&) {
    Response r;
    r.body = openapi_document();
    return r;
  }
  Response get_metrics(Call&, store::Store& st) {
    Metrics::Gauges g;
    auto counts = st.count_runs_by_state();
    if (!counts) return store_error(counts.status());
    std::map<std::string, int64_t> by;
    for (int s = 0; s <= static_cast<int>(State::kCancelled); ++s) by[state_name(static_cast<State>(s))] = 0;
    for (const auto& c : *counts) by[state_name(c.state)] = c.count;
    for (auto& [k, v] : by) g.runs_by_state.emplace_back(k, v);
    auto agents = st.list_agents();
    if (!agents) return store_error(agents.status());
    for (const auto& a : *agents) (agent_healthy(a) ? g.agents_healthy : g.agents_unhealthy)++;
    g.long_polls_parked = static_cast<int64_t>(waiters.parked());
    Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics->render(g);
    return r;
  }

  // ---- projects
  Response create_project(Call& c, store::Store& st) {
    auto b = body(c);
    if (!b) return status_response(b.status());
    auto p = parse_project_create(*b);
    if (!p) return status_response(p.status());
    auto r = st.create_project(p->name, p->description, p->skip_if_exists);
    if (!r) return store_error(r.status());
    return json_response(201, to_json(*r));
  }
  Response list_projects(Call&, store::Store& st) {
    auto r = st.list_projects();
    if (!r) return store_error(r.status());
    json arr = json::array();
    for (const auto& p : *r) arr.push_back(to_json(p));
    return json_response(200, {{"projects", std::move(arr)}});
  }

  // ---- flows
  Response register_flow(Call& c, store::Store& st) {
    auto b = body(c);
    if (!b) return status_response(b.status());
    auto v = parse_flow_registration(*b);
    if (!v) return status_response(v.status());
    auto r = st.register_flow(*v);
    if (!r) return store_error(r.status());
    spdlog::info("flow registered: {}/{} version {} ({})", r->project_name, r->name, r->version, r->id);
    return json_response(201, to_json(*r, true));
  }
  Response list_flows(Call& c, store::Store& st) {
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
  Response get_flow(Call& c, store::Store& st) {
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
  Response set_schedule(Call& c, store::Store& st) {
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

  // ---- flow runs
  Response create_run(Call& c, store::Store& st) {
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
  Response list_runs(Call& c, store::Store& st) {
    store::FlowRunQuery q;
    if (auto f = c.req.query_param("flow_id"); f && !f->empty()) q.flow_id = *f;
    if (auto s = c.req.query_param("state"); s && !s->empty()) {
      auto state = parse_state(*s);
      if (!state) return status_response(unprocessable("query parameter 'state': unknown state '" + *s + "'"));
      q.state = *state;
    }
    if (auto p = c.req.query_param("project"); p && !p->empty()) {
      auto proj = st.find_project(*p);
      if (!proj) return store_error(proj.status());
      q.project_id = proj->id;
    }
    auto limit = parse_int_param(c.req.query_param("limit"), "limit", 1, 1000, 50);
    if (!limit) return status_response(limit.status());
    q.limit = static_cast<int>(*limit);
    q.cursor = c.req.query_param("cursor").value_or("");
    auto r = st.list_flow_runs(q);
    if (!r) return store_error(r.status());
    json arr = json::array();
    for (const auto& run : r->runs) arr.push_back(to_json(run));
    return json_response(200, {{"runs", std::move(arr)},
                               {"next_cursor", r->next_cursor.empty() ? json(nullptr) : json(r->next_cursor)}});
  }
  Response get_run(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
    auto r = st.get_flow_run(id);
    if (!r) return store_error(r.status());
    return run_response(*r);
  }
  Response set_state(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
    auto b = body(c);
    if (!b) return status_response(b.status());
    auto ch = parse_state_change(*b);
    if (!ch) return status_response(ch.status());
    store::SetFlowRunState s;
    s.run_id = id;
    s.state = ch->state;
    s.message = ch->message;
    s.expected_version = ch->expected_version;
    s.scheduled_start_time = ch->scheduled_start_time;
    s.now = clock.now();
    auto r = st.set_flow_run_state(s);
    if (!r) return store_error(r.status());
    events.run_changed(id, is_final(r->state));
    announce(*r);
    if (r->state == State::kCrashed) {
      // Lost infrastructure, whoever noticed it: a new attempt when the flow allows.
      if (auto again = reschedule_after_crash(st, *r, clock.now())) {
        events.run_changed(id, false);
        announce(*again);
      }
    }
    return run_response(*r);
  }
  Response heartbeat_run(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
    auto r = st.heartbeat_flow_run(id, clock.now());
    if (!r) return store_error(r.status());
    return run_response(*r);
  }
  Response cancel_run(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto run = st.get_flow_run(id);
      if (!run) return store_error(run.status());
      if (run->state == State::kCancelling) return run_response(*run);
      store::SetFlowRunState s;
      s.run_id = id;
      s.expected_version = run->version;
      s.now = clock.now();
      s.message = "cancel requested by " + c.principal.name;
      if (is_final(run->state)) {
        return status_response(conflict(std::string("cannot cancel flow run ") + id + ": illegal transition from " +
                                         state_name(run->state) + " to Cancelled: the run is already in a final state"));
      }
      s.state = (run->state == State::kRunning || run->state == State::kSubmitted) ? State::kCancelling
                                                                                      : State::kCancelled;
      auto r = st.set_flow_run_state(s);
      if (r) {
        events.run_changed(id, is_final(r->state));
        spdlog::info("flow run {}: {} -> {} (cancel)", id, state_name(run->state), state_name(r->state));
        return run_response(*r);
      }
      if (r.status().code() != StatusCode::kConflict) return store_error(r.status());
      // Another writer moved the run; look again.
    }
    return status_response(conflict("flow run " + id + " kept changing while cancelling; try again"));
  }
  Response retry_run(Call& c, store::Store& st) {
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
    events.run_changed(id, false);
    announce(*r);
    return run_response(*r);
  }
  Response run_history(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
    auto run = st.get_flow_run(id);
    if (!run) return store_error(run.status());
    auto h = st.get_flow_run_history(id);
    if (!h) return store_error(h.status());
    json arr = json::array();
    for (const auto& e : *h) arr.push_back(to_json(e));
    return json_response(200, {{"history", std::move(arr)}});
  }
  Response diagnose_run(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    auto run = st.get_flow_run(id);
    if (!run) return store_error(run.status());
    auto agents = st.list_agents();
    if (!agents) return store_error(agents.status());
    json out = {{"flow_run_id", id}, {"state", state_name(run->state)}, {"labels", run->labels}};
    json list = json::array();
    int healthy = 0, covering = 0;
    for (const auto& a : *agents) {
      bool h = agent_healthy(a);
      std::vector<std::string> missing;
      for (const auto& l : run->labels)
        if (!std::binary_search(a.labels.begin(), a.labels.end(), l)) missing.push_back(l);
      healthy += h;
      covering += (h && missing.empty());
      list.push_back({{"id", a.id}, {"name", a.name}, {"health", h ? "healthy" : "unhealthy"},
                      {"labels", a.labels}, {"missing_labels", missing}});
    }
    out["agents"] = std::move(list);
    std::string why;
    if (!is_waiting(run->state)) {
      why = std::string("the run is ") + state_name(run->state) + ", not waiting for an agent";
    } else if (run->scheduled_start_time > clock.now()) {
      why = "the run is not due until " + format_rfc3339(run->scheduled_start_time);
    } else if (healthy == 0) {
      why = "no healthy agent: start one with `culvert agent start`";
    } else if (covering == 0) {
      why = "no healthy agent has every label of the run; see missing_labels per agent";
    } else {
      why = "a healthy agent covers the run; it should be claimed at the agent's next poll (it may be at its "
            "--max-concurrent limit)";
    }
    out["reason"] = why;
    return json_response(200, out);
  }

  // ---- task runs
  Response list_task_runs(Call& c, store::Store& st) {
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
  // Task-run states are group-committed: a request parks its batch, and whichever pool
  // thread finds no write in progress becomes the writer. It writes everything parked
  // so far in one transaction, answers each request, and repeats while more arrived
  // meanwhile. Each commit then carries the changes of every request that came during
  // the previous one, so many clients sending one change each cost one flush (one
  // fsync on PostgreSQL) per round instead of one per request.
  struct ParkedStates {
    CallPtr call;
    std::vector<store::TaskRunUpdate> batch;
  };
  std::mutex states_mu;
  std::vector<ParkedStates> parked_states;
  bool states_writer = false;
  static constexpr size_t kMaxGroupItems = 4 * kMaxBatch;

  void task_run_states(const CallPtr& c, store::Store& st) {
    auto b = body(*c);
    if (!b) return c->respond(status_response(b.status()));
    auto batch = parse_task_run_batch(*b, clock.now());
    if (!batch) return c->respond(status_response(batch.status()));
    for (const auto& u : *batch)
      if (!c->principal.may_access_run(u.flow_run_id)) return c->respond(status_response(forbidden_run()));
    if (batch->empty()) return c->respond(json_response(200, {{"task_run_ids", json::array()}}));
    {
      std::lock_guard lock(states_mu);
      parked_states.push_back({c, std::move(*batch)});
      if (states_writer) return;  // the writer in progress takes it in its next round
      states_writer = true;
    }
    while (true) {
      std::vector<ParkedStates> group;
      {
        std::lock_guard lock(states_mu);
        if (parked_states.empty()) {
          states_writer = false;
          return;
        }
        size_t items = 0, n = 0;
        while (n < parked_states.size() && (n == 0 || items + parked_states[n].batch.size() <= kMaxGroupItems))
          items += parked_states[n++].batch.size();
        group.assign(std::make_move_iterator(parked_states.begin()), std::make_move_iterator(parked_states.begin() + n));
        parked_states.erase(parked_states.begin(), parked_states.begin() + n);
      }
      write_states(group, st);
    }
  }

  void write_states(std::vector<ParkedStates>& group, store::Store& st) {
    auto answer = [](ParkedStates& p, const Result<std::vector<std::string>>& r, size_t from) {
      if (!r) return p.call->respond(store_error(r.status()));
      json ids = json::array();
      for (size_t i = 0; i < p.batch.size(); ++i) ids.push_back((*r)[from + i]);
      p.call->respond(json_response(200, {{"task_run_ids", std::move(ids)}}));
    };
    if (group.size() == 1) return answer(group[0], st.upsert_task_runs(group[0].batch), 0);
    std::vector<store::TaskRunUpdate> all;
    for (const auto& p : group) all.insert(all.end(), p.batch.begin(), p.batch.end());
    auto r = st.upsert_task_runs(all);
    if (r) {
      size_t from = 0;
      for (auto& p : group) {
        answer(p, r, from);
        from += p.batch.size();
      }
      return;
    }
    // One request's batch spoiled the group (e.g. an unknown flow run): each on its own,
    // so every request gets the answer it would have had alone.
    for (auto& p : group) answer(p, st.upsert_task_runs(p.batch), 0);
  }

  // ---- logs
  Response append_logs(Call& c, store::Store& st) {
    auto b = body(c);
    if (!b) return status_response(b.status());
    auto batch = parse_log_batch(*b, clock.now());
    if (!batch) return status_response(batch.status());
    std::set<std::string> runs;
    for (const auto& l : *batch) {
      if (!c.principal.may_access_run(l.flow_run_id)) return status_response(forbidden_run());
      runs.insert(l.flow_run_id);
    }
    if (batch->empty()) return json_response(201, {{"ids", json::array()}});
    auto r = st.append_logs(*batch);
    if (!r) return store_error(r.status());
    for (const auto& id : runs) waiters.notify_logs(id);
    return json_response(201, {{"ids", *r}});
  }

  struct LogPoll {
    std::string run_id;
    int64_t after = 0;
    int limit = 1000;
    SteadyTime deadline;
  };
  void read_logs(const CallPtr& c, store::Store& st) {
    const auto& id = c->params.get("id");
    if (!c->principal.may_access_run(id)) return c->respond(status_response(forbidden_run()));
    auto after = parse_int_param(c->req.query_param("after"), "after", 0, INT64_MAX, 0);
    if (!after) return c->respond(status_response(after.status()));
    auto limit = parse_int_param(c->req.query_param("limit"), "limit", 1, 10000, 1000);
    if (!limit) return c->respond(status_response(limit.status()));
    auto wait = parse_int_param(c->req.query_param("wait_ms"), "wait_ms", 0, options.max_wait.count(), 0);
    if (!wait) return c->respond(status_response(wait.status()));
    LogPoll p{id, *after, static_cast<int>(*limit), clock.steady_now() + Millis(*wait)};
    poll_logs(c, st, std::move(p), false);
  }
  void poll_logs(const CallPtr& c, store::Store& st, LogPoll p, bool timed_out) {
    uint64_t gen = waiters.log_generation();
    auto run = st.get_flow_run(p.run_id);
    if (!run) return c->respond(store_error(run.status()));
    auto logs = st.read_logs(p.run_id, p.after, p.limit);
    if (!logs) return c->respond(store_error(logs.status()));
    if (logs->empty() && !is_final(run->state) && !timed_out && clock.steady_now() < p.deadline) {
      auto deadline = p.deadline;
      std::string run_id = p.run_id;
      waiters.park_logs(run_id, deadline, gen, [this, c, p = std::move(p)](bool t) mutable {
        repost(c, [this, c, p = std::move(p), t](store::Store& s) mutable { poll_logs(c, s, std::move(p), t); });
      });
      return;
    }
    json arr = json::array();
    int64_t last = p.after;
    for (const auto& l : *logs) {
      arr.push_back(to_json(l));
      last = l.id;
    }
    c->respond(json_response(200, {{"logs", std::move(arr)},
                                   {"next_cursor", std::to_string(last)},
                                   {"flow_run_state", state_name(run->state)}}));
  }

  // ---- agents
  bool agent_healthy(const store::Agent& a) const {
    SysTime last = a.last_heartbeat ? *a.last_heartbeat : a.created;
    return clock.now() - last <= options.agent_heartbeat_interval * options.agent_missed_heartbeats;
  }
  Response register_agent(Call& c, store::Store& st) {
    auto b = body(c);
    if (!b) return status_response(b.status());
    auto a = parse_agent(*b);
    if (!a) return status_response(a.status());
    auto r = st.register_agent(*a);
    if (!r) return store_error(r.status());
    if (auto s = st.heartbeat_agent(r->id, clock.now()); !s) return store_error(s);
    spdlog::info("agent registered: {} ({}, labels [{}])", r->name, r->id, fmt::join(r->labels, ","));
    return json_response(201, to_json(*r, true));
  }
  Response heartbeat_agent(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    if (auto s = st.heartbeat_agent(id, clock.now()); !s) return store_error(s);
    return json_response(200, {{"id", id}, {"health", "healthy"}});
  }
  Response list_agents(Call&, store::Store& st) {
    auto r = st.list_agents();
    if (!r) return store_error(r.status());
    json arr = json::array();
    for (const auto& a : *r) arr.push_back(to_json(a, agent_healthy(a)));
    return json_response(200, {{"agents", std::move(arr)}});
  }

  struct ClaimPoll {
    std::string agent_id;
    std::vector<std::string> labels;
    int max = 1;
    SteadyTime deadline;
  };
  void claim(const CallPtr& c, store::Store& st) {
    auto b = body(*c, true);
    if (!b) return c->respond(status_response(b.status()));
    auto cb = parse_claim(*b, options.max_wait);
    if (!cb) return c->respond(status_response(cb.status()));
    const auto& id = c->params.get("id");
    auto agent = st.get_agent(id);
    if (!agent) return c->respond(store_error(agent.status()));
    if (auto s = st.heartbeat_agent(id, clock.now()); !s) return c->respond(store_error(s));
    metrics->add_claim_request();
    ClaimPoll p{id, agent->labels, cb->max, clock.steady_now() + cb->wait};
    poll_claim(c, st, std::move(p), false);
  }
  void poll_claim(const CallPtr& c, store::Store& st, ClaimPoll p, bool timed_out) {
    uint64_t gen = waiters.claim_generation();
    std::map<std::string, std::string> secrets;  // run id -> run token
    store::ClaimRequest req;
    req.agent_id = p.agent_id;
    req.agent_labels = p.labels;
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
      arr.push_back(std::move(j));
      spdlog::info("flow run {} claimed by agent {}", run.id, p.agent_id);
    }
    metrics->add_claimed_runs(r->size());
    c->answered = true;
    c->respond(json_response(200, {{"runs", std::move(arr)}}));
  }

  // ---- tokens
  Response create_token(Call& c, store::Store& st) {
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
  Response list_tokens(Call& c, store::Store& st) {
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
  Response revoke_token(Call& c, store::Store& st) {
    const auto& id = c.params.get("id");
    if (auto s = st.revoke_token(id, clock.now()); !s) return store_error(s);
    auth.invalidate_token(id);
    spdlog::info("token revoked: {}", id);
    return json_response(200, {{"id", id}, {"revoked", true}});
  }
};

void Api::Impl::build_routes() {
  auto R = [](std::string m, std::string p, Access a, bool run, std::string summary) {
    return RouteSpec{std::move(m), std::move(p), a, run, std::move(summary)};
  };
  using A = Access;
  add_inline(R("GET", "/api/health", A::kPublic, false, "Liveness of the server"), &Impl::health);
  add(R("GET", "/metrics", A::kPublic, false, "Prometheus metrics"), &Impl::get_metrics);
  add_inline(R("GET", "/api/v1/openapi.json", A::kPublic, false, "This API's OpenAPI document"), &Impl::openapi);

  add(R("POST", "/api/v1/projects", A::kUser, false, "Create a project"), &Impl::create_project);
  add(R("GET", "/api/v1/projects", A::kRunner, false, "List projects"), &Impl::list_projects);

  add(R("POST", "/api/v1/flows", A::kUser, false, "Register a flow version"), &Impl::register_flow);
  add(R("GET", "/api/v1/flows", A::kRunner, false, "List flows"), &Impl::list_flows);
  add(R("GET", "/api/v1/flows/{id}", A::kRunner, true, "Get a flow version"), &Impl::get_flow);
  add(R("POST", "/api/v1/flows/{id}/schedule", A::kUser, false, "Pause or resume a flow's schedule"),
      &Impl::set_schedule);

  add(R("POST", "/api/v1/flow-runs", A::kUser, false, "Create a flow run"), &Impl::create_run);
  add(R("GET", "/api/v1/flow-runs", A::kRunner, false, "List flow runs"), &Impl::list_runs);
  add(R("GET", "/api/v1/flow-runs/{id}", A::kRunner, true, "Get a flow run"), &Impl::get_run);
  add(R("POST", "/api/v1/flow-runs/{id}/state", A::kRunner, true, "Set a flow run's state"), &Impl::set_state);
  add(R("POST", "/api/v1/flow-runs/{id}/heartbeat", A::kRunner, true, "Flow run heartbeat"), &Impl::heartbeat_run);
  add(R("POST", "/api/v1/flow-runs/{id}/cancel", A::kUser, false, "Cancel a flow run"), &Impl::cancel_run);
  add(R("POST", "/api/v1/flow-runs/{id}/retry", A::kUser, false, "Retry a finished flow run"), &Impl::retry_run);
  add(R("GET", "/api/v1/flow-runs/{id}/history", A::kRunner, true, "A flow run's state history"),
      &Impl::run_history);
  add(R("GET", "/api/v1/flow-runs/{id}/diagnosis", A::kRunner, false, "Why a flow run has not been claimed"),
      &Impl::diagnose_run);
  add(R("GET", "/api/v1/flow-runs/{id}/task-runs", A::kRunner, true, "A flow run's task runs"),
      &Impl::list_task_runs);
  add_async(R("POST", "/api/v1/task-runs/states", A::kRunner, true, "Report task-run states (batch)"),
            &Impl::task_run_states);

  add(R("POST", "/api/v1/logs", A::kRunner, true, "Append log lines (batch)"), &Impl::append_logs);
  add_async(R("GET", "/api/v1/flow-runs/{id}/logs", A::kRunner, true, "Read a flow run's logs (long poll)"),
            &Impl::read_logs);

  add(R("POST", "/api/v1/agents", A::kRunner, false, "Register an agent"), &Impl::register_agent);
  add(R("GET", "/api/v1/agents", A::kRunner, false, "List agents with health"), &Impl::list_agents);
  add(R("POST", "/api/v1/agents/{id}/heartbeat", A::kRunner, false, "Agent heartbeat"), &Impl::heartbeat_agent);
  add_async(R("POST", "/api/v1/agents/{id}/claim", A::kRunner, false, "Claim due flow runs (long poll)"),
            &Impl::claim);

  add(R("POST", "/api/v1/tokens", A::kAdmin, false, "Create an API token"), &Impl::create_token);
  add(R("GET", "/api/v1/tokens", A::kAdmin, false, "List API tokens"), &Impl::list_tokens);
  add(R("DELETE", "/api/v1/tokens/{id}", A::kAdmin, false, "Revoke an API token"), &Impl::revoke_token);
}

Api::Api(Clock& clock, WorkPool& pool, StoreForWorker stores, Authenticator& auth, Waiters& waiters,
         RunEvents& events, ApiOptions options)
    : impl_(std::make_unique<Impl>(clock, pool, std::move(stores), auth, waiters, events, std::move(options))) {}

Api::~Api() = default;

void Api::handle(Request request, Responder respond) { impl_->handle(std::move(request), std::move(respond)); }

const Router& Api::router() const { return impl_->router; }

Metrics& Api::metrics() { return *impl_->metrics; }

}  // namespace culvert::server
