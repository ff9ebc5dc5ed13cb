#include "agent/client_api.hpp"

#include <algorithm>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "core/timefmt.hpp"

namespace culvert::agent {

using nlohmann::json;

namespace {

constexpr size_t kMaxPages = 100;  // bounded paging of the unfinished-runs listing (1000 runs a page)

// Typed reads of one server answer; `what` names the answer in messages.
class Reader {
 public:
  explicit Reader(std::string what) : what_(std::move(what)) {}

  Status not_object(const json& j, const std::string& where) const {
    if (j.is_object()) return Status::ok();
    return internal_error(fmt::format("{}: the server's answer{} is not a JSON object", what_, where));
  }
  // A required string field of `obj` (an object).
  Result<std::string> str(const json& obj, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end()) return bad(key, "is missing");
    if (!it->is_string()) return bad(key, "is not a string");
    return it->get<std::string>();
  }
  // An optional string field: "" when absent or null.
  Result<std::string> opt_str(const json& obj, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::string();
    if (!it->is_string()) return bad(key, "is not a string");
    return it->get<std::string>();
  }
  Result<State> state(const json& obj) const {
    auto s = str(obj, "state");
    if (!s) return s.status();
    auto st = parse_state(*s);
    if (!st) return bad("state", "is not a known state ('" + s->substr(0, 40) + "')");
    return *st;
  }
  // A required array field.
  Result<const json*> array(const json& obj, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end()) return bad(key, "is missing");
    if (!it->is_array()) return bad(key, "is not an array");
    return &*it;
  }

 private:
  Status bad(const char* key, const std::string& why) const {
    return internal_error(fmt::format("{}: the server's answer is malformed: \"{}\" {}", what_, key, why));
  }
  std::string what_;
};

// Text that json::dump never refuses: invalid UTF-8 (a container's raw output) becomes
// U+FFFD instead of an exception.
std::string valid_utf8(const std::string& s) {
  json j = s;
  std::string dumped = j.dump(-1, ' ', false, json::error_handler_t::replace);
  json back = json::parse(dumped, nullptr, false);
  return back.is_string() ? back.get<std::string>() : std::string();
}

}  // namespace

ClientAgentApi::ClientAgentApi(client::ClientOptions options, Clock& clock, const std::atomic<bool>* stop)
    : api_(std::make_unique<client::ApiClient>(std::move(options))), clock_(clock), stop_(stop) {}

ClientAgentApi::~ClientAgentApi() = default;

Result<std::string> ClientAgentApi::register_agent(const std::string& name, const std::string& type,
                                                   const std::vector<std::string>& labels, int max_concurrent) {
  auto r = api_->register_agent(name, type, labels, max_concurrent);
  if (!r) return r.status();
  Reader rd("agent registration");
  if (Status st = rd.not_object(*r, ""); !st.is_ok()) return st;
  auto id = rd.str(*r, "id");
  if (!id) return id.status();
  if (id->empty()) return internal_error("agent registration: the server's answer has an empty id");
  return *id;
}

Status ClientAgentApi::deregister_agent(const std::string& agent_id) {
  auto r = api_->call("DELETE", "/api/v1/agents/" + client::url_encode(agent_id), nullptr);
  return r ? Status::ok() : r.status();
}

Status ClientAgentApi::heartbeat(const std::string& agent_id) {
  auto r = api_->heartbeat_agent(agent_id);
  return r ? Status::ok() : r.status();
}

