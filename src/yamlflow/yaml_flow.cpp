#include "yamlflow/yaml_flow.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "core/timefmt.hpp"

namespace culvert::yamlflow {
namespace {

using Node = YAML::Node;
using Millis = std::chrono::milliseconds;

// Where the parse is: the file's name, for every message.
struct Parser {
  std::string file;

  int line_of(const Node& n) const { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }

  Status err(const Node& at, const std::string& field, const std::string& what) const {
    std::string where = file;
    if (int l = line_of(at); l > 0) where += ":" + std::to_string(l);
    return invalid_argument(where + ": " + field + ": " + what);
  }
  Status err_line(int line, const std::string& field, const std::string& what) const {
    return invalid_argument(file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + field + ": " +
                            what);
  }

  static const char* kind_of(const Node& n) {
    switch (n.Type()) {
      case YAML::NodeType::Null: return "nothing (null)";
      case YAML::NodeType::Scalar: return "a scalar";
      case YAML::NodeType::Sequence: return "a list";
      case YAML::NodeType::Map: return "a mapping";
      default: return "undefined";
    }
  }

  // The entries of a mapping in document order, each key a unique scalar among
  // `allowed` (empty: any key). `field` names the mapping ("" for the top level).
  Result<std::vector<std::pair<std::string, Node>>> entries(const Node& map, const std::string& field,
                                                            const std::vector<std::string>& allowed,
                                                            size_t max_entries = kMaxListItems) const {
    const std::string name = field.empty() ? "the file" : field;
    if (!map.IsMap()) return err(map, name, std::string("must be a mapping (key: value), not ") + kind_of(map));
    std::vector<std::pair<std::string, Node>> out;
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      // A copy: the iterator's value is a temporary, and a reference to its key dangles.
      const Node k = it->first;
      if (!k.IsScalar()) return err(k, name, "keys must be plain names");
      const std::string key = k.Scalar();
      std::string path = field.empty() ? key : field + "." + key;
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string known;
        for (const auto& a : allowed) known += (known.empty() ? "" : ", ") + a;
        return err(k, path, "unknown key '" + key + "' (" + (field.empty() ? "top-level keys" : field + " takes") +
                                ": " + known + ")");
      }
      if (!seen.insert(key).second) return err(k, path, "is given twice");
      if (out.size() >= max_entries)
        return err(k, name, "has more than " + std::to_string(max_entries) + " entries");
      out.emplace_back(key, it->second);
    }
    return out;
  }

  Result<std::string> string(const Node& n, const std::string& field, size_t max = kMaxStringBytes) const {
    if (!n.IsScalar()) return err(n, field, std::string("must be a string, not ") + kind_of(n));
    const std::string& s = n.Scalar();
    if (s.size() > max) return err(n, field, "is longer than " + std::to_string(max) + " bytes");
    if (s.find('\0') != std::string::npos) return err(n, field, "must not contain a NUL byte");
    return s;
  }

  // A string that is one line of printable text (names, images, labels...).
  Result<std::string> line_string(const Node& n, const std::string& field, size_t max = 1024) const {
    auto s = string(n, field, max);
    if (!s) return s;
    if (std::any_of(s->begin(), s->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      return err(n, field, "must not contain control characters (newlines, tabs)");
    return s;
  }

  Result<int64_t> integer(const Node& n, const std::string& field, int64_t lo, int64_t hi) const {
    const std::string range = "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (!n.IsScalar()) return err(n, field, range + ", not " + kind_of(n));
    const std::string& s = n.Scalar();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v < lo || v > hi)
      return err(n, field, range + ", got '" + s.substr(0, 64) + "'");
    return v;
  }

  Result<double> number(const Node& n, const std::string& field, double lo, double hi) const {
    std::string range = hi >= 1e300 ? std::string("must be a number")
                                    : "must be a number from " + fmt_number(lo) + " to " + fmt_number(hi);
    if (!n.IsScalar()) return err(n, field, range + ", not " + kind_of(n));
    const std::string& s = n.Scalar();
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || errno != 0 || !(v >= lo && v <= hi))
      return err(n, field, range + ", got '" + s.substr(0, 64) + "'");
    return v;
  }
  static std::string fmt_number(double d) {
    std::string s = std::to_string(d);
    while (s.find('.') != std::string::npos && (s.back() == '0' || s.back() == '.')) {
      bool dot = s.back() == '.';
      s.pop_back();
      if (dot) break;
    }
    return s;
  }

