// The API (api_impl.hpp): dispatch (route match, authentication, the database pool),
// the route table, the public routes (health, metrics, OpenAPI) and the shared answers.
#include "server/api.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

#include "server/api_impl.hpp"
#include "server/liveness.hpp"

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

class RunEventsImpl final : public RunEvents {
 public:
  RunEventsImpl(Waiters& w, Authenticator& a) : waiters_(w), auth_(a) {}
  void run_due(const std::vector<std::string>& labels) override { waiters_.notify_runs(labels); }
  void run_due_at(SysTime t) override { waiters_.notify_due_at(t); }
  void run_changed(const std::string& run_id, bool final) override {
    auth_.invalidate_run(run_id);
    if (final) waiters_.notify_logs(run_id);
    // A parent's change may have ended its children (the store's cascade).
    waiters_.notify_children(run_id);
  }
  void child_changed(const std::string& parent_run_id) override { waiters_.notify_children(parent_run_id); }

 private:
  Waiters& waiters_;
  Authenticator& auth_;
};

}  // namespace

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

std::unique_ptr<RunEvents> make_run_events(Waiters& waiters, Authenticator& auth) {
  return std::make_unique<RunEventsImpl>(waiters, auth);
}

Api::Impl::Impl(Clock& c, WorkPool& p, StoreForWorker s, Authenticator& a, Waiters& w, RunEvents& e,
                ApiOptions o)
    : clock(c), pool(p), stores(std::move(s)), auth(a), waiters(w), events(e), options(std::move(o)) {
  build_routes();
  std::vector<std::pair<std::string, std::string>> labels;
  for (const auto& r : router.routes()) labels.emplace_back(r.method, r.pattern);
  metrics = std::make_unique<Metrics>(std::move(labels));
  health_body = json({{"status", "ok"}, {"version", options.version}}).dump();
}

// Adds a route whose handler answers synchronously.
void Api::Impl::add(RouteSpec spec, Response (Impl::*fn)(Call&, store::Store&)) {
  router.add(std::move(spec));
  handlers.push_back([this, fn](const CallPtr& c, store::Store& st) { c->respond((this->*fn)(*c, st)); });
}

// Adds a route answered on the I/O thread without the store or a token.
void Api::Impl::add_inline(RouteSpec spec, Response (Impl::*fn)(Call&)) {
  inline_routes[router.add(std::move(spec))] = fn;
  handlers.emplace_back();
}

// Adds a route whose handler answers (possibly later) through c->respond.
void Api::Impl::add_async(RouteSpec spec, void (Impl::*fn)(const CallPtr&, store::Store&)) {
  router.add(std::move(spec));
  handlers.push_back([this, fn](const CallPtr& c, store::Store& st) { (this->*fn)(c, st); });
}

void Api::Impl::handle(Request req, Responder respond) {
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

void Api::Impl::run(const CallPtr& call, int worker) {
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
void Api::Impl::repost(const CallPtr& call, std::function<void(store::Store&)> fn) {
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

// Notifies parked claims about a run that may now be claimable.
void Api::Impl::announce(const store::FlowRun& run) {
  if (!is_waiting(run.state)) return;
  if (run.scheduled_start_time <= clock.now())
    events.run_due(run.labels);
  else
    events.run_due_at(run.scheduled_start_time);
}

Response Api::Impl::health(Call&) {
  Response r;
  r.body = health_body;
  return r;
}

Response Api::Impl::openapi(Call&) {
  Response r;
  r.body = openapi_document();
  return r;
}

Response Api::Impl::get_metrics(Call&, store::Store& st) {
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
  add(R("POST", "/api/v1/flow-runs/{id}/children", A::kUser, true,
        "Create child runs, one per chunk of a distributed mapped task (the parent's own run token may)"),
      &Impl::create_children);
  add_async(R("GET", "/api/v1/flow-runs/{id}/children", A::kRunner, true,
              "A flow run's child runs by chunk, with counts by state (long poll)"),
            &Impl::list_children);
  add(R("GET", "/api/v1/flow-runs/{id}/history", A::kRunner, true, "A flow run's state history"),
      &Impl::run_history);
  add(R("GET", "/api/v1/flow-runs/{id}/attempts", A::kRunner, true,
        "A flow run's attempts, each with its own start and end"),
      &Impl::run_attempts);
  add(R("GET", "/api/v1/flow-runs/{id}/diagnosis", A::kRunner, false, "Why a flow run has not been claimed"),
      &Impl::diagnose_run);
  add(R("POST", "/api/v1/flow-runs/{id}/infrastructure", A::kRunner, true,
        "Report what runs a flow run (the agent's token or the run's own)"),
      &Impl::report_infrastructure);
  add(R("GET", "/api/v1/flow-runs/{id}/task-runs", A::kRunner, true, "A flow run's task runs"),
      &Impl::list_task_runs);
  add(R("GET", "/api/v1/flow-runs/{id}/task-runs/history", A::kRunner, true,
        "The task runs' history: every Retrying state (reason, next start)"),
      &Impl::list_task_run_history);
  add_async(R("POST", "/api/v1/task-runs/states", A::kRunner, true, "Report task-run states (batch)"),
            &Impl::task_run_states);

  add(R("POST", "/api/v1/logs", A::kRunner, true, "Append log lines (batch)"), &Impl::append_logs);
  add_async(R("GET", "/api/v1/flow-runs/{id}/logs", A::kRunner, true, "Read a flow run's logs (long poll)"),
            &Impl::read_logs);

  add(R("POST", "/api/v1/agents", A::kRunner, false, "Register an agent"), &Impl::register_agent);
  add(R("GET", "/api/v1/agents", A::kRunner, false, "List agents with health"), &Impl::list_agents);
  add(R("POST", "/api/v1/agents/{id}/heartbeat", A::kRunner, false, "Agent heartbeat"), &Impl::heartbeat_agent);
  add(R("DELETE", "/api/v1/agents/{id}", A::kRunner, false, "Deregister an agent (shown stopped)"),
      &Impl::deregister_agent);
  add_async(R("POST", "/api/v1/agents/{id}/claim", A::kRunner, false, "Claim due flow runs (long poll)"),
            &Impl::claim);

  add(R("GET", "/api/v1/dashboard", A::kRunner, false,
        "The web UI's dashboard: runs by state since a time, late runs, recent failures, agents"),
      &Impl::dashboard);
  add(R("GET", "/api/v1/flows/{id}/fire-times", A::kRunner, false, "A flow version's next scheduled fire times"),
      &Impl::flow_fire_times);
  add(R("GET", "/api/v1/session", A::kRunner, true, "The calling token's name, scope and expiry"), &Impl::session);

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