#include "server/api_json.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "core/artifact_uri.hpp"
#include "core/json_parse.hpp"
#include "core/json_text.hpp"
#include "core/labels.hpp"
#include "core/timefmt.hpp"

namespace culvert::server {

bool is_run_config_type(std::string_view t) { return t == "local" || t == "docker" || t == "ecs" || t == "slurm"; }

namespace {

Status field_error(std::string_view field, std::string_view what) {
  return unprocessable("field '" + std::string(field) + "' " + std::string(what));
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
}

// A present, non-null member or nullptr.
const json* member(const json& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::optional<std::string>> opt_string(const json& o, std::string_view key, size_t max_len) {
  const json* v = member(o, key);
  if (!v) return std::optional<std::string>();
  if (!v->is_string()) return field_error(key, std::string("must be a string, not ") + json_type_name(*v));
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max_len) return field_error(key, "is longer than " + std::to_string(max_len) + " characters");
  return std::optional<std::string>(s);
}

Result<std::string> req_name(const json& o, std::string_view key) {
  auto s = opt_string(o, key, kMaxNameLength);
  if (!s) return s.status();
  if (!s->has_value() || (*s)->empty()) return field_error(key, "is required (a non-empty string)");
  if (has_control_chars(**s)) return field_error(key, "must not contain control characters");
  return std::move(**s);
}

Result<std::optional<int64_t>> opt_int(const json& o, std::string_view key, int64_t lo, int64_t hi) {
  const json* v = member(o, key);
  if (!v) return std::optional<int64_t>();
  if (!v->is_number_integer()) return field_error(key, std::string("must be an integer, not ") + json_type_name(*v));
  int64_t n;
  if (v->is_number_unsigned()) {
    auto u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) return field_error(key, "must be at most " + std::to_string(hi));
    n = static_cast<int64_t>(u);
  } else {
    n = v->get<int64_t>();
  }
  if (n < lo || n > hi)
    return field_error(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return std::optional<int64_t>(n);
}

Result<std::optional<bool>> opt_bool(const json& o, std::string_view key) {
  const json* v = member(o, key);
  if (!v) return std::optional<bool>();
  if (!v->is_boolean()) return field_error(key, std::string("must be a boolean, not ") + json_type_name(*v));
  return std::optional<bool>(v->get<bool>());
}

Result<std::optional<std::vector<std::string>>> opt_labels(const json& o, std::string_view key) {
  const json* v = member(o, key);
  if (!v) return std::optional<std::vector<std::string>>();
  if (!v->is_array()) return field_error(key, "must be an array of strings");
  std::vector<std::string> out;
  for (const auto& e : *v) {
    if (!e.is_string() || e.get_ref<const std::string&>().empty())
      return field_error(key, "must be an array of non-empty strings");
    const auto& s = e.get_ref<const std::string&>();
    if (s.size() > kMaxNameLength || has_control_chars(s))
      return field_error(key, "has a label that is too long or contains control characters");
    out.push_back(s);
  }
  if (out.size() > 100) return field_error(key, "has more than 100 labels");
  return std::optional<std::vector<std::string>>(normalize_labels(std::move(out)));
}

// Strict RFC 3339 shape, checked before parse_rfc3339 sees the text:
// YYYY-MM-DD(T| )HH:MM:SS[.digits](Z|±HH:MM), years 1970..2200.
bool rfc3339_shape(std::string_view s) {
  auto digits = [&](size_t at, size_t n) {
    if (at + n > s.size()) return false;
    for (size_t i = at; i < at + n; ++i)
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
  };
  if (s.size() < 20 || s.size() > 40) return false;
  if (!digits(0, 4) || s[4] != '-' || !digits(5, 2) || s[7] != '-' || !digits(8, 2)) return false;
  // Times are nanosecond time_points (years 1678..2261); accept 1970..2200.
  int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  if (year < 1970 || year > 2200) return false;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return false;
  if (!digits(11, 2) || s[13] != ':' || !digits(14, 2) || s[16] != ':' || !digits(17, 2)) return false;
  size_t i = 19;
  if (s[i] == '.') {
    size_t start = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start || i - start > 9) return false;
  }
  if (i + 1 == s.size() && (s[i] == 'Z' || s[i] == 'z')) return true;
  return i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && digits(i + 1, 2) && s[i + 3] == ':' && digits(i + 4, 2);
}

std::optional<SysTime> parse_time_text(std::string_view s) {
  if (!rfc3339_shape(s)) return std::nullopt;
  return parse_rfc3339(s);
}

// Durations such as "30d" or "1h30m", each number at most 6 digits (so no overflow).
std::optional<Millis> parse_duration_text(std::string_view s) {
  size_t run = 0;
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      if (++run > 6) return std::nullopt;
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      run = 0;
    } else {
      return std::nullopt;
    }
  }
  return parse_duration(s);
}

Result<std::optional<SysTime>> opt_time(const json& o, std::string_view key) {
  auto s = opt_string(o, key, 64);
  if (!s) return s.status();
  if (!s->has_value()) return std::optional<SysTime>();
  auto t = parse_time_text(**s);
  if (!t) return field_error(key, "must be an RFC 3339 time such as 2026-01-01T06:00:00Z");
  return std::optional<SysTime>(*t);
}

Result<State> req_state(const json& o, std::string_view key) {
  auto s = opt_string(o, key, 64);
  if (!s) return s.status();
  if (!s->has_value()) return field_error(key, "is required (a state name such as \"Running\")");
  auto st = parse_state(**s);
  if (!st) return field_error(key, "is not a known state: '" + **s + "'");
  // One spelling on the wire, as the server writes it (and as clients compare it).
  if (**s != state_name(*st))
    return field_error(key, "must be spelled '" + std::string(state_name(*st)) + "' (state names are case-sensitive), not '" +
                                **s + "'");
  return *st;
}

bool valid_type(std::string_view t) {
  return t == "int" || t == "float" || t == "bool" || t == "string" || t == "json";
}

bool value_has_type(const json& v, std::string_view t) {
  if (t == "json") return true;
  if (t == "int") return v.is_number_integer();
  if (t == "float") return v.is_number();
  if (t == "bool") return v.is_boolean();
  if (t == "string") return v.is_string();
  return false;
}

Status check_object_or_array(const json& body) {
  if (!body.is_object()) return unprocessable(std::string("the body must be a JSON object, not ") + json_type_name(body));
  return Status::ok();
}