  Result<bool> boolean(const Node& n, const std::string& field) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
    }
    return err(n, field, std::string("must be true or false, got ") +
                             (n.IsScalar() ? "'" + n.Scalar().substr(0, 64) + "'" : kind_of(n)));
  }

  Result<Millis> duration(const Node& n, const std::string& field, bool allow_zero = true) const {
    const char* hint = "must be a duration such as 30s, 10m, 1h30m, 500ms (a bare number is seconds)";
    if (!n.IsScalar()) return err(n, field, std::string(hint) + ", not " + kind_of(n));
    auto d = parse_duration(n.Scalar());
    if (!d) return err(n, field, std::string(hint) + ", got '" + n.Scalar().substr(0, 64) + "'");
    if (!allow_zero && d->count() <= 0) return err(n, field, "must be longer than 0");
    return *d;
  }

  // A list of one-line strings; a single string is a list of one when `scalar_ok`.
  Result<std::vector<std::string>> string_list(const Node& n, const std::string& field, bool scalar_ok = false,
                                               size_t max_len = 1024) const {
    std::vector<std::string> out;
    if (scalar_ok && n.IsScalar()) {
      auto s = line_string(n, field, max_len);
      if (!s) return s.status();
      out.push_back(std::move(*s));
      return out;
    }
    if (!n.IsSequence()) return err(n, field, std::string("must be a list, e.g. [a, b], not ") + kind_of(n));
    if (n.size() > kMaxListItems) return err(n, field, "has more than " + std::to_string(kMaxListItems) + " items");
    size_t i = 0;
    for (const auto& item : n) {
      auto s = line_string(item, field + "[" + std::to_string(i++) + "]", max_len);
      if (!s) return s.status();
      out.push_back(std::move(*s));
    }
    return out;
  }

  // Environment variables: NAME: value (values are strings; numbers and booleans as written).
  Result<EnvMap> env_map(const Node& n, const std::string& field) const {
    auto es = entries(n, field, {});
    if (!es) return es.status();
    EnvMap env;
    for (const auto& [k, v] : *es) {
      std::string path = field + "." + k;
      if (!is_env_name(k))
        return err(n, path, "'" + k.substr(0, 64) + "' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
      if (v.IsNull()) return err(n, path, "needs a value (write \"\" for an empty one)");
      auto s = string(v, path);
      if (!s) return s.status();
      env[k] = std::move(*s);
    }
    return env;
  }

  static bool is_env_name(std::string_view s) {
    if (s.empty() || s.size() > 256 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  }
  static bool is_identifier(std::string_view s) { return s.size() <= 64 && is_env_name(s); }
  // Flow and task names: 1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit.
  static bool is_name(std::string_view s) {
    if (s.empty() || s.size() > 128 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
  }

  // A YAML value as JSON (for the ECS run config's task_definition and run_task_kwargs).
  Result<nlohmann::json> to_json(const Node& n, const std::string& field, int depth = 0) const {
    if (depth > 32) return err(n, field, "is nested more than 32 levels deep");
    switch (n.Type()) {
      case YAML::NodeType::Null: return nlohmann::json(nullptr);
      case YAML::NodeType::Sequence: {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& item : n) {
          auto v = to_json(item, field, depth + 1);
          if (!v) return v;
          a.push_back(std::move(*v));
        }
        return a;
      }
      case YAML::NodeType::Map: {
        auto es = entries(n, field, {});
        if (!es) return es.status();
        nlohmann::json o = nlohmann::json::object();
        for (const auto& [k, v] : *es) {
          auto j = to_json(v, field + "." + k, depth + 1);
          if (!j) return j;
          o[k] = std::move(*j);
        }
        return o;
      }
      case YAML::NodeType::Scalar: {
        const std::string& s = n.Scalar();
        if (n.Tag() == "!") return nlohmann::json(s);  // quoted: a string
        if (s == "true" || s == "false") return nlohmann::json(s == "true");
        if (s == "null" || s == "~") return nlohmann::json(nullptr);
        int64_t i = 0;
        if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i); ec == std::errc() && p == s.data() + s.size() && !s.empty())
          return nlohmann::json(i);
        char* end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end == s.c_str() + s.size()) return nlohmann::json(d);
        return nlohmann::json(s);
      }
      default: return err(n, field, "is not a value");
    }
  }
};

