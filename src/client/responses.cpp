#include "client/responses.hpp"

#include "core/json_parse.hpp"

#include <algorithm>
#include <utility>

namespace culvert::client {
namespace {

using json = nlohmann::json;

constexpr std::string_view kMalformed = "the server's answer is malformed: ";

// Reads the members of one JSON object. The first error is kept (later reads return
// defaults); ok()/status() say whether everything read was well-formed.
class Fields {
 public:
  Fields(const json& object, std::string path) : j_(object), path_(std::move(path)) {
    if (!j_.is_object()) fail_at(path_.empty() ? "the answer" : path_, "must be an object, not " + std::string(json_type_name(j_)));
  }

  bool ok() const { return error_.empty(); }
  Status status() const { return ok() ? Status::ok() : internal_error(std::string(kMalformed) + error_); }

  // The member, or nullptr when absent or null (or after an error). A required member
  // that is absent or null is an error.
  const json* get(const char* key, bool required = false) {
    if (!ok()) return nullptr;
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) fail(key, it == j_.end() ? "is missing" : "must not be null");
      return nullptr;
    }
    return &*it;
  }

  std::string str(const char* key, bool required = false) { return opt_str(key, required).value_or(""); }
  std::optional<std::string> opt_str(const char* key, bool required = false) {
    const json* v = get(key, required);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) return wrong(key, "a string", *v), std::nullopt;
    return v->get<std::string>();
  }
  int64_t integer(const char* key, int64_t fallback = 0, bool required = false) {
    const json* v = get(key, required);
    if (v == nullptr) return fallback;
    if (!v->is_number_integer()) return wrong(key, "an integer", *v), fallback;
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return fail(key, "is out of range"), fallback;
    return v->get<int64_t>();
  }
  bool boolean(const char* key, bool fallback) {
    const json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return wrong(key, "a boolean", *v), fallback;
    return v->get<bool>();
  }
  std::optional<State> state(const char* key, bool required = false) {
    auto s = opt_str(key, required);
    if (!s) return std::nullopt;
    auto st = parse_state(*s);
    if (!st) return fail(key, "is not a known state: '" + s->substr(0, 64) + "'"), std::nullopt;
    return st;
  }
  std::vector<std::string> strings(const char* key) {
    std::vector<std::string> out;
    const json* v = get(key);
    if (v == nullptr) return out;
    if (!v->is_array()) return wrong(key, "an array of strings", *v), out;
    for (size_t i = 0; i < v->size(); ++i) {
      const json& e = (*v)[i];
      if (!e.is_string()) return fail_at(sub(key, i), "must be a string, not " + std::string(json_type_name(e))), out;
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  const json* object(const char* key, bool required = false) {
    const json* v = get(key, required);
    if (v != nullptr && !v->is_object()) return wrong(key, "an object", *v), nullptr;
    return v;
  }
  const json* array(const char* key, bool required = false) {
    const json* v = get(key, required);
    if (v != nullptr && !v->is_array()) return wrong(key, "an array", *v), nullptr;
    return v;
  }

  std::string path(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  std::string sub(const char* key, size_t i) const { return path(key) + "[" + std::to_string(i) + "]"; }

  // Takes the error of a nested decode.
  void absorb(const Status& s) {
    if (!ok() || s.is_ok()) return;
    std::string_view m = s.message();
    if (m.starts_with(kMalformed)) m.remove_prefix(kMalformed.size());
    error_ = m;
  }
  void fail(const char* key, const std::string& what) { fail_at(path(key), what); }

 private:
  void wrong(const char* key, const char* expected, const json& v) {
    fail(key, std::string("must be ") + expected + ", not " + json_type_name(v));
  }
  void fail_at(const std::string& where, const std::string& what) {
    if (ok()) error_ = where + " " + what;
  }

  const json& j_;
  std::string path_;
  std::string error_;
};

// A listing {"KEY": [item, ...]}: each item decoded by `one(item, path)`.
template <typename T, typename F>
Result<std::vector<T>> decode_list(const json& answer, const char* key, F one) {
  Fields f(answer, "");
  const json* items = f.array(key, true);
  if (!f.ok()) return f.status();
  std::vector<T> out;
  out.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    auto item = one((*items)[i], f.sub(key, i));
    if (!item) return item.status();
    out.push_back(std::move(*item));
  }
  return out;
}

Result<Project> project_at(const json& j, const std::string& path) {
  Fields f(j, path);
  Project p;
  p.id = f.str("id", true);
  p.name = f.str("name");
  p.description = f.str("description");
  p.created = f.str("created");
  if (!f.ok()) return f.status();
  return p;
}

Result<ParameterDecl> parameter_at(const json& j, const std::string& path) {
  Fields f(j, path);
  ParameterDecl p;
  p.name = f.str("name", true);
  p.type = f.opt_str("type").value_or("json");
  if (const json* d = f.get("default")) p.default_value = *d;
  p.required = f.boolean("required", false);
  if (!f.ok()) return f.status();
  return p;
}

Result<FlowVersion> flow_at(const json& j, const std::string& path) {
  Fields f(j, path);
  FlowVersion v;
  v.id = f.str("id", true);
  v.project_id = f.str("project_id");
  v.project = f.str("project");
  v.name = f.str("name");
  v.version = f.integer("version");
  v.archived = f.boolean("archived", false);
  if (const json* a = f.object("artifact")) {
    Fields af(*a, f.path("artifact"));
    v.artifact.uri = af.str("uri");
    v.artifact.sha256 = af.str("sha256");
    f.absorb(af.status());
  }
  v.labels = f.strings("labels");
  if (const json* s = f.object("schedule")) {
    auto schedule = Schedule::from_json(*s);
    if (schedule) v.schedule = std::move(*schedule);
    else f.fail("schedule", "is not a schedule: " + schedule.status().message());
  }
  v.schedule_active = f.boolean("schedule_active", true);
  if (const json* params = f.array("parameters")) {
    for (size_t i = 0; i < params->size() && f.ok(); ++i) {
      auto p = parameter_at((*params)[i], f.sub("parameters", i));
      if (p) v.parameters.push_back(std::move(*p));
      else f.absorb(p.status());
    }
  }
  if (const json* tasks = f.array("tasks")) v.task_count = tasks->size();
  v.created = f.str("created");
  if (!f.ok()) return f.status();
  return v;
}

Infrastructure infrastructure_in(Fields& f) {
  const json* infra = f.object("infrastructure");
  if (!infra) return {};
  Fields inf(*infra, f.path("infrastructure"));
  Infrastructure i;
  i.kind = inf.str("kind", true);
  i.id = inf.str("id", true);
  i.agent_id = inf.str("agent_id");
  i.reported_at = inf.str("reported_at");
  f.absorb(inf.status());
  return i;
}

StateCounts state_counts_in(Fields& f, const char* key) {
  StateCounts out;
  const json* by = f.object(key);
  if (!by) return out;
  for (const auto& [name, n] : by->items()) {
    auto st = parse_state(name);
    if (!st || !n.is_number_integer()) {
      f.absorb(internal_error(std::string(kMalformed) + f.path(key) + " has a member '" + name.substr(0, 64) +
                              "' that is not a state with a count"));
      return {};
    }
    out.emplace_back(*st, n.get<int64_t>());
  }
  return out;
}

Result<FlowRun> flow_run_at(const json& j, const std::string& path) {
  Fields f(j, path);
  FlowRun r;
  r.id = f.str("id", true);
  r.state = f.state("state", true).value_or(State::kScheduled);
  r.flow_id = f.str("flow_id");
  r.project_id = f.str("project_id");
  r.flow_name = f.str("flow_name");
  r.flow_version = f.integer("flow_version");
  if (const json* p = f.object("parameters")) r.parameters = *p;
  r.labels = f.strings("labels");
  r.idempotency_key = f.opt_str("idempotency_key");
  r.auto_scheduled = f.boolean("auto_scheduled", false);
  r.state_message = f.str("state_message");
  r.version = f.integer("version");
  r.run_count = f.integer("run_count");
  r.agent_id = f.opt_str("agent_id");
  r.created = f.str("created");
  r.state_changed_at = f.str("state_changed_at");
  r.scheduled_start_time = f.str("scheduled_start_time");
  r.submitted_at = f.opt_str("submitted_at");
  r.start_time = f.opt_str("start_time");
  r.end_time = f.opt_str("end_time");
  r.heartbeat_at = f.opt_str("heartbeat_at");
  if (const json* infra = f.object("infrastructure")) {
    Fields inf(*infra, f.path("infrastructure"));
    Infrastructure i;
    i.kind = inf.str("kind", true);
    i.id = inf.str("id", true);
    i.agent_id = inf.str("agent_id");
    i.reported_at = inf.str("reported_at");
    if (inf.ok()) r.infrastructure = std::move(i);
    f.absorb(inf.status());
  }
  if (const json* rc = f.object("run_config")) {
    Fields rcf(*rc, f.path("run_config"));
    r.run_config_type = rcf.str("type");
    r.run_config = *rc;
    f.absorb(rcf.status());
  }
  if (const json* child = f.object("child")) {
    Fields cf(*child, f.path("child"));
    ChildOf c;
    c.parent_run_id = cf.str("parent_run_id", true);
    c.task = cf.str("task");
    c.chunk = cf.integer("chunk");
    c.start = cf.integer("start");
    c.end = cf.integer("end");
    c.parent_attempt = cf.integer("parent_attempt");
    if (cf.ok()) r.child = std::move(c);
    f.absorb(cf.status());
  }
  if (const json* children = f.object("children")) {
    Fields cf(*children, f.path("children"));
    ChildrenSummary c;
    c.count = cf.integer("count");
    c.by_state = state_counts_in(cf, "by_state");
    c.parent_attempt = cf.integer("parent_attempt");
    if (cf.ok()) r.children = std::move(c);
    f.absorb(cf.status());
  }
  if (!f.ok()) return f.status();
  return r;
}

Result<ChildRunEntry> child_run_at(const json& j, const std::string& path) {
  Fields f(j, path);
  ChildRunEntry e;
  e.id = f.str("id", true);
  e.chunk = f.integer("chunk");
  e.start = f.integer("start");
  e.end = f.integer("end");
  e.task = f.str("task");
  e.parent_attempt = f.integer("parent_attempt");
  e.state = f.state("state", true).value_or(State::kScheduled);
  e.state_message = f.str("state_message");
  e.run_count = f.integer("run_count");
  if (f.object("infrastructure")) e.infrastructure = infrastructure_in(f);
  if (!f.ok()) return f.status();
  return e;
}

Result<StateChange> state_change_at(const json& j, const std::string& path) {
  Fields f(j, path);
  StateChange c;
  c.id = f.integer("id");
  c.state = f.state("state", true).value_or(State::kScheduled);
  c.from_state = f.state("from_state");
  c.message = f.str("message");
  c.version = f.integer("version");
  c.forced = f.boolean("forced", false);
  c.agent_id = f.opt_str("agent_id");
  c.timestamp = f.str("timestamp");
  if (!f.ok()) return f.status();
  return c;
}

Result<TaskRun> task_run_at(const json& j, const std::string& path) {
  Fields f(j, path);
  TaskRun t;
  t.id = f.str("id");
  t.task = f.str("task", true);
  t.map_index = f.integer("map_index", -1);
  t.state = f.state("state");
  t.message = f.str("message");
  t.attempts = f.integer("attempts");
  t.created = f.str("created");
  t.updated = f.str("updated");
  t.start_time = f.opt_str("start_time");
  t.end_time = f.opt_str("end_time");
  t.next_start_time = f.opt_str("next_start_time");
  t.run_attempt = f.integer("run_attempt", 1);
  if (!f.ok()) return f.status();
  return t;
}

Result<FlowRunAttempt> attempt_at(const json& j, const std::string& path) {
  Fields f(j, path);
  FlowRunAttempt a;
  a.attempt = f.integer("attempt", 0, true);
  a.state = f.state("state");
  a.message = f.str("message");
  a.agent_id = f.opt_str("agent_id");
  a.start_time = f.str("start_time");
  a.end_time = f.opt_str("end_time");
  if (!f.ok()) return f.status();
  return a;
}

Result<TaskRunHistoryEntry> task_run_history_at(const json& j, const std::string& path) {
  Fields f(j, path);
  TaskRunHistoryEntry h;
  h.id = f.integer("id");
  h.task = f.str("task", true);
  h.map_index = f.integer("map_index", -1);
  h.map_count = f.integer("map_count", 1);
  h.run_attempt = f.integer("run_attempt", 1);
  h.attempts = f.integer("attempts");
  h.state = f.state("state");
  h.message = f.str("message");
  h.timestamp = f.str("timestamp");
  h.next_start_time = f.opt_str("next_start_time");
  if (!f.ok()) return f.status();
  return h;
}

Result<LogLine> log_line_at(const json& j, const std::string& path) {
  Fields f(j, path);
  LogLine l;
  l.id = f.integer("id", 0, true);
  l.task_run_id = f.opt_str("task_run_id");
  l.task = f.opt_str("task");
  l.map_index = f.integer("map_index", -1);
  l.level = f.str("level");
  l.message = f.str("message");
  l.timestamp = f.str("timestamp");
  l.run_attempt = f.integer("run_attempt", 1);
  if (!f.ok()) return f.status();
  return l;
}

Result<Agent> agent_at(const json& j, const std::string& path) {
  Fields f(j, path);
  Agent a;
  a.id = f.str("id", true);
  a.name = f.str("name");
  a.type = f.str("type");
  a.labels = f.strings("labels");
  a.created = f.str("created");
  a.last_heartbeat = f.opt_str("last_heartbeat");
  a.run_config_types = f.strings("run_config_types");
  if (a.run_config_types.empty() && !a.type.empty()) a.run_config_types = {a.type};
  if (f.get("max_concurrent")) a.max_concurrent = f.integer("max_concurrent");
  auto health = f.opt_str("health");
  auto status = f.opt_str("status");
  if (status && *status == "stopped") {
    a.status = AgentStatus::kStopped;
  } else if (health) {
    if (*health == "healthy") a.status = AgentStatus::kHealthy;
    else if (*health == "unhealthy") a.status = AgentStatus::kUnhealthy;
    else if (*health == "stopped") a.status = AgentStatus::kStopped;
    else f.fail("health", "must be healthy, unhealthy or stopped, not '" + health->substr(0, 64) + "'");
  }
  if (!f.ok()) return f.status();
  return a;
}

Result<Token> token_at(const json& j, const std::string& path) {
  Fields f(j, path);
  Token t;
  t.id = f.str("id", true);
  t.name = f.str("name");
  t.scope = f.str("scope");
  t.flow_run_id = f.opt_str("flow_run_id");
  t.created = f.str("created");
  t.expires = f.opt_str("expires");
  t.revoked = f.boolean("revoked", false);
  t.revoked_at = f.opt_str("revoked_at");
  t.token = f.opt_str("token");
  if (!f.ok()) return f.status();
  return t;
}

}  // namespace