Status check_run_config_object(const json& rc, const std::string& f) {
  if (!rc.is_object()) return field_error(f, "must be an object");
  auto type = opt_string(rc, "type", 16);
  if (!type) return field_error(f + ".type", "must be a string");
  if (type->has_value()) {
    const auto& t = **type;
    if (!is_run_config_type(t))
      return field_error(f + ".type", std::string("must be one of ") + kRunConfigTypes + " (got '" + t + "')");
  }
  auto labels = opt_labels(rc, "labels");
  if (!labels) return field_error(f + ".labels", "must be an array of non-empty strings");
  if (const json* env = member(rc, "env")) {
    if (!env->is_object()) return field_error(f + ".env", "must be an object of strings");
    for (const auto& [k, v] : env->items())
      if (!v.is_string()) return field_error(f + ".env." + k, "must be a string");
  }
  return Status::ok();
}

// An integer member of `o` in [lo, hi]; `required` or absent (nullopt).
Result<std::optional<int64_t>> int_in(const json& o, const char* key, int64_t lo, int64_t hi, const std::string& f,
                                      const std::string& task, bool required) {
  const json* v = member(o, key);
  const std::string at = f + "." + key;
  const std::string range = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  if (!v) {
    if (required) return field_error(at, "is required (" + range + ") for task '" + task + "'");
    return std::optional<int64_t>();
  }
  if (!v->is_number_integer()) return field_error(at, "of task '" + task + "' must be " + range);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    return field_error(at, "of task '" + task + "' must be " + range);
  int64_t n = v->is_number_unsigned() ? static_cast<int64_t>(v->get<uint64_t>()) : v->get<int64_t>();
  if (n < lo || n > hi) return field_error(at, "of task '" + task + "' must be " + range + ", not " + std::to_string(n));
  return std::optional<int64_t>(n);
}

// A task entry's "distributed" member (docs/FORMATS.md): the mapped task's chunks run
// as child runs.
Status check_distributed(const json& d, const std::string& f, const std::string& task, bool mapped) {
  if (!d.is_object())
    return field_error(f, std::string("of task '") + task + "' must be an object, not " + json_type_name(d));
  if (!mapped) return field_error(f, "is set on task '" + task + "', which is not mapped (\"mapped\": true)");
  if (auto n = int_in(d, "max_workers", 1, kMaxDistributedWorkers, f, task, true); !n) return n.status();
  if (auto n = int_in(d, "chunk_size", 1, kMaxDistributedChunkSize, f, task, true); !n) return n.status();
  const json* storage = member(d, "storage");
  if (!storage || !storage->is_string() || storage->get_ref<const std::string&>().empty())
    return field_error(f + ".storage", "is required for task '" + task +
                                           "': where the chunks' inputs and outputs go (file:///SHARED/DIR or "
                                           "s3://BUCKET/PREFIX)");
  const auto& uri = storage->get_ref<const std::string&>();
  if (uri.size() > kMaxArtifactUriLength)
    return field_error(f + ".storage", "of task '" + task + "' is longer than " +
                                           std::to_string(kMaxArtifactUriLength) + " bytes");
  if (Status st = check_artifact_uri(uri); !st) return field_error(f + ".storage", "of task '" + task + "': " + st.message());
  if (const json* rc = member(d, "run_config")) {
    if (Status st = check_run_config_object(*rc, f + ".run_config"); !st) return st;
  }
  return Status::ok();
}

Status check_flow_graph(const json& body) {
  std::set<std::string> names;
  if (const json* tasks = member(body, "tasks")) {
    if (!tasks->is_array()) return field_error("tasks", "must be an array");
    if (tasks->size() > 100000) return field_error("tasks", "has too many tasks");
    for (size_t i = 0; i < tasks->size(); ++i) {
      const auto& t = (*tasks)[i];
      std::string f = "tasks[" + std::to_string(i) + "]";
      if (!t.is_object()) return field_error(f, "must be an object");
      auto n = req_name(t, "name");
      if (!n) return field_error(f + ".name", "is required (a non-empty string)");
      if (!names.insert(*n).second) return field_error(f + ".name", "repeats task name '" + *n + "'");
      const json* m = member(t, "mapped");
      if (m != nullptr && !m->is_boolean())
        return field_error(f + ".mapped", std::string("must be a boolean, not ") + json_type_name(*m));
      if (const json* d = member(t, "distributed")) {
        if (Status st = check_distributed(*d, f + ".distributed", *n, m != nullptr && m->get<bool>()); !st) return st;
      }
    }
  }
  if (const json* edges = member(body, "edges")) {
    if (!edges->is_array()) return field_error("edges", "must be an array");
    std::map<std::string, std::vector<std::string>> out;
    std::map<std::string, int> indegree;
    for (const auto& n : names) indegree[n] = 0;
    for (size_t i = 0; i < edges->size(); ++i) {
      const auto& e = (*edges)[i];
      std::string f = "edges[" + std::to_string(i) + "]";
      if (!e.is_object()) return field_error(f, "must be an object with 'from' and 'to'");
      auto from = req_name(e, "from");
      auto to = req_name(e, "to");
      if (!from || !to) return field_error(f, "needs 'from' and 'to' task names");
      if (!names.count(*from)) return field_error(f + ".from", "names unknown task '" + *from + "'");
      if (!names.count(*to)) return field_error(f + ".to", "names unknown task '" + *to + "'");
      out[*from].push_back(*to);
      ++indegree[*to];
    }
    // Kahn's algorithm: whatever is left has a cycle.
    std::vector<std::string> ready;
    for (const auto& [n, d] : indegree)
      if (d == 0) ready.push_back(n);
    size_t seen = 0;
    while (!ready.empty()) {
      auto n = std::move(ready.back());
      ready.pop_back();
      ++seen;
      for (const auto& m : out[n])
        if (--indegree[m] == 0) ready.push_back(m);
    }
    if (seen != names.size()) {
      for (const auto& [n, d] : indegree)
        if (d > 0) return field_error("edges", "form a cycle through task '" + n + "'");
    }
  }
  return Status::ok();
}