struct ParamDecl {
  std::string name;
  std::string type;
};

// Replaces each `{{ name }}` of a declared parameter by a reference to its environment
// variable (see the header); other text, including `{{` that is not a placeholder, stays.
Result<std::string> substitute(const Parser& p, const Node& at, const std::string& field, const std::string& command,
                               const std::vector<ParamDecl>& params) {
  std::string out;
  enum { kNone, kSingle, kDouble } quote = kNone;
  for (size_t i = 0; i < command.size();) {
    char c = command[i];
    if (quote != kSingle && c == '\\' && i + 1 < command.size()) {
      out.append(command, i, 2);
      i += 2;
      continue;
    }
    if (c == '\'' && quote != kDouble) quote = quote == kSingle ? kNone : kSingle;
    else if (c == '"' && quote != kSingle) quote = quote == kDouble ? kNone : kDouble;
    if (c == '{' && command.compare(i, 2, "{{") == 0) {
      size_t j = i + 2;
      while (j < command.size() && command[j] == ' ') ++j;
      size_t name_start = j;
      while (j < command.size() && (std::isalnum(static_cast<unsigned char>(command[j])) || command[j] == '_')) ++j;
      std::string name = command.substr(name_start, j - name_start);
      while (j < command.size() && command[j] == ' ') ++j;
      if (!name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) && command.compare(j, 2, "}}") == 0) {
        bool known = std::any_of(params.begin(), params.end(), [&](const ParamDecl& d) { return d.name == name; });
        if (!known) {
          std::string names;
          for (const auto& d : params) names += (names.empty() ? "" : ", ") + d.name;
          return p.err(at, field, "{{ " + name + " }} names no parameter of the flow (" +
                                      (names.empty() ? std::string("it has none") : "parameters: " + names) + ")");
        }
        if (quote == kSingle)
          return p.err(at, field, "{{ " + name + " }} is inside single quotes, where the shell does not expand it: "
                                  "write it outside quotes or inside double quotes");
        std::string ref = "${CULVERT_PARAM_" + name + "}";
        out += quote == kDouble ? ref : "\"" + ref + "\"";
        i = j + 2;
        continue;
      }
    }
    out += c;
    ++i;
  }
  return out;
}

struct TaskSpec {
  std::string name;
  Node node;
  std::string command;
  std::vector<std::pair<std::string, Node>> after;  // upstream names, with the node naming them
  Node after_node;
  std::optional<EnvMap> env;
  std::optional<int64_t> retries;
  std::optional<Millis> retry_delay, retry_max_delay, timeout, kill_grace;
  std::optional<double> retry_backoff, retry_jitter;
  std::optional<std::string> working_dir;
  std::optional<std::vector<std::string>> tags;
  std::optional<Trigger> trigger;
  std::optional<bool> reference;
};

Result<Trigger> trigger_of(const Parser& p, const Node& n, const std::string& field) {
  const std::pair<const char*, Trigger> names[] = {{"all_successful", Trigger::kAllSuccessful},
                                                   {"all_finished", Trigger::kAllFinished},
                                                   {"any_failed", Trigger::kAnyFailed},
                                                   {"all_failed", Trigger::kAllFailed},
                                                   {"any_successful", Trigger::kAnySuccessful}};
  if (n.IsScalar())
    for (const auto& [name, t] : names)
      if (n.Scalar() == name) return t;
  return p.err(n, field, "must be one of all_successful, all_finished, any_failed, all_failed, any_successful");
}