const char* agent_status_name(AgentStatus s) {
  switch (s) {
    case AgentStatus::kHealthy: return "healthy";
    case AgentStatus::kUnhealthy: return "unhealthy";
    case AgentStatus::kStopped: return "stopped";
  }
  return "unknown";
}

Result<Project> decode_project(const json& answer) { return project_at(answer, ""); }
Result<std::vector<Project>> decode_projects(const json& answer) {
  return decode_list<Project>(answer, "projects", project_at);
}
Result<FlowVersion> decode_flow(const json& answer) { return flow_at(answer, ""); }
Result<std::vector<FlowVersion>> decode_flows(const json& answer) {
  return decode_list<FlowVersion>(answer, "flows", flow_at);
}
Result<FlowRun> decode_flow_run(const json& answer) { return flow_run_at(answer, ""); }

Result<FlowRunPage> decode_flow_run_page(const json& answer) {
  auto runs = decode_list<FlowRun>(answer, "runs", flow_run_at);
  if (!runs) return runs.status();
  Fields f(answer, "");
  FlowRunPage page;
  page.runs = std::move(*runs);
  page.next_cursor = f.opt_str("next_cursor");
  if (!f.ok()) return f.status();
  if (page.next_cursor && page.next_cursor->empty()) page.next_cursor.reset();
  return page;
}