Status check_parameter_decls(const json& body) {
  const json* params = member(body, "parameters");
  if (!params) return Status::ok();
  if (!params->is_array()) return field_error("parameters", "must be an array of parameter declarations");
  std::set<std::string> names;
  for (size_t i = 0; i < params->size(); ++i) {
    const auto& p = (*params)[i];
    std::string f = "parameters[" + std::to_string(i) + "]";
    if (!p.is_object()) return field_error(f, "must be an object");
    auto n = req_name(p, "name");
    if (!n) return field_error(f + ".name", "is required (a non-empty string)");
    if (!names.insert(*n).second) return field_error(f + ".name", "repeats parameter '" + *n + "'");
    auto type = opt_string(p, "type", 16);
    if (!type) return field_error(f + ".type", "must be a string");
    std::string t = type->value_or("json");
    if (!valid_type(t)) return field_error(f + ".type", "must be one of int, float, bool, string, json");
    auto req = opt_bool(p, "required");
    if (!req) return field_error(f + ".required", "must be a boolean");
    if (const json* d = member(p, "default"); d && !value_has_type(*d, t))
      return field_error(f + ".default", std::string("must be of type ") + t + ", not " + json_type_name(*d));
  }
  return Status::ok();
}

Status check_run_config(const json& body) {
  const json* rc = member(body, "run_config");
  if (!rc) return Status::ok();
  return check_run_config_object(*rc, "run_config");
}

Status check_schedule(const json& s) {
  if (!s.is_object()) return field_error("schedule", "must be null or an object");
  auto type = opt_string(s, "type", 16);
  if (!type || !type->has_value()) return field_error("schedule.type", "is required: cron or interval");
  if (**type == "cron") {
    auto cron = opt_string(s, "cron", 200);
    if (!cron || !cron->has_value() || (*cron)->empty())
      return field_error("schedule.cron", "is required for a cron schedule");
    auto tz = opt_string(s, "timezone", 100);
    if (!tz) return tz.status();
  } else if (**type == "interval") {
    auto iv = opt_int(s, "interval_seconds", 1, int64_t{100} * 365 * 24 * 3600);
    if (!iv) return iv.status();
    if (!iv->has_value()) return field_error("schedule.interval_seconds", "is required for an interval schedule");
    auto anchor = opt_time(s, "anchor");
    if (!anchor) return anchor.status();
  } else {
    return field_error("schedule.type", "must be cron or interval (got '" + **type + "')");
  }
  auto catchup = opt_string(s, "catchup", 16);
  if (!catchup) return catchup.status();
  if (catchup->has_value() && **catchup != "skip" && **catchup != "latest" && **catchup != "all")
    return field_error("schedule.catchup", "must be skip, latest or all");
  if (const json* p = member(s, "parameters"); p && !p->is_object())
    return field_error("schedule.parameters", "must be an object");
  auto active = opt_bool(s, "active");
  if (!active) return active.status();
  return Status::ok();
}

// An optional message of any length (the body limit bounds it), bounded.
Result<std::string> opt_message(const json& o, std::string_view key) {
  auto m = opt_string(o, key, std::string::npos - 1);
  if (!m) return m.status();
  return bound_message(m->value_or(""));
}

}  // namespace