Result<std::string> ClientAgentApi::run_config_of(const json& j) {
  if (auto it = j.find("run_config"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return internal_error("a flow run's \"run_config\" in the server's answer is not an object");
    return it->dump();
  }
  Reader rd("flow run");
  auto flow_id = rd.str(j, "flow_id");
  if (!flow_id) return flow_id.status();
  if (auto it = run_configs_.find(*flow_id); it != run_configs_.end()) return it->second;
  auto flow = api_->get_flow(*flow_id);
  if (!flow) return flow.status();
  Reader frd("flow " + *flow_id);
  if (Status st = frd.not_object(*flow, ""); !st.is_ok()) return st;
  std::string rc = "{}";
  if (auto it = flow->find("run_config"); it != flow->end() && !it->is_null()) {
    if (!it->is_object()) return internal_error("flow " + *flow_id + ": \"run_config\" is not an object");
    rc = it->dump();
  }
  run_configs_.emplace(*flow_id, rc);
  return rc;
}

Result<std::vector<ClaimedRun>> ClientAgentApi::claim(const std::string& agent_id,
                                                      const std::vector<std::string>& types, int max, Millis wait) {
  // Long-polls in slices so that a stop request is honoured within a second; the number
  // of slices is bounded too, whatever the clock does.
  const Millis slice_max = stop_ ? Millis(1000) : std::max(wait, Millis(0));
  const SteadyTime deadline = clock_.steady_now() + wait;
  const int64_t slices = slice_max.count() > 0 ? std::max<int64_t>(1, (wait.count() + slice_max.count() - 1) / slice_max.count()) : 1;
  const std::string target = "/api/v1/agents/" + client::url_encode(agent_id) + "/claim";
  Reader rd("claim");
  const json* runs = nullptr;
  json answer;
  for (int64_t i = 0; i < slices; ++i) {
    Millis left = std::chrono::duration_cast<Millis>(deadline - clock_.steady_now());
    Millis slice = std::clamp(left, Millis(0), slice_max);
    json body = {{"max", max}, {"wait_ms", slice.count()}, {"types", types}};
    auto r = api_->call("POST", target, &body, slice);
    if (!r) return r.status();
    answer = std::move(*r);
    if (Status st = rd.not_object(answer, ""); !st.is_ok()) return st;
    auto arr = rd.array(answer, "runs");
    if (!arr) return arr.status();
    runs = *arr;
    if (!runs->empty() || (stop_ && stop_->load()) || clock_.steady_now() >= deadline) break;
  }
  std::vector<ClaimedRun> out;
  if (runs == nullptr) return out;
  for (const auto& j : *runs) {
    if (Status st = rd.not_object(j, " (a claimed run)"); !st.is_ok()) return st;
    ClaimedRun run;
    auto id = rd.str(j, "id");
    if (!id) return id.status();
    auto flow_id = rd.str(j, "flow_id");
    if (!flow_id) return flow_id.status();
    auto name = rd.opt_str(j, "flow_name");
    if (!name) return name.status();
    auto token = rd.str(j, "token");
    if (!token) return token.status();
    run.id = *id;
    run.flow_id = *flow_id;
    run.flow_name = *name;
    run.token = *token;
    auto rc = run_config_of(j);
    // The run is ours now: one whose run config cannot be read is still launched (and
    // fails with the reason) rather than left Submitted.
    run.run_config_json = rc ? *rc : std::string("{}");
    out.push_back(std::move(run));
  }
  return out;
}

Result<RunState> ClientAgentApi::get_run_state(const std::string& run_id) {
  auto r = api_->get_flow_run(run_id);
  if (!r) return r.status();
  Reader rd("flow run " + run_id);
  if (Status st = rd.not_object(*r, ""); !st.is_ok()) return st;
  auto state = rd.state(*r);
  if (!state) return state.status();
  auto message = rd.opt_str(*r, "state_message");
  if (!message) return message.status();
  return RunState{*state, std::move(*message)};
}

Status ClientAgentApi::set_run_state(const std::string& run_id, State state, const std::string& message) {
  auto r = api_->set_flow_run_state(run_id, state_name(state), valid_utf8(message));
  return r ? Status::ok() : r.status();
}

Status ClientAgentApi::send_logs(const std::string& run_id, const std::vector<std::string>& lines) {
  json batch = json::array();
  std::string now = format_rfc3339(clock_.now());
  for (const auto& l : lines)
    batch.push_back({{"flow_run_id", run_id}, {"level", "INFO"}, {"message", valid_utf8(l)}, {"timestamp", now}});
  auto r = api_->write_logs(batch);
  return r ? Status::ok() : r.status();
}

Status ClientAgentApi::report_infrastructure(const std::string& run_id, const Infrastructure& infra) {
  json body = {{"kind", infra.kind}, {"id", infra.id}};
  auto r = api_->call("POST", "/api/v1/flow-runs/" + client::url_encode(run_id) + "/infrastructure", &body);
  return r ? Status::ok() : r.status();
}

Result<std::vector<UnfinishedRun>> ClientAgentApi::list_unfinished_runs(const std::string& agent_id) {
  std::vector<UnfinishedRun> out;
  std::string cursor;
  Reader rd("unfinished runs of agent " + agent_id);
  for (size_t page = 0; page < kMaxPages; ++page) {
    std::string target = "/api/v1/flow-runs?agent_id=" + client::url_encode(agent_id) +
                         "&state=Submitted&state=Running&state=Cancelling&limit=1000";
    if (!cursor.empty()) target += "&cursor=" + client::url_encode(cursor);
    auto r = api_->call("GET", target, nullptr);
    if (!r) return r.status();
    if (Status st = rd.not_object(*r, ""); !st.is_ok()) return st;
    auto runs = rd.array(*r, "runs");
    if (!runs) return runs.status();
    for (const auto& j : **runs) {
      if (Status st = rd.not_object(j, " (a run)"); !st.is_ok()) return st;
      UnfinishedRun u;
      auto id = rd.str(j, "id");
      if (!id) return id.status();
      auto flow_id = rd.str(j, "flow_id");
      if (!flow_id) return flow_id.status();
      auto name = rd.opt_str(j, "flow_name");
      if (!name) return name.status();
      auto state = rd.state(j);
      if (!state) return state.status();
      // The server filters by agent and state; an older one ignores the filters, so
      // only the runs that are this agent's and unfinished are taken.
      auto owner = rd.opt_str(j, "agent_id");
      if (!owner) return owner.status();
      if (*owner != agent_id || is_final(*state) || *state == State::kScheduled || *state == State::kPending) continue;
      u.run.id = *id;
      u.run.flow_id = *flow_id;
      u.run.flow_name = *name;
      u.state = *state;
      if (auto it = j.find("infrastructure"); it != j.end() && !it->is_null()) {
        if (Status st = rd.not_object(*it, " (\"infrastructure\")"); !st.is_ok()) return st;
        auto kind = rd.str(*it, "kind");
        if (!kind) return kind.status();
        auto iid = rd.str(*it, "id");
        if (!iid) return iid.status();
        u.infrastructure = Infrastructure{*kind, *iid};
      }
      auto rc = run_config_of(j);
      if (!rc) return rc.status();
      u.run.run_config_json = *rc;
      out.push_back(std::move(u));
    }
    auto next = rd.opt_str(*r, "next_cursor");
    if (!next) return next.status();
    if (next->empty() || (*runs)->empty()) return out;
    cursor = *next;
  }
  return out;
}

}  // namespace culvert::agent