Result<ChildRunListing> decode_child_runs(const json& answer) {
  auto children = decode_list<ChildRunEntry>(answer, "children", child_run_at);
  if (!children) return children.status();
  Fields f(answer, "");
  ChildRunListing out;
  out.children = std::move(*children);
  out.count = f.integer("count", static_cast<int64_t>(out.children.size()));
  out.final_count = f.integer("final");
  out.by_state = state_counts_in(f, "by_state");
  out.parent_attempt = f.integer("parent_attempt");
  if (!f.ok()) return f.status();
  return out;
}

Result<std::vector<StateChange>> decode_history(const json& answer) {
  return decode_list<StateChange>(answer, "history", state_change_at);
}
Result<HistoryPage> decode_history_page(const json& answer) {
  auto entries = decode_history(answer);
  if (!entries) return entries.status();
  Fields f(answer, "");
  HistoryPage page;
  page.history = std::move(*entries);
  page.next_cursor = f.opt_str("next_cursor").value_or("");
  if (!f.ok()) return f.status();
  return page;
}
Result<std::vector<FlowRunAttempt>> decode_attempts(const json& answer) {
  return decode_list<FlowRunAttempt>(answer, "attempts", attempt_at);
}
Result<std::vector<TaskRun>> decode_task_runs(const json& answer) {
  return decode_list<TaskRun>(answer, "task_runs", task_run_at);
}