Result<json> parse_body(std::string_view body, bool empty_is_object) {
  bool blank = std::all_of(body.begin(), body.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
  if (blank) {
    if (empty_is_object) return json::object();
    return invalid_argument("the request needs a JSON body");
  }
  // Depth first: copying, comparing and dumping a value recurse once per level.
  if (json_nesting_depth(body, kMaxJsonDepth) > kMaxJsonDepth) {
    return invalid_argument("the body nests arrays and objects deeper than the limit of " +
                            std::to_string(kMaxJsonDepth) + " levels");
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument("the body is not valid JSON");
  return j;
}

Result<ProjectCreate> parse_project_create(const json& body) {
  if (auto st = check_object_or_array(body); !st) return st;
  ProjectCreate p;
  auto name = req_name(body, "name");
  if (!name) return name.status();
  p.name = std::move(*name);
  auto d = opt_string(body, "description", 10000);
  if (!d) return d.status();
  p.description = d->value_or("");
  auto s = opt_bool(body, "skip_if_exists");
  if (!s) return s.status();
  p.skip_if_exists = s->value_or(false);
  return p;
}

Result<store::NewFlowVersion> parse_flow_registration(const json& body) {
  if (auto st = check_object_or_array(body); !st) return st;
  store::NewFlowVersion v;
  auto project = req_name(body, "project");
  if (!project) return project.status();
  v.project = std::move(*project);
  auto name = req_name(body, "name");
  if (!name) return name.status();
  v.name = std::move(*name);
  const json* artifact = member(body, "artifact");
  if (!artifact || !artifact->is_object())
    return field_error("artifact", "is required: an object with 'uri' and 'sha256'");
  auto uri = opt_string(*artifact, "uri", kMaxArtifactUriLength);
  if (!uri) return field_error("artifact.uri", "must be a string of at most " + std::to_string(kMaxArtifactUriLength) + " bytes");
  if (!uri->has_value() || (*uri)->empty())
    return field_error("artifact.uri", "is required (file:///ABSOLUTE/PATH or s3://BUCKET/KEY)");
  if (Status st = check_artifact_uri(**uri); !st) return field_error("artifact.uri", st.message());
  v.artifact_uri = **uri;
  auto sha = opt_string(*artifact, "sha256", 64);
  if (!sha || !sha->has_value()) return field_error("artifact.sha256", "is required (64 hex digits)");
  const auto& h = **sha;
  if (h.size() != 64 || !std::all_of(h.begin(), h.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
    return field_error("artifact.sha256", "must be 64 hex digits");
  v.artifact_sha256 = h;
  std::transform(v.artifact_sha256.begin(), v.artifact_sha256.end(), v.artifact_sha256.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  auto kind = opt_string(body, "artifact_kind", 64);
  if (!kind) return kind.status();
  if (kind->has_value()) {
    if (!is_artifact_kind(**kind)) {
      std::string kinds;
      for (auto k : kArtifactKinds) kinds += (kinds.empty() ? "" : ", ") + std::string(k);
      return field_error("artifact_kind", "must be one of " + kinds + " (absent: binary), not '" + **kind + "'");
    }
    v.artifact_kind = **kind;
  }
  if (auto st = check_flow_graph(body); !st) return st;
  if (auto st = check_parameter_decls(body); !st) return st;
  if (auto st = check_run_config(body); !st) return st;
  if (const json* rc = member(body, "run_config")) {
    v.run_config_json = rc->dump(-1, ' ', false, json::error_handler_t::replace);
    if (const json* t = member(*rc, "type")) v.run_config_type = t->get<std::string>();
  }
  auto labels = opt_labels(body, "labels");
  if (!labels) return labels.status();
  if (labels->has_value()) {
    v.labels = **labels;
  } else if (const json* rc = member(body, "run_config")) {
    auto rl = opt_labels(*rc, "labels");
    if (rl && rl->has_value()) v.labels = **rl;
  }
  if (const json* s = member(body, "schedule")) {
    if (auto st = check_schedule(*s); !st) return st;
    v.schedule_json = s->dump();
    auto active = opt_bool(*s, "active");
    v.schedule_active = active->value_or(true);
  }
  auto retries = opt_int(body, "max_run_retries", 0, 1000);
  if (!retries) return retries.status();
  v.max_run_retries = static_cast<int>(retries->value_or(0));
  auto key = opt_string(body, "idempotency_key", 256);
  if (!key) return key.status();
  v.idempotency_key = *key;
  auto create = opt_bool(body, "create_project");
  if (!create) return create.status();
  v.create_project_if_missing = create->value_or(true);
  // The description is stored verbatim without the fields the server keeps apart.
  json desc = body;
  for (const char* k : {"project", "artifact", "artifact_kind", "idempotency_key", "create_project"}) desc.erase(k);
  v.description_json = desc.dump(-1, ' ', false, json::error_handler_t::replace);
  return v;
}

Result<FlowRunCreate> parse_flow_run_create(const json& body) {
  if (auto st = check_object_or_array(body); !st) return st;
  FlowRunCreate c;
  auto fid = opt_string(body, "flow_id", 64);
  if (!fid) return fid.status();
  c.flow_id = *fid;
  auto project = opt_string(body, "project", kMaxNameLength);
  if (!project) return project.status();
  auto flow = opt_string(body, "flow", kMaxNameLength);
  if (!flow) return flow.status();
  if (c.flow_id) {
    if (c.flow_id->empty()) return field_error("flow_id", "must not be empty");
    if (project->has_value() || flow->has_value())
      return unprocessable("give either 'flow_id' or 'project' and 'flow', not both");
  } else {
    if (!project->has_value() || !flow->has_value() || (*project)->empty() || (*flow)->empty())
      return unprocessable("give 'flow_id', or 'project' and 'flow' (names)");
    c.project = *project;
    c.flow = *flow;
  }
  if (const json* p = member(body, "parameters")) {
    if (!p->is_object()) return field_error("parameters", "must be an object of parameter values");
    c.parameters = *p;
  }
  auto labels = opt_labels(body, "labels");
  if (!labels) return labels.status();
  c.labels = *labels;
  auto key = opt_string(body, "idempotency_key", 256);
  if (!key) return key.status();
  c.idempotency_key = *key;
  auto t = opt_time(body, "scheduled_start_time");
  if (!t) return t.status();
  c.scheduled_start_time = *t;
  return c;
}

Status check_parameters(const json& flow_description, const json& given) {
  if (!given.is_object()) return field_error("parameters", "must be an object");
  std::map<std::string, const json*> declared;
  const json* decls = flow_description.is_object() ? member(flow_description, "parameters") : nullptr;
  if (decls && decls->is_array()) {
    for (const auto& d : *decls) {
      if (d.is_object() && d.contains("name") && d["name"].is_string())
        declared[d["name"].get<std::string>()] = &d;
    }
  }
  for (const auto& [k, v] : given.items()) {
    auto it = declared.find(k);
    if (it == declared.end()) {
      std::string known;
      for (const auto& [n, d] : declared) known += (known.empty() ? "" : ", ") + n;
      return unprocessable("unknown parameter '" + k + "'" +
                           (known.empty() ? "; the flow declares no parameters" : "; the flow declares: " + known));
    }
    const json& d = *it->second;
    std::string t = d.contains("type") && d["type"].is_string() ? d["type"].get<std::string>() : "json";
    if (!value_has_type(v, t))
      return unprocessable("parameter '" + k + "' must be of type " + t + ", not " + json_type_name(v));
  }
  for (const auto& [n, d] : declared) {
    bool required = d->contains("required") && (*d)["required"].is_boolean() && (*d)["required"].get<bool>();
    bool has_default = d->contains("default") && !(*d)["default"].is_null();
    if (required && !has_default && !given.contains(n))
      return unprocessable("missing required parameter '" + n + "'");
  }
  return Status::ok();
}

Result<StateChange> parse_state_change(const json& body) {
  if (auto st = check_object_or_array(body); !st) return st;
  StateChange c;
  auto s = req_state(body, "state");
  if (!s) return s.status();
  c.state = *s;
  auto m = opt_message(body, "message");
  if (!m) return m.status();
  c.message = std::move(*m);
  auto v = opt_int(body, "expected_version", 0, INT64_MAX);
  if (!v) return v.status();
  c.expected_version = *v;
  auto t = opt_time(body, "scheduled_start_time");
  if (!t) return t.status();
  c.scheduled_start_time = *t;
  return c;
}

Result<std::vector<store::TaskRunUpdate>> parse_task_run_batch(const json& body, SysTime now) {
  const json* items = &body;
  if (body.is_object() && body.contains("task_runs")) items = &body["task_runs"];
  if (!items->is_array()) return unprocessable("the body must be a JSON array of task-run states");
  if (items->size() > kMaxBatch) return unprocessable("a batch holds at most " + std::to_string(kMaxBatch) + " items");
  std::vector<store::TaskRunUpdate> out;
  out.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    const auto& e = (*items)[i];
    std::string f = "[" + std::to_string(i) + "]";
    if (!e.is_object()) return field_error(f, "must be an object");
    store::TaskRunUpdate u;
    auto run = req_name(e, "flow_run_id");
    if (!run) return field_error(f + ".flow_run_id", "is required");
    u.flow_run_id = std::move(*run);
    auto task = req_name(e, "task");
    if (!task) return field_error(f + ".task", "is required (the task name)");
    u.task = std::move(*task);
    auto mi = opt_int(e, "map_index", -1, kMaxMapCount - 1);
    if (!mi) return field_error(f + ".map_index", "must be an integer from -1 to " + std::to_string(kMaxMapCount - 1));
    u.map_index = static_cast<int>(mi->value_or(-1));
    auto st = req_state(e, "state");
    if (!st) return unprocessable("item " + f + ": " + st.status().message());
    u.state = *st;
    auto m = opt_message(e, "message");
    if (!m) return field_error(f + ".message", "must be a string");
    u.message = std::move(*m);
    auto a = opt_int(e, "attempts", 0, 1000000);
    if (!a) return field_error(f + ".attempts", "must be a non-negative integer");
    if (a->has_value()) u.attempts = static_cast<int>(**a);
    auto t = opt_time(e, "timestamp");
    if (!t) return field_error(f + ".timestamp", "must be an RFC 3339 time");
    u.timestamp = t->value_or(now);
    auto count = opt_int(e, "map_count", 1, kMaxMapCount);
    if (!count) return field_error(f + ".map_count", "must be an integer from 1 to " + std::to_string(kMaxMapCount));
    u.map_count = static_cast<int>(count->value_or(1));
    if (u.map_count > 1 && u.map_index < 0)
      return field_error(f + ".map_count", "above 1 needs a map_index (the first of the mapped task runs)");
    if (int64_t{u.map_index} + u.map_count > kMaxMapCount)
      return field_error(f + ".map_count", "reaches past map index " + std::to_string(kMaxMapCount - 1) +
                                               " (a mapped task has at most " + std::to_string(kMaxMapCount) +
                                               " task runs)");
    auto start = opt_time(e, "start_time");
    if (!start) return field_error(f + ".start_time", "must be an RFC 3339 time");
    u.start_time = *start;
    auto next = opt_time(e, "next_start_time");
    if (!next) return field_error(f + ".next_start_time", "must be an RFC 3339 time");
    if (next->has_value() && u.state != State::kRetrying)
      return field_error(f + ".next_start_time", "is for a Retrying state only (this one is " +
                                                     std::string(state_name(u.state)) + ")");
    u.next_start_time = *next;
    auto ra = opt_int(e, "run_attempt", 1, 1000000);
    if (!ra) return field_error(f + ".run_attempt", "must be an integer from 1 to 1000000 (the flow run's attempt)");
    if (ra->has_value()) u.run_attempt = static_cast<int>(**ra);
    out.push_back(std::move(u));
  }
  return out;
}

FlowTasks flow_tasks(const store::Flow& flow, const json& description) {
  FlowTasks out;
  out.flow_name = flow.name;
  out.flow_version = flow.version;
  const json* tasks = member(description, "tasks");
  if (tasks == nullptr || !tasks->is_array()) return out;
  for (const auto& t : *tasks) {
    if (!t.is_object()) continue;
    const json* name = member(t, "name");
    if (name == nullptr || !name->is_string()) continue;
    const json* mapped = member(t, "mapped");
    const bool is_mapped = mapped != nullptr && mapped->is_boolean() && mapped->get<bool>();
    out.mapped[name->get<std::string>()] = is_mapped;
    const json* d = member(t, "distributed");
    if (!is_mapped || d == nullptr || !d->is_object()) continue;
    FlowTasks::DistributedTask dt;
    if (const json* rc = member(*d, "run_config"); rc != nullptr && rc->is_object()) {
      dt.run_config_json = rc->dump(-1, ' ', false, json::error_handler_t::replace);
      if (const json* type = member(*rc, "type"); type != nullptr && type->is_string()) dt.run_config_type = type->get<std::string>();
    }
    out.distributed[name->get<std::string>()] = std::move(dt);
  }
  return out;
}

Result<ChildRunsCreate> parse_child_runs_create(const json& body) {
  if (auto st = check_object_or_array(body); !st) return st;
  ChildRunsCreate out;
  auto task = req_name(body, "task");
  if (!task) return task.status();
  out.task = std::move(*task);
  const json* chunks = member(body, "chunks");
  if (!chunks || !chunks->is_array() || chunks->empty() || chunks->size() > store::kMaxChildChunks)
    return field_error("chunks", "is required: an array of 1 to " + std::to_string(store::kMaxChildChunks) +
                                     " chunks {\"chunk\": N, \"start\": I, \"end\": J}");
  std::set<int64_t> seen;
  for (size_t i = 0; i < chunks->size(); ++i) {
    const json& c = (*chunks)[i];
    const std::string f = "chunks[" + std::to_string(i) + "]";
    if (!c.is_object()) return field_error(f, "must be an object {\"chunk\": N, \"start\": I, \"end\": J}");
    auto get = [&](const char* key, int64_t lo, int64_t hi) -> Result<int64_t> {
      const json* v = member(c, key);
      const std::string range = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
      if (!v) return field_error(f + "." + key, "is required (" + range + ")");
      if (!v->is_number_integer() || (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)))
        return field_error(f + "." + key, "must be " + range);
      int64_t n = v->is_number_unsigned() ? static_cast<int64_t>(v->get<uint64_t>()) : v->get<int64_t>();
      if (n < lo || n > hi) return field_error(f + "." + key, "must be " + range + ", not " + std::to_string(n));
      return n;
    };
    auto chunk = get("chunk", 0, kMaxChildChunkNumber);
    if (!chunk) return chunk.status();
    auto start = get("start", 0, store::kMaxMapIndex);
    if (!start) return start.status();
    auto end = get("end", 1, int64_t{store::kMaxMapIndex} + 1);
    if (!end) return end.status();
    if (*end <= *start)
      return field_error(f, "has end " + std::to_string(*end) + " <= start " + std::to_string(*start) +
                                " (a chunk holds the map indexes start .. end - 1)");
    if (!seen.insert(*chunk).second)
      return field_error(f + ".chunk", "repeats chunk " + std::to_string(*chunk) + " within the request");
    out.chunks.push_back({static_cast<int>(*chunk), *start, *end});
  }
  return out;
}

json to_json(const store::ChildRun& c) {
  return {{"parent_run_id", c.parent_run_id}, {"task", c.task},   {"chunk", c.chunk},
          {"start", c.start},                 {"end", c.end},     {"parent_attempt", c.parent_attempt}};
}

json to_json(const store::ChildRunEntry& e) {
  return {{"id", e.id},
          {"chunk", e.child.chunk},
          {"start", e.child.start},
          {"end", e.child.end},
          {"task", e.child.task},
          {"parent_attempt", e.child.parent_attempt},
          {"state", state_name(e.state)},
          {"state_message", e.state_message},
          {"run_count", e.run_count},
          {"infrastructure", to_json(e.infrastructure)}};
}

Status check_task_run_item(const store::TaskRunUpdate& u, size_t index, const FlowTasks& tasks) {
  const std::string f = "[" + std::to_string(index) + "]";
  auto it = tasks.mapped.find(u.task);
  if (it == tasks.mapped.end())
    return field_error(f + ".task", "names task '" + u.task + "', which flow '" + tasks.flow_name + "' version " +
                                        std::to_string(tasks.flow_version) + " of run " + u.flow_run_id +
                                        " does not have");
  if (!it->second && u.map_index >= 0)
    return field_error(f + ".map_index", "is " + std::to_string(u.map_index) + ", but task '" + u.task +
                                             "' is not mapped (its task run has map_index -1)");
  return Status::ok();
}

Result<std::vector<store::LogEntry>> parse_log_batch(const json& body, SysTime now) {
  const json* items = &body;
  if (body.is_object() && body.contains("logs")) items = &body["logs"];
  if (!items->is_array()) return unprocessable("the body must be a JSON array of log lines");
  if (items->size() > kMaxBatch) return unprocessable("a batch holds at most " + std::to_string(kMaxBatch) + " items");
  std::vector<store::LogEntry> out;
  out.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    const auto& e = (*items)[i];
    std::string f = "[" + std::to_string(i) + "]";
    if (!e.is_object()) return field_error(f, "must be an object");
    store::LogEntry l;
    auto run = req_name(e, "flow_run_id");
    if (!run) return field_error(f + ".flow_run_id", "is required");
    l.flow_run_id = std::move(*run);
    auto tr = opt_string(e, "task_run_id", 64);
    if (!tr) return field_error(f + ".task_run_id", "must be a string");
    l.task_run_id = *tr;
    auto task = opt_string(e, "task", kMaxNameLength);
    if (!task) return field_error(f + ".task", "must be a string");
    l.task = *task;
    auto mi = opt_int(e, "map_index", -1, kMaxMapCount - 1);
    if (!mi) return field_error(f + ".map_index", "must be an integer from -1 to " + std::to_string(kMaxMapCount - 1));
    l.map_index = static_cast<int>(mi->value_or(-1));
    auto level = opt_string(e, "level", 16);
    if (!level) return field_error(f + ".level", "must be a string");
    std::string lv = level->value_or("INFO");
    std::transform(lv.begin(), lv.end(), lv.begin(), [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
    if (lv == "WARN") lv = "WARNING";
    if (lv != "DEBUG" && lv != "INFO" && lv != "WARNING" && lv != "ERROR" && lv != "CRITICAL")
      return field_error(f + ".level", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL");
    l.level = lv;
    const json* msg = member(e, "message");
    if (!msg) return field_error(f + ".message", "is required");
    auto m = opt_message(e, "message");
    if (!m) return field_error(f + ".message", "must be a string");
    l.message = std::move(*m);
    auto t = opt_time(e, "timestamp");
    if (!t) return field_error(f + ".timestamp", "must be an RFC 3339 time");
    l.timestamp = t->value_or(now);
    auto ra = opt_int(e, "run_attempt", 1, 1000000);
    if (!ra) return field_error(f + ".run_attempt", "must be an integer from 1 to 1000000 (the flow run's attempt)");
    if (ra->has_value()) l.run_attempt = static_cast<int>(**ra);
    out.push_back(std::move(l));
  }
  return out;
}

Result<store::NewAgent> parse_agent(const json& body) {
  if (auto st = check_object_or_array(body); !st) return st;
  store::NewAgent a;
  auto name = req_name(body, "name");
  if (!name) return name.status();
  a.name = std::move(*name);
  auto type = opt_string(body, "type", 16);
  if (!type) return type.status();
  a.type = type->value_or("local");
  if (!is_run_config_type(a.type))
    return field_error("type", std::string("must be one of ") + kRunConfigTypes + " (got '" + a.type + "')");
  auto labels = opt_labels(body, "labels");
  if (!labels) return labels.status();
  a.labels = labels->value_or(std::vector<std::string>{});
  // Optional: an agent older than this field does not send it.
  auto max_concurrent = opt_int(body, "max_concurrent", 1, 10000);
  if (!max_concurrent) return max_concurrent.status();
  if (*max_concurrent) a.max_concurrent = static_cast<int>(**max_concurrent);
  return a;
}

Result<ClaimBody> parse_claim(const json& body, Millis max_wait) {
  if (auto st = check_object_or_array(body); !st) return st;
  ClaimBody c;
  auto max = opt_int(body, "max", 1, 100);
  if (!max) return max.status();
  c.max = static_cast<int>(max->value_or(1));
  auto wait = opt_int(body, "wait_ms", 0, max_wait.count());
  if (!wait) return wait.status();
  c.wait = Millis(wait->value_or(0));
  if (const json* types = member(body, "types")) {
    if (!types->is_array() || types->empty() || types->size() > 16)
      return field_error("types", std::string("must be an array of 1 to 16 run-config types (") + kRunConfigTypes + ")");
    std::vector<std::string> out;
    for (size_t i = 0; i < types->size(); ++i) {
      const json& t = (*types)[i];
      std::string f = "types[" + std::to_string(i) + "]";
      if (!t.is_string()) return field_error(f, std::string("must be a string, not ") + json_type_name(t));
      const auto& name = t.get_ref<const std::string&>();
      if (!is_run_config_type(name))
        return field_error(f, std::string("must be one of ") + kRunConfigTypes + " (got '" + name.substr(0, 32) + "')");
      out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    c.types = std::move(out);
  }
  return c;
}

Result<InfrastructureReport> parse_infrastructure(const json& body) {
  if (auto st = check_object_or_array(body); !st) return st;
  InfrastructureReport r;
  auto kind = opt_string(body, "kind", kMaxInfrastructureKind);
  if (!kind) return kind.status();
  if (!kind->has_value() || (*kind)->empty())
    return field_error("kind", "is required: what runs the flow run (process, container, ecs-task, slurm-job, ...)");
  for (char ch : **kind)
    if (!(std::islower(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)) || ch == '-'))
      return field_error("kind", "must be lower-case letters, digits and '-' (got '" + **kind + "')");
  r.kind = std::move(**kind);
  auto id = opt_string(body, "id", kMaxInfrastructureId);
  if (!id) return id.status();
  if (!id->has_value() || (*id)->empty())
    return field_error("id", "is required: the pid, container id, task ARN or job id");
  if (has_control_chars(**id) || (*id)->find('\x7f') != std::string::npos)
    return field_error("id", "must not contain control characters");
  r.id = std::move(**id);
  return r;
}

Result<TokenCreate> parse_token_create(const json& body, SysTime now) {
  if (auto st = check_object_or_array(body); !st) return st;
  TokenCreate t;
  auto name = req_name(body, "name");
  if (!name) return name.status();
  t.name = std::move(*name);
  auto scope = opt_string(body, "scope", 16);
  if (!scope) return scope.status();
  t.scope = scope->value_or("");
  if (t.scope != "admin" && t.scope != "user" && t.scope != "runner")
    return field_error("scope", "must be admin, user or runner");
  auto exp = opt_string(body, "expires", 64);
  if (!exp) return exp.status();
  if (exp->has_value()) {
    if (auto d = parse_duration_text(**exp); d && d->count() > 0) {
      t.expires = now + *d;
    } else if (auto at = parse_time_text(**exp)) {
      if (*at <= now) return field_error("expires", "lies in the past");
      t.expires = *at;
    } else {
      return field_error("expires", "must be a duration such as 30d or an RFC 3339 time");
    }
  }
  return t;
}

Result<int64_t> parse_int_param(const std::optional<std::string>& value, std::string_view name, int64_t lo,
                                int64_t hi, int64_t fallback) {
  if (!value || value->empty()) return fallback;
  const std::string& s = *value;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-') {
    neg = true;
    i = 1;
  }
  if (i >= s.size() || s.size() - i > 18) return unprocessable("query parameter '" + std::string(name) + "' must be an integer");
  int64_t n = 0;
  for (; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i])))
      return unprocessable("query parameter '" + std::string(name) + "' must be an integer");
    n = n * 10 + (s[i] - '0');
  }
  if (neg) n = -n;
  if (n < lo || n > hi)
    return unprocessable("query parameter '" + std::string(name) + "' must be between " + std::to_string(lo) +
                         " and " + std::to_string(hi));
  return n;
}