Result<TaskSpec> parse_task(const Parser& p, const std::string& name, const Node& n,
                            const std::vector<ParamDecl>& params) {
  const std::string field = "tasks." + name;
  TaskSpec t;
  t.name = name;
  t.node = n;
  if (n.IsScalar()) return p.err(n, field, "must be a mapping with a command, e.g. {command: \"./load.sh\"}");
  auto es = p.entries(n, field,
                      {"command", "after", "env", "retries", "retry_delay", "retry_backoff", "retry_max_delay",
                       "retry_jitter", "timeout", "kill_grace", "working_dir", "tags", "trigger", "reference"});
  if (!es) return es.status();
  bool has_command = false;
  for (const auto& [k, v] : *es) {
    const std::string f = field + "." + k;
    if (k == "command") {
      auto s = p.string(v, f);
      if (!s) return s.status();
      if (s->find_first_not_of(" \t\r\n") == std::string::npos) return p.err(v, f, "must not be empty");
      auto sub = substitute(p, v, f, *s, params);
      if (!sub) return sub.status();
      t.command = std::move(*sub);
      has_command = true;
    } else if (k == "after") {
      auto names = p.string_list(v, f, /*scalar_ok=*/true);
      if (!names) return names.status();
      t.after_node = v;
      size_t i = 0;
      for (auto& a : *names) t.after.emplace_back(std::move(a), v.IsSequence() ? v[i++] : v);
    } else if (k == "env") {
      auto e = p.env_map(v, f);
      if (!e) return e.status();
      for (const auto& [ek, ev] : *e)
        if (ev.find("{{") != std::string::npos && ev.find("}}") != std::string::npos)
          return p.err(v, f + "." + ek,
                       "env values are taken as written; parameters reach commands as $CULVERT_PARAM_<name> "
                       "(or write {{ name }} in the command)");
      t.env = std::move(*e);
    } else if (k == "retries") {
      auto r = p.integer(v, f, 0, 1000);
      if (!r) return r.status();
      t.retries = *r;
    } else if (k == "retry_delay" || k == "retry_max_delay" || k == "timeout" || k == "kill_grace") {
      auto d = p.duration(v, f, /*allow_zero=*/k != "timeout");
      if (!d) return d.status();
      (k == "retry_delay" ? t.retry_delay : k == "retry_max_delay" ? t.retry_max_delay : k == "timeout" ? t.timeout
                                                                                               : t.kill_grace) = *d;
    } else if (k == "retry_backoff") {
      auto d = p.number(v, f, 1, 100);
      if (!d) return d.status();
      t.retry_backoff = *d;
    } else if (k == "retry_jitter") {
      auto d = p.number(v, f, 0, 1);
      if (!d) return d.status();
      t.retry_jitter = *d;
    } else if (k == "working_dir") {
      auto s = p.line_string(v, f, 4096);
      if (!s) return s.status();
      t.working_dir = std::move(*s);
    } else if (k == "tags") {
      auto s = p.string_list(v, f, false, 128);
      if (!s) return s.status();
      t.tags = std::move(*s);
    } else if (k == "trigger") {
      auto tr = trigger_of(p, v, f);
      if (!tr) return tr.status();
      t.trigger = *tr;
    } else if (k == "reference") {
      auto b = p.boolean(v, f);
      if (!b) return b.status();
      t.reference = *b;
    }
  }
  if (!has_command) return p.err(n, field, "needs a command (the shell command the task runs)");
  return t;
}

