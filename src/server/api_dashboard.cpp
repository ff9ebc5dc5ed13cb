// The API (api_impl.hpp): the reads the web UI needs beyond the resources' own routes
// (docs/UI.md): the dashboard's aggregates and who the calling token is.
#include <map>

#include "core/schedule.hpp"
#include "core/timefmt.hpp"
#include "server/api_impl.hpp"

namespace culvert::server {
namespace {

constexpr int kLateRuns = 20;
constexpr int kRecentFailures = 20;

}  // namespace

// GET /api/v1/dashboard?since=RFC3339&late_after_seconds=N
Response Api::Impl::dashboard(Call& c, store::Store& st) {
  SysTime now = clock.now();
  SysTime since = now - std::chrono::hours(24);
  if (auto v = c.req.query_param("since"); v && !v->empty()) {
    auto t = parse_rfc3339(*v);
    if (!t)
      return status_response(
          unprocessable("query parameter 'since' must be an RFC 3339 time such as 2026-12-01T09:00:00Z"));
    since = *t;
  }
  // A waiting run counts as late once it is this far past its due time (a run is
  // normally claimed within moments of being due).
  auto late_after = parse_int_param(c.req.query_param("late_after_seconds"), "late_after_seconds", 0, 86400 * 365, 30);
  if (!late_after) return status_response(late_after.status());
  auto d = st.dashboard(since, now - std::chrono::seconds(*late_after), kLateRuns);
  if (!d) return store_error(d.status());

  std::string o = "{\"now\":\"" + format_rfc3339(now) + "\",\"since\":\"" + format_rfc3339(since) + "\"";
  json by = json::object();
  for (int s = 0; s <= static_cast<int>(State::kCancelled); ++s) by[state_name(static_cast<State>(s))] = 0;
  int64_t total = 0;
  for (const auto& sc : d->created_since_by_state) {
    by[state_name(sc.state)] = sc.count;
    total += sc.count;
  }
  o += ",\"runs_by_state\":" + by.dump() + ",\"runs_total\":" + std::to_string(total);
  o += ",\"late\":{\"after_seconds\":" + std::to_string(*late_after) + ",\"count\":" + std::to_string(d->late_count) +
       ",\"runs\":[";
  for (size_t i = 0; i < d->late_runs.size(); ++i) o += (i ? "," : "") + flow_run_text(d->late_runs[i]);
  o += "]}";

  store::FlowRunQuery fq;
  fq.states = {State::kFailed, State::kCrashed, State::kTimedOut};
  fq.limit = kRecentFailures;
  fq.created_after = since;
  auto failures = st.list_flow_runs(fq);
  if (!failures) return store_error(failures.status());
  o += ",\"recent_failures\":[";
  for (size_t i = 0; i < failures->runs.size(); ++i) o += (i ? "," : "") + flow_run_text(failures->runs[i]);
  o += "]";

  auto agents = st.list_agents();
  if (!agents) return store_error(agents.status());
  std::map<std::string, int64_t> in_flight(d->in_flight_by_agent.begin(), d->in_flight_by_agent.end());
  json arr = json::array();
  for (const auto& a : *agents) {
    json j = to_json(a, agent_healthy(a));
    auto it = in_flight.find(a.id);
    j["in_flight"] = it == in_flight.end() ? 0 : it->second;
    arr.push_back(std::move(j));
  }
  o += ",\"agents\":" + arr.dump(-1, ' ', false, json::error_handler_t::replace);
  o += ",\"heartbeat_interval_seconds\":" + std::to_string(options.agent_heartbeat_interval.count() / 1000.0) +
       ",\"missed_heartbeats\":" + std::to_string(options.agent_missed_heartbeats) + "}";
  Response r;
  r.body = std::move(o);
  return r;
}

// GET /api/v1/flows/{id}/fire-times?count=N: the schedule's next fire times, by the
// same rules the schedule service uses (core/schedule.hpp).
Response Api::Impl::flow_fire_times(Call& c, store::Store& st) {
  auto count = parse_int_param(c.req.query_param("count"), "count", 1, 100, 5);
  if (!count) return status_response(count.status());
  auto f = st.get_flow(c.params.get("id"));
  if (!f) return store_error(f.status());
  json times = json::array();
  json zone = nullptr;
  if (f->schedule_json) {
    auto s = Schedule::from_json_text(*f->schedule_json);
    if (!s) return status_response(s.status());
    zone = s->timezone().name();
    SysTime t = clock.now();
    for (int64_t i = 0; i < *count; ++i) {
      auto next = s->next_after(t);
      if (!next) break;
      times.push_back(format_rfc3339(*next));
      t = *next;
    }
  }
  return json_response(200, {{"flow_id", f->id},
                             {"schedule", f->schedule_json ? json(true) : json(false)},
                             {"active", f->schedule_active},
                             {"timezone", zone},
                             {"fire_times", std::move(times)}});
}

// GET /api/v1/session: what the UI shows and which controls it offers.
Response Api::Impl::session(Call& c, store::Store&) {
  const auto& p = c.principal;
  json j = {{"token_id", p.token_id},
            {"name", p.name},
            {"scope", scope_name(p.scope)},
            {"expires", p.expires ? json(format_rfc3339(*p.expires)) : json(nullptr)},
            {"flow_run_id", p.is_run_token() ? json(p.flow_run_id) : json(nullptr)}};
  return json_response(200, j);
}

}  // namespace culvert::server