std::string flow_run_text(const store::FlowRun& r) {
  // The hot path of GET /api/v1/flow-runs/{id}, state changes and heartbeats: written
  // directly; to_json(FlowRun) renders the same document (checked by a test). Stored
  // text fields were valid UTF-8 JSON input when they were written.
  std::string o;
  o.reserve(768);
  auto key = [&](const char* k) {
    o += o.empty() ? "{\"" : ",\"";
    o += k;
    o += "\":";
  };
  auto str = [&](const char* k, std::string_view v) {
    key(k);
    append_json_string(o, v);
  };
  auto opt_str = [&](const char* k, const std::optional<std::string>& v) {
    key(k);
    if (v) append_json_string(o, *v); else o += "null";
  };
  auto time = [&](const char* k, const std::optional<SysTime>& v) {
    key(k);
    if (v) append_json_string(o, format_rfc3339(*v)); else o += "null";
  };
  auto num = [&](const char* k, int64_t v) {
    key(k);
    o += std::to_string(v);
  };
  opt_str("agent_id", r.agent_id);
  key("auto_scheduled");
  o += r.auto_scheduled ? "true" : "false";
  key("child");
  if (r.child) {
    o += "{\"chunk\":" + std::to_string(r.child->chunk) + ",\"end\":" + std::to_string(r.child->end) +
         ",\"parent_attempt\":" + std::to_string(r.child->parent_attempt) + ",\"parent_run_id\":";
    append_json_string(o, r.child->parent_run_id);
    o += ",\"start\":" + std::to_string(r.child->start) + ",\"task\":";
    append_json_string(o, r.child->task);
    o.push_back('}');
  } else {
    o += "null";
  }
  time("created", r.created);
  time("end_time", r.end_time);
  str("flow_id", r.flow_id);
  str("flow_name", r.flow_name);
  num("flow_version", r.flow_version);
  time("heartbeat_at", r.heartbeat_at);
  str("id", r.id);
  opt_str("idempotency_key", r.idempotency_key);
  key("infrastructure");
  if (r.infrastructure) {
    o += "{\"agent_id\":";
    append_json_string(o, r.infrastructure->agent_id);
    o += ",\"id\":";
    append_json_string(o, r.infrastructure->id);
    o += ",\"kind\":";
    append_json_string(o, r.infrastructure->kind);
    o += ",\"reported_at\":";
    append_json_string(o, format_rfc3339(r.infrastructure->reported_at));
    o.push_back('}');
  } else {
    o += "null";
  }
  key("labels");
  o.push_back('[');
  for (size_t i = 0; i < r.labels.size(); ++i) {
    if (i) o.push_back(',');
    append_json_string(o, r.labels[i]);
  }
  o.push_back(']');
  key("parameters");
  if (r.parameters_json.empty() || r.parameters_json == "{}") {
    o += "{}";
  } else {
    auto p = parse_json_bounded(r.parameters_json, kMaxAnswerJsonDepth);
    o += p ? p->dump(-1, ' ', false, json::error_handler_t::replace) : "null";
  }
  str("project_id", r.project_id);
  key("run_config");
  if (r.run_config_json.empty()) {
    o += "null";
  } else {
    auto rc = parse_json_bounded(r.run_config_json, kMaxAnswerJsonDepth);
    o += rc && rc->is_object() ? rc->dump(-1, ' ', false, json::error_handler_t::replace) : "null";
  }
  num("run_count", r.run_count);
  time("scheduled_start_time", r.scheduled_start_time);
  time("start_time", r.start_time);
  str("state", state_name(r.state));
  time("state_changed_at", r.state_changed_at);
  str("state_message", r.state_message);
  time("submitted_at", r.submitted_at);
  num("version", r.version);
  o.push_back('}');
  return o;
}