Result<std::vector<ParamDecl>> parse_parameters(const Parser& p, const Node& n, Flow& flow) {
  auto es = p.entries(n, "parameters", {}, kMaxParameters);
  if (!es) return es.status();
  std::vector<ParamDecl> decls;
  for (const auto& [name, spec] : *es) {
    const std::string field = "parameters." + name;
    if (!Parser::is_identifier(name))
      return p.err(spec, field, "a parameter name is 1-64 of A-Z a-z 0-9 _, not starting with a digit");
    if (spec.IsScalar() || spec.IsNull())
      return p.err(spec, field, "must be a mapping such as {type: string, required: true} or {type: int, default: 10}");
    auto ps = p.entries(spec, field, {"type", "required", "default", "description"});
    if (!ps) return ps.status();
    std::string type = "string";
    std::optional<Node> dflt;
    std::optional<bool> required;
    for (const auto& [k, v] : *ps) {
      if (k == "type") {
        if (!v.IsScalar() || (v.Scalar() != "string" && v.Scalar() != "int" && v.Scalar() != "float" &&
                              v.Scalar() != "bool"))
          return p.err(v, field + ".type", "must be string, int, float or bool");
        type = v.Scalar();
      } else if (k == "required") {
        auto b = p.boolean(v, field + ".required");
        if (!b) return b.status();
        required = *b;
      } else if (k == "default") {
        dflt = v;
      } else if (k == "description") {
        auto s = p.string(v, field + ".description", 4096);
        if (!s) return s.status();
      }
    }
    if (dflt && required.value_or(false))
      return p.err(*dflt, field + ".default", "a required parameter has no default (remove one of the two)");
    if (!dflt && required && !*required)
      return p.err(spec, field, "an optional parameter (required: false) needs a default");
    const std::string df = field + ".default";
    if (!dflt) {
      if (type == "string") flow.parameter<std::string>(name);
      else if (type == "int") flow.parameter<int64_t>(name);
      else if (type == "float") flow.parameter<double>(name);
      else flow.parameter<bool>(name);
    } else if (type == "string") {
      auto s = p.string(*dflt, df);
      if (!s) return s.status();
      flow.parameter<std::string>(name, *s);
    } else if (type == "int") {
      auto i = p.integer(*dflt, df, INT64_MIN, INT64_MAX);
      if (!i) return i.status();
      flow.parameter<int64_t>(name, *i);
    } else if (type == "float") {
      auto d = p.number(*dflt, df, -1e308, 1e308);
      if (!d) return d.status();
      flow.parameter<double>(name, *d);
    } else {
      auto b = p.boolean(*dflt, df);
      if (!b) return b.status();
      flow.parameter<bool>(name, *b);
    }
    decls.push_back({name, type});
  }
  return decls;
}

Result<RunConfig> parse_run_config(const Parser& p, const Node& n) {
  const std::string field = "run_config";
  if (!n.IsMap()) return p.err(n, field, std::string("must be a mapping such as {type: local}, not ") + Parser::kind_of(n));
  const Node type_node = n["type"];
  if (!type_node) return p.err(n, field + ".type", "is required: local, docker, ecs or slurm");
  if (!type_node.IsScalar()) return p.err(type_node, field + ".type", "must be local, docker, ecs or slurm");
  const std::string type = type_node.Scalar();
  std::vector<std::string> allowed;
  if (type == "local") allowed = {"type", "labels", "env", "working_dir"};
  else if (type == "docker") allowed = {"type", "labels", "env", "image", "network_mode", "volumes", "cpu", "memory"};
  else if (type == "ecs")
    allowed = {"type", "labels", "env", "image", "cpu", "memory", "task_role_arn", "execution_role_arn", "cluster",
               "subnets", "security_groups", "assign_public_ip", "task_definition", "run_task_kwargs"};
  else if (type == "slurm")
    allowed = {"type", "labels", "env", "partition", "cpus", "memory", "time_limit", "extra_options"};
  else
    return p.err(type_node, field + ".type", "must be local, docker, ecs or slurm, not '" + type.substr(0, 64) + "'");
  auto es = p.entries(n, field, allowed);
  if (!es) return es.status();
  std::vector<std::string> labels;
  EnvMap env;
  std::map<std::string, std::string> strings;  // single-line string fields by key
  std::map<std::string, std::vector<std::string>> lists;
  std::optional<bool> public_ip;
  int64_t cpus = 0;
  for (const auto& [k, v] : *es) {
    const std::string f = field + "." + k;
    if (k == "type") continue;
    if (k == "labels" || k == "volumes" || k == "subnets" || k == "security_groups" || k == "extra_options") {
      auto l = p.string_list(v, f);
      if (!l) return l.status();
      (k == "labels" ? labels : lists[k]) = std::move(*l);
    } else if (k == "env") {
      auto e = p.env_map(v, f);
      if (!e) return e.status();
      env = std::move(*e);
    } else if (k == "assign_public_ip") {
      auto b = p.boolean(v, f);
      if (!b) return b.status();
      public_ip = *b;
    } else if (k == "cpus") {
      auto i = p.integer(v, f, 0, 100000);
      if (!i) return i.status();
      cpus = *i;
    } else if (k == "task_definition" || k == "run_task_kwargs") {
      if (v.IsScalar()) {
        auto s = p.string(v, f);
        if (!s) return s.status();
        strings[k] = *s;
      } else {
        auto j = p.to_json(v, f);
        if (!j) return j.status();
        if (!j->is_object()) return p.err(v, f, "must be a mapping (or its JSON text)");
        strings[k] = j->dump();
      }
    } else {
      auto s = p.line_string(v, f, 2048);
      if (!s) return s.status();
      strings[k] = std::move(*s);
    }
  }
  auto str = [&](const char* k) { return strings.count(k) ? strings[k] : std::string(); };
  if (type == "local") return RunConfig(LocalRun{.env = env, .working_dir = str("working_dir"), .labels = labels});
  if (type == "docker") {
    if (str("image").empty()) return p.err(n, field + ".image", "is required for a docker run config");
    return RunConfig(DockerRun{.image = str("image"), .env = env, .network_mode = str("network_mode"),
                               .volumes = lists["volumes"], .cpu = str("cpu"), .memory = str("memory"),
                               .labels = labels});
  }
  if (type == "ecs") {
    if (str("image").empty() && str("task_definition").empty())
      return p.err(n, field + ".image", "is required for an ecs run config (or a task_definition)");
    return RunConfig(EcsRun{.image = str("image"), .env = env, .cpu = str("cpu"), .memory = str("memory"),
                            .task_role_arn = str("task_role_arn"), .execution_role_arn = str("execution_role_arn"),
                            .cluster = str("cluster"), .subnets = lists["subnets"],
                            .security_groups = lists["security_groups"], .assign_public_ip = public_ip,
                            .task_definition = str("task_definition"), .run_task_kwargs = str("run_task_kwargs"),
                            .labels = labels});
  }
  return RunConfig(SlurmRun{.partition = str("partition"), .cpus = static_cast<int>(cpus), .memory = str("memory"),
                            .time_limit = str("time_limit"), .extra_options = lists["extra_options"], .env = env,
                            .labels = labels});
}