Result<TaskRunPage> decode_task_run_page(const json& answer) {
  auto runs = decode_list<TaskRun>(answer, "task_runs", task_run_at);
  if (!runs) return runs.status();
  Fields f(answer, "");
  TaskRunPage page;
  page.task_runs = std::move(*runs);
  if (const json* mapped = f.array("mapped_tasks")) {
    for (size_t i = 0; i < mapped->size() && f.ok(); ++i) {
      Fields m((*mapped)[i], f.sub("mapped_tasks", i));
      MappedTask t;
      t.task = m.str("task", true);
      t.count = m.integer("count");
      t.max_map_index = m.integer("max_map_index", -1);
      if (const json* states = m.object("states")) {
        for (const auto& [name, n] : states->items()) {
          auto st = parse_state(name);
          if (!st) {
            m.fail("states", "names an unknown state: '" + name.substr(0, 64) + "'");
            break;
          }
          if (!n.is_number_integer()) {
            m.fail("states", "must map states to integers");
            break;
          }
          t.states.emplace_back(*st, n.get<int64_t>());
        }
        std::sort(t.states.begin(), t.states.end());
      }
      t.start_time = m.opt_str("start_time");
      t.end_time = m.opt_str("end_time");
      t.updated = m.str("updated");
      f.absorb(m.status());
      if (m.ok()) page.mapped_tasks.push_back(std::move(t));
    }
  }
  page.next_cursor = f.opt_str("next_cursor");
  if (!f.ok()) return f.status();
  if (page.next_cursor && page.next_cursor->empty()) page.next_cursor.reset();
  return page;
}

Result<TaskRunHistoryPage> decode_task_run_history(const json& answer) {
  auto entries = decode_list<TaskRunHistoryEntry>(answer, "history", task_run_history_at);
  if (!entries) return entries.status();
  Fields f(answer, "");
  TaskRunHistoryPage page;
  page.history = std::move(*entries);
  page.next_cursor = f.str("next_cursor");
  if (!f.ok()) return f.status();
  return page;
}

Result<LogPage> decode_log_page(const json& answer) {
  auto logs = decode_list<LogLine>(answer, "logs", log_line_at);
  if (!logs) return logs.status();
  Fields f(answer, "");
  LogPage page;
  page.logs = std::move(*logs);
  page.next_cursor = f.opt_str("next_cursor");
  page.more = f.boolean("more", false);
  page.flow_run_state = f.state("flow_run_state");
  if (!f.ok()) return f.status();
  return page;
}

Result<std::vector<Agent>> decode_agents(const json& answer) { return decode_list<Agent>(answer, "agents", agent_at); }
Result<Token> decode_token(const json& answer) { return token_at(answer, ""); }
Result<std::vector<Token>> decode_tokens(const json& answer) { return decode_list<Token>(answer, "tokens", token_at); }

}  // namespace culvert::client