namespace {
json opt_time_json(const std::optional<SysTime>& t) { return t ? json(format_rfc3339(*t)) : json(nullptr); }
json opt_string_json(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }
// Stored JSON was a bounded request body once; read it back bounded all the same
// (null when it is not JSON or nests too deep) since it is copied and dumped below.
json parse_stored(const std::string& text) {
  auto j = parse_json_bounded(text, kMaxAnswerJsonDepth);
  return j ? std::move(*j) : json(nullptr);
}
// A stored run config: the object, or null when there is none.
json run_config_json(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = parse_stored(text);
  return j.is_object() ? j : json(nullptr);
}
}  // namespace

json to_json(const store::Project& p) {
  return {{"id", p.id}, {"name", p.name}, {"description", p.description}, {"created", format_rfc3339(p.created)}};
}

json to_json(const store::Flow& f, bool full) {
  json j = json::object();
  if (full) {
    json desc = parse_stored(f.description_json);
    if (desc.is_object()) j = std::move(desc);
  } else {
    json desc = parse_stored(f.description_json);
    if (desc.is_object()) {
      for (const char* k : {"description", "parameters", "run_config", "storage"})
        if (desc.contains(k)) j[k] = desc[k];
    }
  }
  j["id"] = f.id;
  j["project_id"] = f.project_id;
  j["project"] = f.project_name;
  j["name"] = f.name;
  j["version"] = f.version;
  j["archived"] = f.archived;
  j["artifact"] = {{"uri", f.artifact_uri}, {"sha256", f.artifact_sha256}, {"kind", f.artifact_kind}};
  j["labels"] = f.labels;
  j["schedule"] = f.schedule_json ? parse_stored(*f.schedule_json) : json(nullptr);
  j["schedule_active"] = f.schedule_active;
  j["max_run_retries"] = f.max_run_retries;
  j["idempotency_key"] = opt_string_json(f.idempotency_key);
  j["created"] = format_rfc3339(f.created);
  return j;
}