Result<ScheduleSpec> parse_schedule(const Parser& p, const Node& n) {
  const std::string field = "schedule";
  auto es = p.entries(n, field, {"cron", "timezone", "interval", "anchor", "parameters", "catchup", "active"});
  if (!es) return es.status();
  std::optional<std::string> cron, timezone, anchor, catchup;
  std::optional<Millis> interval;
  std::map<std::string, std::string> params;
  bool active = true;
  Node anchor_node, tz_node;
  for (const auto& [k, v] : *es) {
    const std::string f = field + "." + k;
    if (k == "cron" || k == "timezone" || k == "anchor" || k == "catchup") {
      auto s = p.line_string(v, f, 256);
      if (!s) return s.status();
      if (k == "catchup" && *s != "skip" && *s != "latest" && *s != "all")
        return p.err(v, f, "must be skip, latest or all");
      (k == "cron" ? cron : k == "timezone" ? timezone : k == "anchor" ? anchor : catchup) = *s;
      if (k == "anchor") anchor_node = v;
      if (k == "timezone") tz_node = v;
    } else if (k == "interval") {
      auto d = p.duration(v, f, /*allow_zero=*/false);
      if (!d) return d.status();
      if (*d < std::chrono::seconds(1)) return p.err(v, f, "must be at least 1s");
      interval = *d;
    } else if (k == "parameters") {
      auto ps = p.entries(v, f, {}, kMaxParameters);
      if (!ps) return ps.status();
      for (const auto& [pk, pv] : *ps) {
        auto s = p.string(pv, f + "." + pk);
        if (!s) return s.status();
        params[pk] = *s;
      }
    } else if (k == "active") {
      auto b = p.boolean(v, f);
      if (!b) return b.status();
      active = *b;
    }
  }
  if (cron && interval) return p.err(n, field, "has both cron and interval: give one");
  if (cron) {
    if (anchor) return p.err(anchor_node, field + ".anchor", "belongs to an interval schedule, not a cron one");
    Cron c(*cron, timezone.value_or("UTC"));
    c.parameters = params;
    c.catchup = catchup.value_or("skip");
    c.active = active;
    return ScheduleSpec(c);
  }
  if (interval) {
    if (timezone) return p.err(tz_node, field + ".timezone", "belongs to a cron schedule, not an interval one");
    Interval iv(std::chrono::duration_cast<std::chrono::seconds>(*interval));
    if (anchor) {
      auto t = parse_rfc3339(*anchor);
      if (!t) return p.err(anchor_node, field + ".anchor", "must be an RFC 3339 time such as 2026-01-01T00:00:00Z");
      iv.anchor = std::chrono::time_point_cast<std::chrono::system_clock::duration>(*t);
    }
    iv.parameters = params;
    iv.catchup = catchup.value_or("skip");
    iv.active = active;
    return ScheduleSpec(iv);
  }
  return p.err(n, field, "needs cron (e.g. cron: \"0 2 * * *\") or interval (e.g. interval: 1h)");
}