json to_json(const store::FlowRun& r) {
  return {{"id", r.id},
          {"flow_id", r.flow_id},
          {"project_id", r.project_id},
          {"flow_name", r.flow_name},
          {"flow_version", r.flow_version},
          {"parameters", parse_stored(r.parameters_json)},
          {"labels", r.labels},
          {"idempotency_key", opt_string_json(r.idempotency_key)},
          {"auto_scheduled", r.auto_scheduled},
          {"state", state_name(r.state)},
          {"state_message", r.state_message},
          {"version", r.version},
          {"run_count", r.run_count},
          {"agent_id", opt_string_json(r.agent_id)},
          {"created", format_rfc3339(r.created)},
          {"state_changed_at", format_rfc3339(r.state_changed_at)},
          {"scheduled_start_time", format_rfc3339(r.scheduled_start_time)},
          {"submitted_at", opt_time_json(r.submitted_at)},
          {"start_time", opt_time_json(r.start_time)},
          {"end_time", opt_time_json(r.end_time)},
          {"heartbeat_at", opt_time_json(r.heartbeat_at)},
          {"run_config", run_config_json(r.run_config_json)},
          {"infrastructure", to_json(r.infrastructure)},
          {"child", r.child ? to_json(*r.child) : json(nullptr)}};
}