// The first cycle of `after` edges, as the names along it; empty when there is none.
std::vector<std::string> find_cycle(const std::vector<TaskSpec>& tasks) {
  std::map<std::string, const TaskSpec*> by_name;
  for (const auto& t : tasks) by_name[t.name] = &t;
  std::map<std::string, int> mark;  // 0 new, 1 on the path, 2 done
  std::vector<std::string> path, cycle;
  std::function<bool(const std::string&)> visit = [&](const std::string& n) {
    mark[n] = 1;
    path.push_back(n);
    for (const auto& [up, node] : by_name[n]->after) {
      if (mark[up] == 1) {
        auto from = std::find(path.begin(), path.end(), up);
        cycle.assign(from, path.end());
        cycle.push_back(up);
        return true;
      }
      if (mark[up] == 0 && visit(up)) return true;
    }
    path.pop_back();
    mark[n] = 2;
    return false;
  };
  for (const auto& t : tasks)
    if (mark[t.name] == 0 && visit(t.name)) return cycle;
  return {};
}

Result<Flow> parse_document(const Parser& p, const Node& root) {
  if (root.IsNull()) return p.err_line(0, "the file", "is empty: a YAML flow file needs at least name and tasks");
  auto top = p.entries(root, "",
                       {"name", "description", "parameters", "run_config", "storage", "schedule", "max_run_retries",
                        "concurrency_limits", "tasks"});
  if (!top) return top.status();
  std::map<std::string, Node> f;
  for (const auto& [k, v] : *top) f.emplace(k, v);
  if (!f.count("name")) return p.err(root, "name", "is required (the flow's name)");
  auto name = p.line_string(f["name"], "name", 128);
  if (!name) return name.status();
  if (!Parser::is_name(*name))
    return p.err(f["name"], "name", "a flow name is 1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit");
  Flow flow(*name);
  if (f.count("description")) {
    auto d = p.string(f["description"], "description", 10000);
    if (!d) return d.status();
    flow.description(*d);
  }
  std::vector<ParamDecl> params;
  if (f.count("parameters") && !f["parameters"].IsNull()) {
    auto ps = parse_parameters(p, f["parameters"], flow);
    if (!ps) return ps.status();
    params = std::move(*ps);
  }
  if (f.count("run_config")) {
    auto rc = parse_run_config(p, f["run_config"]);
    if (!rc) return rc.status();
    flow.run_config(std::move(*rc));
  }
  if (f.count("storage")) {
    auto s = p.line_string(f["storage"], "storage", 2048);
    if (!s) return s.status();
    if (!s->starts_with("file://") && !s->starts_with("s3://"))
      return p.err(f["storage"], "storage", "must be file:///DIR or s3://BUCKET/PREFIX");
    flow.storage(*s);
  }
  if (f.count("schedule") && !f["schedule"].IsNull()) {
    auto s = parse_schedule(p, f["schedule"]);
    if (!s) return s.status();
    flow.schedule(std::move(*s));
  }
  if (f.count("max_run_retries")) {
    auto r = p.integer(f["max_run_retries"], "max_run_retries", 0, 1000);
    if (!r) return r.status();
    flow.max_run_retries(static_cast<int>(*r));
  }
  if (f.count("concurrency_limits")) {
    auto ls = p.entries(f["concurrency_limits"], "concurrency_limits", {});
    if (!ls) return ls.status();
    for (const auto& [tag, v] : *ls) {
      auto n = p.integer(v, "concurrency_limits." + tag, 1, 100000);
      if (!n) return n.status();
      flow.concurrency_limit(tag, static_cast<int>(*n));
    }
  }
  if (!f.count("tasks")) return p.err(root, "tasks", "is required (a mapping of task names to their commands)");
  auto ts = p.entries(f["tasks"], "tasks", {}, kMaxTasks);
  if (!ts) return ts.status();
  if (ts->empty()) return p.err(f["tasks"], "tasks", "needs at least one task");
  std::vector<TaskSpec> specs;
  for (const auto& [tname, node] : *ts) {
    if (!Parser::is_name(tname))
      return p.err(node, "tasks." + tname.substr(0, 64),
                   "a task name is 1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit");
    auto t = parse_task(p, tname, node, params);
    if (!t) return t.status();
    specs.push_back(std::move(*t));
  }
  std::set<std::string> names;
  for (const auto& t : specs) names.insert(t.name);
  for (const auto& t : specs)
    for (const auto& [up, node] : t.after) {
      if (up == t.name) return p.err(node, "tasks." + t.name + ".after", "a task cannot run after itself");
      if (!names.count(up)) return p.err(node, "tasks." + t.name + ".after", "names no task '" + up + "'");
    }
  if (auto cycle = find_cycle(specs); !cycle.empty()) {
    std::string text;
    for (const auto& c : cycle) text += (text.empty() ? "" : " -> ") + c;
    const TaskSpec* first = nullptr;
    for (const auto& t : specs)
      if (t.name == cycle.front()) first = &t;
    return p.err(first->after_node, "tasks." + first->name + ".after",
                 "makes a cycle (" + text + "): each task runs after the one it names");
  }
  std::map<std::string, ShellTask> handles;
  for (const auto& t : specs) {
    ShellTask h = flow.shell(t.name, t.command);
    if (t.env) h.env(*t.env);
    if (t.working_dir) h.working_dir(*t.working_dir);
    if (t.retries || t.retry_delay) h.retries(static_cast<int>(t.retries.value_or(0)), t.retry_delay.value_or(Millis(0)));
    if (t.retry_backoff || t.retry_max_delay) h.retry_backoff(t.retry_backoff.value_or(1.0), t.retry_max_delay.value_or(Millis(0)));
    if (t.retry_jitter) h.retry_jitter(*t.retry_jitter);
    if (t.timeout) h.timeout(*t.timeout);
    if (t.kill_grace) h.kill_grace(*t.kill_grace);
    if (t.tags) h.tags(*t.tags);
    if (t.trigger) h.trigger(*t.trigger);
    if (t.reference) h.reference(*t.reference);
    handles.emplace(t.name, h);
  }
  for (const auto& t : specs) {
    ShellTask& h = handles.at(t.name);
    for (const auto& [up, node] : t.after) h.after(handles.at(up));
  }
  if (Status v = flow.validate(); !v) return invalid_argument(p.file + ": " + v.message());
  return flow;
}

}  // namespace

bool is_yaml_flow_path(std::string_view path) { return path.ends_with(".yaml") || path.ends_with(".yml"); }

Result<Flow> parse_yaml_flow(std::string_view text, const std::string& file) {
  Parser p{file};
  if (text.size() > kMaxFileBytes)
    return invalid_argument(file + ": is larger than " + std::to_string(kMaxFileBytes) +
                            " bytes; a YAML flow file is at most that long");
  Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return invalid_argument(file + (e.mark.is_null() ? std::string() : ":" + std::to_string(e.mark.line + 1)) +
                            ": not valid YAML: " + e.msg);
  } catch (const std::exception& e) {
    return invalid_argument(file + ": not valid YAML: " + e.what());
  }
  // yaml-cpp throws for node accesses it considers invalid; every access above checks
  // the node's type first, and whatever slips through is still an error about the file.
  try {
    return parse_document(p, root);
  } catch (const YAML::Exception& e) {
    return invalid_argument(file + (e.mark.is_null() ? std::string() : ":" + std::to_string(e.mark.line + 1)) +
                            ": " + e.msg);
  }
}

Result<Flow> load_yaml_flow(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument("cannot read the YAML flow file '" + path + "'");
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (in.bad()) return invalid_argument("cannot read the YAML flow file '" + path + "'");
  return parse_yaml_flow(text, path);
}

}  // namespace culvert::yamlflow