json to_json(const std::optional<store::Infrastructure>& i) {
  if (!i) return nullptr;
  return {{"kind", i->kind}, {"id", i->id}, {"agent_id", i->agent_id}, {"reported_at", format_rfc3339(i->reported_at)}};
}

json to_json(const store::StateChange& c) {
  return {{"id", c.id},
          {"flow_run_id", c.flow_run_id},
          {"from_state", c.from_state ? json(state_name(*c.from_state)) : json(nullptr)},
          {"state", state_name(c.state)},
          {"message", c.message},
          {"version", c.version},
          {"forced", c.forced},
          {"agent_id", opt_string_json(c.agent_id)},
          {"timestamp", format_rfc3339(c.timestamp)}};
}

json to_json(const store::TaskRun& t) {
  return {{"id", t.id},
          {"flow_run_id", t.flow_run_id},
          {"task", t.task},
          {"map_index", t.map_index},
          {"state", state_name(t.state)},
          {"message", t.message},
          {"attempts", t.attempts},
          {"created", format_rfc3339(t.created)},
          {"updated", format_rfc3339(t.updated)},
          {"start_time", opt_time_json(t.start_time)},
          {"end_time", opt_time_json(t.end_time)},
          {"next_start_time", opt_time_json(t.next_start_time)},
          {"run_attempt", t.run_attempt}};
}

json to_json(const store::FlowRunAttempt& a) {
  return {{"attempt", a.attempt},
          {"state", state_name(a.state)},
          {"message", a.message},
          {"agent_id", opt_string_json(a.agent_id)},
          {"start_time", format_rfc3339(a.start_time)},
          {"end_time", opt_time_json(a.end_time)}};
}

json to_json(const store::MappedTaskSummary& m) {
  json states = json::object();
  for (const auto& s : m.states) states[state_name(s.state)] = s.count;
  return {{"task", m.task},
          {"count", m.count},
          {"max_map_index", m.max_map_index},
          {"states", std::move(states)},
          {"start_time", m.start_time ? json(format_rfc3339(*m.start_time)) : json(nullptr)},
          {"end_time", m.end_time ? json(format_rfc3339(*m.end_time)) : json(nullptr)},
          {"updated", format_rfc3339(m.updated)}};
}

json to_json(const store::TaskRunHistoryEntry& h) {
  return {{"id", h.id},
          {"flow_run_id", h.flow_run_id},
          {"task", h.task},
          {"map_index", h.map_index},
          {"map_count", h.map_count},
          {"run_attempt", h.run_attempt},
          {"attempts", h.attempts},
          {"state", state_name(h.state)},
          {"message", h.message},
          {"timestamp", format_rfc3339(h.timestamp)},
          {"next_start_time", opt_time_json(h.next_start_time)}};
}

json to_json(const store::LogRecord& l) {
  return {{"id", l.id},
          {"flow_run_id", l.flow_run_id},
          {"task_run_id", opt_string_json(l.task_run_id)},
          {"task", opt_string_json(l.task)},
          {"map_index", l.map_index},
          {"level", l.level},
          {"message", l.message},
          {"timestamp", format_rfc3339(l.timestamp)},
          {"run_attempt", l.run_attempt}};
}

json to_json(const store::Agent& a, bool healthy) {
  bool stopped = a.stopped_at.has_value();
  return {{"id", a.id},
          {"name", a.name},
          {"type", a.type},
          {"run_config_types", a.run_config_types},
          {"labels", a.labels},
          {"max_concurrent", a.max_concurrent ? json(*a.max_concurrent) : json(nullptr)},
          {"created", format_rfc3339(a.created)},
          {"last_heartbeat", opt_time_json(a.last_heartbeat)},
          {"status", stopped ? "stopped" : "live"},
          {"stopped_at", opt_time_json(a.stopped_at)},
          {"health", stopped ? "stopped" : healthy ? "healthy" : "unhealthy"}};
}

json to_json(const store::Token& t) {
  return {{"id", t.id},
          {"name", t.name},
          {"scope", t.scope},
          {"flow_run_id", opt_string_json(t.flow_run_id)},
          {"created", format_rfc3339(t.created)},
          {"expires", opt_time_json(t.expires)},
          {"revoked", t.revoked_at.has_value()},
          {"revoked_at", opt_time_json(t.revoked_at)}};
}

}  // namespace culvert::server
