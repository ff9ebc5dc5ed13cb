#include "cli/client_cmds.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <culvert/clock.hpp>
#include <culvert/state.hpp>

#include "client/api.hpp"
#include "core/labels.hpp"
#include "core/schedule.hpp"
#include "core/timefmt.hpp"

namespace culvert::cli {

namespace {

using json = nlohmann::json;
using client::ApiClient;

constexpr int kOk = 0;
constexpr int kFailure = 1;
constexpr int kUsage = 2;

// ---- small helpers over the server's JSON (tolerant of field-name variants) ----

bool looks_like_id(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::string as_text(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += ",";
      out += as_text(e);
    }
    return out;
  }
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump();
}

// The first of `keys` present in object `j` (null when none).
const json& pick(const json& j, std::initializer_list<const char*> keys) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it != j.end() && !it->is_null()) return *it;
  }
  return kNull;
}

std::string field(const json& j, std::initializer_list<const char*> keys) { return as_text(pick(j, keys)); }

// The list in a list answer: the answer itself when it is an array, else its first
// array member among `keys` (then "items", "data").
json items_of(const json& j, std::initializer_list<const char*> keys) {
  if (j.is_array()) return j;
  if (j.is_object()) {
    for (const char* k : keys)
      if (auto it = j.find(k); it != j.end() && it->is_array()) return *it;
    for (const char* k : {"items", "data", "results"})
      if (auto it = j.find(k); it != j.end() && it->is_array()) return *it;
  }
  return json::array();
}

// A single object answer possibly wrapped as {"run": {...}} / {"flow": {...}}.
json unwrap(const json& j, const char* key) {
  if (j.is_object()) {
    auto it = j.find(key);
    if (it != j.end() && it->is_object()) return *it;
  }
  return j;
}

std::vector<std::string> string_list(const json& v) {
  std::vector<std::string> out;
  if (v.is_array())
    for (const auto& e : v)
      if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < header.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      s += cell;
      if (i + 1 < header.size()) s += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

bool agent_healthy(const json& a) {
  const json& h = pick(a, {"healthy"});
  if (h.is_boolean()) return h.get<bool>();
  std::string s = field(a, {"health", "status"});
  if (s.empty()) return true;  // the server did not say: assume it is alive
  return s == "healthy" || s == "ok" || s == "online" || s == "alive";
}

// ---- per-command plumbing ----

struct Cmd {
  CliContext* ctx;
  std::string output = "table";

  std::ostream& out() const { return *ctx->out; }
  std::ostream& err() const { return *ctx->err; }
  bool json_out() const { return output == "json"; }

  int fail(const Status& s) const {
    err() << "error: " << s.message() << "\n";
    return kFailure;
  }
  int usage(const std::string& m) const {
    err() << "error: " << m << "\n";
    return kUsage;
  }
  void emit_json(const json& j) const { out() << j.dump(2) << "\n"; }

  Result<client::ProfileConfig> config() const {
    auto path = client::default_config_path(ctx->env);
    if (!path) return client::ProfileConfig{};  // no HOME: flags and env only
    return client::load_profile_config(*path);
  }
  Result<client::Settings> settings() const {
    auto c = config();
    if (!c) return c.status();
    return client::resolve_settings(ctx->flags, ctx->env, *c);
  }
  Result<std::unique_ptr<ApiClient>> api() const {
    auto s = settings();
    if (!s) return s.status();
    return std::make_unique<ApiClient>(client::ClientOptions{.api_url = s->api_url, .api_token = s->api_token});
  }
  // One API call with the settings in effect. On failure: the error printed, the exit
  // code set, and nullopt.
  std::optional<json> request(const std::function<Result<json>(ApiClient&)>& call) const {
    auto a = api();
    if (!a) {
      ctx->exit_code = fail(a.status());
      return std::nullopt;
    }
    auto r = call(**a);
    if (!r) {
      ctx->exit_code = fail(r.status());
      return std::nullopt;
    }
    return std::move(*r);
  }
  // A listing: the answer as one JSON document, or a table with a row per item (`row`
  // returns no cells to leave an item out).
  void emit_listing(const json& answer, std::initializer_list<const char*> items_key,
                    const std::vector<std::string>& header,
                    const std::function<std::vector<std::string>(const json&)>& row) const {
    if (json_out()) {
      emit_json(answer);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& item : items_of(answer, items_key))
        if (auto cells = row(item); !cells.empty()) rows.push_back(std::move(cells));
      print_table(out(), header, rows);
    }
    ctx->exit_code = kOk;
  }
};

void add_output_option(CLI::App* c, Cmd& cmd) {
  c->add_option("--output,-o", cmd.output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}));
}

CLI::App* subcommand(CLI::App& parent, const std::string& name, const std::string& desc) {
  for (auto* s : parent.get_subcommands([](CLI::App*) { return true; }))
    if (s->get_name() == name) return s;
  auto* s = parent.add_subcommand(name, desc);
  s->fallthrough();
  return s;
}

int64_t version_of(const json& flow) {
  const json& v = pick(flow, {"version"});
  return v.is_number_integer() ? v.get<int64_t>() : -1;
}

// Flow reference: a flow id, or a name (optionally within --project): latest version.
Result<json> resolve_flow(ApiClient& api, const std::string& ref, const std::string& project) {
  if (looks_like_id(ref)) {
    auto r = api.get_flow(ref);
    if (!r) return r.status();
    return unwrap(*r, "flow");
  }
  auto r = api.list_flows(project.empty() ? std::nullopt : std::optional<std::string_view>(project));
  if (!r) return r.status();
  std::optional<json> best;
  std::vector<std::string> projects;
  for (const auto& f : items_of(*r, {"flows"})) {
    if (field(f, {"name"}) != ref) continue;
    const json& arch = pick(f, {"archived"});
    if (arch.is_boolean() && arch.get<bool>()) continue;
    std::string p = field(f, {"project", "project_name"});
    if (std::find(projects.begin(), projects.end(), p) == projects.end()) projects.push_back(p);
    if (!best || version_of(f) > version_of(*best)) best = f;
  }
  if (!best) return not_found("flow '" + ref + "' not found" + (project.empty() ? "" : " in project '" + project + "'"));
  if (projects.size() > 1) {
    std::string list;
    for (const auto& p : projects) list += (list.empty() ? "" : ", ") + p;
    return invalid_argument("flow name '" + ref + "' exists in projects " + list + "; pass --project");
  }
  return *best;
}

std::optional<std::string> flow_id_of(const json& flow) {
  std::string id = field(flow, {"id", "flow_id"});
  if (id.empty()) return std::nullopt;
  return id;
}

// ---- config ----

void add_config(CLI::App& app, CliContext& ctx) {
  auto* config = subcommand(app, "config", "Show or change the client settings (~/.culvert/config.toml)");
  config->require_subcommand(1);

  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto* set = config->add_subcommand("set", "Set a setting of a profile");
  set->fallthrough();
  set->require_subcommand(1);
  auto url = std::make_shared<std::string>();
  auto* set_url = set->add_subcommand("api-url", "Set the server URL of the profile (--profile, else the active one)");
  set_url->fallthrough();
  set_url->add_option("URL", *url, "e.g. http://127.0.0.1:4200")->required();
  add_output_option(set_url, *cmd);
  set_url->callback([cmd, url] {
    auto& c = *cmd;
    if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0) {
      c.ctx->exit_code = c.usage("api-url '" + *url + "' must start with http:// or https://");
      return;
    }
    auto path = client::default_config_path(c.ctx->env);
    if (!path) { c.ctx->exit_code = c.fail(path.status()); return; }
    auto s = c.settings();
    if (!s) { c.ctx->exit_code = c.fail(s.status()); return; }
    std::string u = *url;
    while (u.size() > 8 && u.back() == '/') u.pop_back();
    if (auto st = client::set_profile_value(*path, s->profile, "api_url", u); !st) {
      c.ctx->exit_code = c.fail(st);
      return;
    }
    if (c.json_out())
      c.emit_json({{"profile", s->profile}, {"api_url", u}, {"config_file", path->string()}});
    else
      c.out() << "api_url of profile '" << s->profile << "' set to " << u << " (" << path->string() << ")\n";
    c.ctx->exit_code = kOk;
  });

  auto show_cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto* show = config->add_subcommand("show", "Show the settings in effect and where each comes from");
  show->fallthrough();
  add_output_option(show, *show_cmd);
  show->callback([show_cmd] {
    auto& c = *show_cmd;
    auto s = c.settings();
    if (!s) { c.ctx->exit_code = c.fail(s.status()); return; }
    auto path = client::default_config_path(c.ctx->env);
    std::string file = path ? path->string() : "";
    std::string masked = s->api_token.empty() ? "(none)" : s->api_token.substr(0, std::min<size_t>(8, s->api_token.size())) + "...";
    if (c.json_out()) {
      c.emit_json({{"profile", s->profile}, {"api_url", s->api_url}, {"api_url_source", s->api_url_source},
                   {"api_token_set", !s->api_token.empty()}, {"api_token_source", s->api_token_source},
                   {"config_file", file}});
    } else {
      print_table(c.out(), {"SETTING", "VALUE", "FROM"},
                  {{"profile", s->profile, ""},
                   {"api_url", s->api_url, s->api_url_source},
                   {"api_token", masked, s->api_token_source},
                   {"config_file", file, ""}});
    }
    c.ctx->exit_code = kOk;
  });
}

// ---- auth ----

void add_auth(CLI::App& app, CliContext& ctx) {
  auto* auth = subcommand(app, "auth", "Log in and manage API tokens");
  auth->require_subcommand(1);

  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto token = std::make_shared<std::string>();
    auto* login = auth->add_subcommand("login", "Store an API token in the profile (--profile, else the active one)");
    login->fallthrough();
    login->add_option("--token", *token, "The API token")->required();
    add_output_option(login, *cmd);
    login->callback([cmd, token] {
      auto& c = *cmd;
      if (token->empty()) { c.ctx->exit_code = c.usage("--token is empty"); return; }
      auto path = client::default_config_path(c.ctx->env);
      if (!path) { c.ctx->exit_code = c.fail(path.status()); return; }
      auto s = c.settings();
      if (!s) { c.ctx->exit_code = c.fail(s.status()); return; }
      if (auto st = client::set_profile_value(*path, s->profile, "api_token", *token); !st) {
        c.ctx->exit_code = c.fail(st);
        return;
      }
      if (c.json_out())
        c.emit_json({{"profile", s->profile}, {"config_file", path->string()}});
      else
        c.out() << "token stored in profile '" << s->profile << "' (" << path->string() << ")\n";
      c.ctx->exit_code = kOk;
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    struct Args { std::string name, scope, expires; };
    auto a = std::make_shared<Args>();
    auto* create = auth->add_subcommand("create-token", "Create an API token (shown once)");
    create->fallthrough();
    create->add_option("--name", a->name, "Token name")->required();
    create->add_option("--scope", a->scope, "admin, user or runner")->required()
        ->check(CLI::IsMember({"admin", "user", "runner"}));
    create->add_option("--expires", a->expires, "Lifetime, e.g. 30d, 12h (default: never)");
    add_output_option(create, *cmd);
    create->callback([cmd, a] {
      auto& c = *cmd;
      if (!a->expires.empty() && !parse_duration(a->expires)) {
        c.ctx->exit_code = c.usage("--expires '" + a->expires + "' is not a duration (e.g. 30d, 12h, 90m)");
        return;
      }
      auto r = c.request([&](ApiClient& api) { return api.create_token(a->name, a->scope,
                                    a->expires.empty() ? std::nullopt : std::optional<std::string_view>(a->expires)); });
      if (!r) return;
      if (c.json_out()) {
        c.emit_json(*r);
      } else {
        c.out() << "Created token " << field(*r, {"id"}) << " (" << a->name << ", scope " << a->scope << "):\n"
                << field(*r, {"token"}) << "\nIt is shown only this once: store it now.\n";
      }
      c.ctx->exit_code = kOk;
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto* list = auth->add_subcommand("list-tokens", "List API tokens (never their secrets)");
    list->fallthrough();
    add_output_option(list, *cmd);
    list->callback([cmd] {
      auto& c = *cmd;
      auto r = c.request([](ApiClient& api) { return api.list_tokens(); });
      if (!r) return;
      c.emit_listing(*r, {"tokens"}, {"ID", "NAME", "SCOPE", "EXPIRES", "CREATED", "REVOKED"}, [](const json& t) {
        return std::vector<std::string>{field(t, {"id"}), field(t, {"name"}), field(t, {"scope"}),
                                        field(t, {"expires_at", "expires"}), field(t, {"created", "created_at"}),
                                        field(t, {"revoked"})};
      });
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto id = std::make_shared<std::string>();
    auto* revoke = auth->add_subcommand("revoke-token", "Revoke an API token");
    revoke->fallthrough();
    revoke->add_option("ID", *id, "Token id")->required();
    add_output_option(revoke, *cmd);
    revoke->callback([cmd, id] {
      auto& c = *cmd;
      auto r = c.request([&](ApiClient& api) { return api.revoke_token(*id); });
      if (!r) return;
      if (c.json_out()) c.emit_json({{"id", *id}, {"revoked", true}});
      else c.out() << "token " << *id << " revoked\n";
      c.ctx->exit_code = kOk;
    });
  }
}

// ---- project ----

void add_project(CLI::App& app, CliContext& ctx) {
  auto* project = subcommand(app, "project", "Create and list projects");
  project->require_subcommand(1);
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    struct Args { std::string name, description; bool skip = false; };
    auto a = std::make_shared<Args>();
    auto* create = project->add_subcommand("create", "Create a project");
    create->fallthrough();
    create->add_option("NAME", a->name, "Project name")->required();
    create->add_option("--description", a->description, "Description");
    create->add_flag("--skip-if-exists", a->skip, "Succeed when the project already exists");
    add_output_option(create, *cmd);
    create->callback([cmd, a] {
      auto& c = *cmd;
      auto api = c.api();
      if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
      auto r = (*api)->create_project(a->name, a->description);
      if (!r && r.status().code() == StatusCode::kConflict && a->skip) {
        json existing = {{"name", a->name}};
        if (auto l = (*api)->list_projects())
          for (const auto& p : items_of(*l, {"projects"}))
            if (field(p, {"name"}) == a->name) existing = p;
        existing["created"] = false;
        if (c.json_out()) c.emit_json(existing);
        else c.out() << "project '" << a->name << "' already exists\n";
        c.ctx->exit_code = kOk;
        return;
      }
      if (!r) { c.ctx->exit_code = c.fail(r.status()); return; }
      json p = unwrap(*r, "project");
      if (c.json_out()) c.emit_json(p);
      else c.out() << "project '" << a->name << "' created (" << field(p, {"id"}) << ")\n";
      c.ctx->exit_code = kOk;
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto* list = project->add_subcommand("list", "List projects");
    list->fallthrough();
    add_output_option(list, *cmd);
    list->callback([cmd] {
      auto& c = *cmd;
      auto r = c.request([](ApiClient& api) { return api.list_projects(); });
      if (!r) return;
      c.emit_listing(*r, {"projects"}, {"NAME", "DESCRIPTION", "ID", "CREATED"}, [](const json& p) {
        return std::vector<std::string>{field(p, {"name"}), field(p, {"description"}), field(p, {"id"}),
                                        field(p, {"created", "created_at"})};
      });
    });
  }
}

// ---- flow ----

std::string schedule_summary(const json& flow) {
  const json& s = pick(flow, {"schedule"});
  if (!s.is_object()) return "";
  std::string text = s.contains("cron") ? field(s, {"cron"}) + " " + field(s, {"timezone"})
                                        : "every " + field(s, {"interval_seconds"}) + "s";
  const json& active = pick(flow, {"schedule_active"});
  bool on = active.is_boolean() ? active.get<bool>() : (s.value("active", true));
  return text + (on ? "" : " (paused)");
}

void add_flow(CLI::App& app, CliContext& ctx) {
  auto* flow = subcommand(app, "flow", "List, show and schedule flows");
  flow->require_subcommand(1);
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto project = std::make_shared<std::string>();
    auto* list = flow->add_subcommand("list", "List flows (latest versions)");
    list->fallthrough();
    list->add_option("--project", *project, "Only this project");
    add_output_option(list, *cmd);
    list->callback([cmd, project] {
      auto& c = *cmd;
      auto r = c.request([&](ApiClient& api) {
        return api.list_flows(project->empty() ? std::nullopt : std::optional<std::string_view>(*project));
      });
      if (!r) return;
      c.emit_listing(*r, {"flows"}, {"NAME", "VERSION", "PROJECT", "SCHEDULE", "LABELS", "ID"}, [](const json& f) {
        const json& arch = pick(f, {"archived"});
        if (arch.is_boolean() && arch.get<bool>()) return std::vector<std::string>{};
        return std::vector<std::string>{field(f, {"name"}), field(f, {"version"}), field(f, {"project", "project_name"}),
                                        schedule_summary(f), field(f, {"labels"}), field(f, {"id"})};
      });
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    struct Args { std::string flow, project; };
    auto a = std::make_shared<Args>();
    auto* show = flow->add_subcommand("show", "Show a flow (id, or name of its latest version)");
    show->fallthrough();
    show->add_option("FLOW", a->flow, "Flow id or name")->required();
    show->add_option("--project", a->project, "Project of the flow name");
    add_output_option(show, *cmd);
    show->callback([cmd, a] {
      auto& c = *cmd;
      auto api = c.api();
      if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
      auto f = resolve_flow(**api, a->flow, a->project);
      if (!f) { c.ctx->exit_code = c.fail(f.status()); return; }
      json doc = *f;
      std::vector<std::string> next;
      const json& sj = pick(doc, {"schedule"});
      if (sj.is_object()) {
        if (auto s = Schedule::from_json(sj)) {
          SysTime t = c.ctx->clock->now();
          for (int i = 0; i < 5; ++i) {
            auto n = s->next_after(t);
            if (!n) break;
            next.push_back(format_rfc3339(*n));
            t = *n;
          }
        }
      }
      if (c.json_out()) {
        doc["next_fire_times"] = next;
        c.emit_json(doc);
      } else {
        auto& o = c.out();
        o << "flow:        " << field(doc, {"name"}) << " (version " << field(doc, {"version"}) << ")\n"
          << "id:          " << field(doc, {"id"}) << "\n"
          << "project:     " << field(doc, {"project", "project_name"}) << "\n"
          << "labels:      " << field(doc, {"labels"}) << "\n";
        const json& art = pick(doc, {"artifact"});
        std::string uri = art.is_object() ? field(art, {"uri"}) : field(doc, {"artifact_uri"});
        o << "artifact:    " << uri << "\n";
        o << "schedule:    " << (sj.is_object() ? schedule_summary(doc) : "none") << "\n";
        for (const auto& n : next) o << "  next:      " << n << "\n";
        const json& params = pick(doc, {"parameters"});
        if (params.is_array() && !params.empty()) {
          o << "parameters:\n";
          for (const auto& p : params)
            o << "  " << field(p, {"name"}) << " (" << field(p, {"type"}) << ")"
              << (p.contains("default") ? " = " + p["default"].dump() : std::string(" required")) << "\n";
        }
        const json& tasks = pick(doc, {"tasks"});
        if (tasks.is_array()) o << "tasks:       " << tasks.size() << "\n";
      }
      c.ctx->exit_code = kOk;
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    struct Args { std::string flow, project; bool active = false, paused = false; };
    auto a = std::make_shared<Args>();
    auto* set = flow->add_subcommand("set-schedule", "Resume (--active) or pause (--paused) a flow's schedule");
    set->fallthrough();
    set->add_option("FLOW", a->flow, "Flow id or name")->required();
    set->add_option("--project", a->project, "Project of the flow name");
    auto* act = set->add_flag("--active", a->active, "Resume the schedule");
    auto* pau = set->add_flag("--paused", a->paused, "Pause the schedule");
    act->excludes(pau);
    add_output_option(set, *cmd);
    set->callback([cmd, a] {
      auto& c = *cmd;
      if (!a->active && !a->paused) { c.ctx->exit_code = c.usage("give --active or --paused"); return; }
      auto api = c.api();
      if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
      auto f = resolve_flow(**api, a->flow, a->project);
      if (!f) { c.ctx->exit_code = c.fail(f.status()); return; }
      auto id = flow_id_of(*f);
      if (!id) { c.ctx->exit_code = c.fail(internal_error("the server's flow has no id")); return; }
      auto r = (*api)->set_schedule_active(*id, a->active);
      if (!r) { c.ctx->exit_code = c.fail(r.status()); return; }
      if (c.json_out()) c.emit_json(*r);
      else c.out() << "schedule of flow '" << field(*f, {"name"}) << "' " << (a->active ? "active" : "paused") << "\n";
      c.ctx->exit_code = kOk;
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    struct Args { std::string flow, project, from, to; };
    auto a = std::make_shared<Args>();
    auto* bf = flow->add_subcommand("backfill", "Create the scheduled runs of a past window [from, to)");
    bf->fallthrough();
    bf->add_option("FLOW", a->flow, "Flow id or name")->required();
    bf->add_option("--project", a->project, "Project of the flow name");
    bf->add_option("--from", a->from, "Window start, RFC 3339 (e.g. 2026-03-01T00:00:00Z)")->required();
    bf->add_option("--to", a->to, "Window end (exclusive), RFC 3339")->required();
    add_output_option(bf, *cmd);
    bf->callback([cmd, a] {
      auto& c = *cmd;
      auto from = parse_rfc3339(a->from);
      if (!from) { c.ctx->exit_code = c.usage("--from '" + a->from + "' is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z)"); return; }
      auto to = parse_rfc3339(a->to);
      if (!to) { c.ctx->exit_code = c.usage("--to '" + a->to + "' is not an RFC 3339 time (e.g. 2026-03-02T00:00:00Z)"); return; }
      if (*from >= *to) { c.ctx->exit_code = c.usage("--from must be before --to"); return; }
      auto api = c.api();
      if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
      auto f = resolve_flow(**api, a->flow, a->project);
      if (!f) { c.ctx->exit_code = c.fail(f.status()); return; }
      auto id = flow_id_of(*f);
      if (!id) { c.ctx->exit_code = c.fail(internal_error("the server's flow has no id")); return; }
      // The runs of the window are created like the scheduler creates them: one per fire
      // time, keyed sched:<flow>:<time>, so a window that overlaps scheduled runs (or a
      // repeated backfill) never doubles a run.
      const json& sj = pick(*f, {"schedule"});
      if (!sj.is_object()) {
        c.ctx->exit_code = c.fail(invalid_argument("flow '" + field(*f, {"name"}) + "' has no schedule"));
        return;
      }
      auto sched = Schedule::from_json(sj);
      if (!sched) { c.ctx->exit_code = c.fail(sched.status()); return; }
      auto times = backfill_fire_times(*sched, *from, *to, c.ctx->clock->now());
      if (!times) { c.ctx->exit_code = c.usage(times.status().message()); return; }
      json params = json::parse(sched->parameters_json());
      json runs = json::array();
      for (SysTime t : *times) {
        json body = {{"flow_id", *id}, {"parameters", params},
                     {"idempotency_key", schedule_run_key(*id, t)},
                     {"scheduled_start_time", format_rfc3339(t)}};
        auto r = (*api)->create_flow_run(body);
        if (!r) {
          c.err() << "created " << runs.size() << " of " << times->size() << " runs\n";
          c.ctx->exit_code = c.fail(r.status());
          return;
        }
        runs.push_back(unwrap(*r, "run"));
      }
      if (c.json_out()) {
        c.emit_json({{"flow_id", *id}, {"from", format_rfc3339(*from)}, {"to", format_rfc3339(*to)}, {"runs", runs}});
      } else {
        c.out() << "backfill of flow '" << field(*f, {"name"}) << "' from " << format_rfc3339(*from) << " to "
                << format_rfc3339(*to) << ": " << runs.size() << " runs\n";
        for (const auto& run : runs)
          c.out() << "  " << field(run, {"id"}) << "  " << field(run, {"scheduled_start_time"}) << "  "
                  << field(run, {"state"}) << "\n";
      }
      c.ctx->exit_code = kOk;
    });
  }
}

// ---- run ----

void print_log_line(std::ostream& o, const json& l) {
  std::string task = field(l, {"task"});
  o << field(l, {"timestamp"}) << " " << field(l, {"level"}) << " "
    << (task.empty() ? "" : "[" + task + "] ") << field(l, {"message"}) << "\n";
}

// The cursor after a page of logs: the page's next cursor, else the last entry's id.
std::string next_log_cursor(const json& page, const json& logs, const std::string& current) {
  std::string c = field(page, {"next_cursor", "cursor", "next"});
  if (!c.empty()) return c;
  if (!logs.empty()) {
    std::string id = field(logs.back(), {"id"});
    if (!id.empty()) return id;
  }
  return current;
}

// Follows a run until it reaches a final state: prints state changes (to `events`) and
// logs. Returns the final run document.
Result<json> follow_run(ApiClient& api, CliContext& ctx, const std::string& run_id, std::ostream& events,
                        bool print_states) {
  std::string cursor = "0";
  std::string last_state;
  int64_t printed_version = 0;
  auto print_state = [&](const std::string& state, const std::string& msg) {
    events << "state: " << state << (msg.empty() ? "" : " (" + msg + ")") << "\n";
    last_state = state;
  };
  while (true) {
    auto run = api.get_flow_run(run_id);
    if (!run) return run.status();
    json r = unwrap(*run, "run");
    std::string state = field(r, {"state"});
    int64_t version = r.contains("version") && r["version"].is_number_integer() ? r["version"].get<int64_t>() : 0;
    if (print_states && (state != last_state || version > printed_version)) {
      // A run can pass through several states between two polls (Running is often
      // brief): the history names every one, in order.
      auto history = api.get_flow_run_history(run_id);
      bool printed = false;
      if (history) {
        for (const auto& e : items_of(*history, {"history"})) {
          int64_t v = e.contains("version") && e["version"].is_number_integer() ? e["version"].get<int64_t>() : 0;
          if (v <= printed_version) continue;
          print_state(field(e, {"state"}), field(e, {"message"}));
          printed_version = v;
          printed = true;
        }
      }
      if (!printed && state != last_state) print_state(state, field(r, {"state_message", "message"}));
      printed_version = std::max(printed_version, version);
    }
    auto st = parse_state(state);
    bool final_state = st && is_final(*st);
    auto page = api.get_logs(run_id, cursor, final_state ? Millis(0) : Millis(1000));
    if (!page) return page.status();
    json logs = items_of(*page, {"logs"});
    for (const auto& l : logs) print_log_line(events, l);
    cursor = next_log_cursor(*page, logs, cursor);
    if (final_state && logs.empty()) return r;
    if (logs.empty() && !final_state) ctx.clock->sleep_for(Millis(500));
  }
}

Result<json> parse_params(const std::vector<std::string>& params) {
  json out = json::object();
  for (const auto& p : params) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      return invalid_argument("--param '" + p + "' must be NAME=VALUE");
    std::string value = p.substr(eq + 1);
    json v = json::parse(value, nullptr, /*allow_exceptions=*/false);
    out[p.substr(0, eq)] = v.is_discarded() ? json(value) : v;  // JSON if it parses, else a string
  }
  return out;
}

void explain_waiting(const json& run, const json& agents, json& diag, std::ostream* o) {
  std::vector<std::string> labels = string_list(pick(run, {"labels"}));
  json rows = json::array();
  int healthy = 0;
  for (const auto& a : agents) {
    bool ok = agent_healthy(a);
    auto missing = missing_labels(string_list(pick(a, {"labels"})), labels);
    if (ok) ++healthy;
    rows.push_back({{"id", field(a, {"id"})}, {"name", field(a, {"name"})}, {"healthy", ok},
                    {"labels", string_list(pick(a, {"labels"}))}, {"missing_labels", missing},
                    {"can_take", ok && missing.empty()}});
  }
  diag["agents"] = rows;
  std::vector<std::string> reasons;
  if (agents.empty()) reasons.push_back("no agent is registered: start one with `culvert agent start`");
  else if (healthy == 0)
    reasons.push_back("no healthy agent: " + std::to_string(agents.size()) +
                      " registered, none has sent a heartbeat recently");
  else {
    int able = 0;
    for (const auto& r : rows) {
      if (!r["healthy"].get<bool>()) continue;
      auto miss = r["missing_labels"].get<std::vector<std::string>>();
      if (miss.empty()) {
        ++able;
        reasons.push_back("agent '" + r["name"].get<std::string>() + "' can take it");
      } else {
        std::string m;
        for (const auto& l : miss) m += (m.empty() ? "" : ", ") + l;
        reasons.push_back("agent '" + r["name"].get<std::string>() + "' lacks label" +
                          (miss.size() > 1 ? "s " : " ") + m);
      }
    }
    if (able == 0) reasons.insert(reasons.begin(), "no healthy agent has all of the run's labels");
  }
  diag["reasons"] = reasons;
  if (o != nullptr) {
    *o << "why it has not been taken:\n";
    for (const auto& r : reasons) *o << "  - " << r << "\n";
  }
}

void add_run(CLI::App& app, CliContext& ctx) {
  auto* run = subcommand(app, "run", "Create a flow run (run FLOW --project P), or inspect/cancel/retry one");
  struct Args {
    std::string flow, project, key;
    std::vector<std::string> params, labels;
    bool watch = false;
  };
  auto a = std::make_shared<Args>();
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  run->add_option("FLOW", a->flow, "Flow name (with --project) or flow id");
  run->add_option("--project", a->project, "Project of the flow");
  run->add_option("--param", a->params, "Parameter value NAME=VALUE (VALUE is JSON, else a string); repeatable");
  run->add_option("--label", a->labels, "Run label (replaces the flow's labels); repeatable");
  run->add_option("--idempotency-key", a->key, "A repeat with the same key returns the same run");
  run->add_flag("--watch", a->watch, "Print state changes and logs until the run finishes; exit 0 only on Success");
  add_output_option(run, *cmd);
  run->callback([cmd, a, run] {
    auto& c = *cmd;
    if (!run->get_subcommands().empty()) return;  // inspect / cancel / retry ran
    if (a->flow.empty()) { c.ctx->exit_code = c.usage("run: give FLOW (or one of inspect, cancel, retry)"); return; }
    auto params = parse_params(a->params);
    if (!params) { c.ctx->exit_code = c.usage(params.status().message()); return; }
    json body = {{"parameters", *params}};
    if (!a->project.empty()) {
      body["project"] = a->project;
      body["flow"] = a->flow;
    } else if (looks_like_id(a->flow)) {
      body["flow_id"] = a->flow;
    } else {
      c.ctx->exit_code = c.usage("--project is required with a flow name");
      return;
    }
    if (!a->labels.empty()) body["labels"] = a->labels;
    if (!a->key.empty()) body["idempotency_key"] = a->key;
    auto api = c.api();
    if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
    auto r = (*api)->create_flow_run(body);
    if (!r) { c.ctx->exit_code = c.fail(r.status()); return; }
    json created = unwrap(*r, "run");
    std::string id = field(created, {"id"});
    if (!a->watch) {
      if (c.json_out()) c.emit_json(created);
      else c.out() << "flow run " << id << " created (" << field(created, {"state"}) << ")\n";
      c.ctx->exit_code = kOk;
      return;
    }
    if (!c.json_out()) c.out() << "flow run " << id << " created\n";
    auto fin = follow_run(**api, *c.ctx, id, c.json_out() ? c.err() : c.out(), true);
    if (!fin) { c.ctx->exit_code = c.fail(fin.status()); return; }
    std::string state = field(*fin, {"state"});
    if (c.json_out()) c.emit_json(*fin);
    else c.out() << "flow run " << id << " finished: " << state << "\n";
    c.ctx->exit_code = state == "Success" ? kOk : kFailure;
  });

  {
    auto icmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto id = std::make_shared<std::string>();
    auto* inspect = run->add_subcommand("inspect", "Show a run, its task runs, and why it is waiting");
    inspect->fallthrough();
    inspect->add_option("RUN", *id, "Flow run id")->required();
    add_output_option(inspect, *icmd);
    inspect->callback([icmd, id] {
      auto& c = *icmd;
      auto api = c.api();
      if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
      auto r = (*api)->get_flow_run(*id);
      if (!r) { c.ctx->exit_code = c.fail(r.status()); return; }
      json run_doc = unwrap(*r, "run");
      json tasks = json::array();
      if (auto t = (*api)->list_task_runs(*id)) tasks = items_of(*t, {"task_runs"});
      // The task runs' history (every Retrying state), all pages.
      json history = json::array();
      for (std::string after = "0"; !after.empty();) {
        auto h = (*api)->list_task_run_history(*id, after);
        if (!h) break;
        for (const auto& e : items_of(*h, {"history"})) history.push_back(e);
        std::string next = field(*h, {"next_cursor"});
        after = next == after ? "" : next;
      }
      std::string state = field(run_doc, {"state"});
      json diag = json::object();
      bool waiting = state == "Scheduled" || state == "Pending";
      std::ostringstream human;
      if (waiting) {
        auto agents = (*api)->list_agents();
        if (!agents) { c.ctx->exit_code = c.fail(agents.status()); return; }
        SysTime now = c.ctx->clock->now();
        if (auto start = parse_rfc3339(field(run_doc, {"scheduled_start_time"})); start && *start > now && state == "Scheduled")
          diag["waiting_for_start_time"] = format_rfc3339(*start);
        explain_waiting(run_doc, items_of(*agents, {"agents"}), diag, c.json_out() ? nullptr : &human);
        if (diag.contains("waiting_for_start_time"))
          human << "  - its start time has not come yet: " << diag["waiting_for_start_time"].get<std::string>() << "\n";
      }
      if (c.json_out()) {
        json doc = run_doc;
        doc["task_runs"] = tasks;
        doc["task_run_history"] = history;
        if (waiting) doc["diagnosis"] = diag;
        c.emit_json(doc);
      } else {
        auto& o = c.out();
        std::string msg = field(run_doc, {"state_message", "message"});
        o << "flow run:    " << field(run_doc, {"id"}) << "\n"
          << "flow:        " << field(run_doc, {"flow_name", "flow"}) << " (version "
          << field(run_doc, {"flow_version"}) << ", " << field(run_doc, {"flow_id"}) << ")\n"
          << "state:       " << state << (msg.empty() ? "" : " (" + msg + ")") << "\n"
          << "labels:      " << field(run_doc, {"labels"}) << "\n"
          << "parameters:  " << pick(run_doc, {"parameters"}).dump() << "\n"
          << "scheduled:   " << field(run_doc, {"scheduled_start_time"}) << "\n"
          << "agent:       " << field(run_doc, {"agent_id", "agent"}) << "\n";
        if (!tasks.empty()) {
          std::vector<std::vector<std::string>> rows;
          for (const auto& t : tasks) {
            std::string message = field(t, {"message"});
            if (std::string next = field(t, {"next_start_time"}); !next.empty())
              message += (message.empty() ? "" : "; ") + std::string("next attempt at ") + next;
            rows.push_back({field(t, {"task", "name"}), field(t, {"map_index"}), field(t, {"state"}),
                            field(t, {"attempts"}), message});
          }
          print_table(o, {"TASK", "MAP", "STATE", "ATTEMPTS", "MESSAGE"}, rows);
        }
        if (!history.empty()) {
          o << "task-run history:\n";
          for (const auto& h : history) {
            std::string who = field(h, {"task"});
            auto int_of = [&](const char* key, int64_t otherwise) {
              auto it = h.find(key);
              return it != h.end() && it->is_number_integer() ? it->get<int64_t>() : otherwise;
            };
            const int64_t first = int_of("map_index", -1), count = int_of("map_count", 1);
            if (first >= 0) who += "[" + std::to_string(first) + (count > 1 ? ".." + std::to_string(first + count - 1) : "") + "]";
            std::string next = field(h, {"next_start_time"});
            o << "  " << field(h, {"timestamp"}) << " " << who << " attempt " << field(h, {"attempts"}) << " "
              << field(h, {"state"}) << ": " << field(h, {"message"})
              << (next.empty() ? "" : "; next attempt at " + next) << "\n";
          }
        }
        o << human.str();
      }
      c.ctx->exit_code = kOk;
    });
  }
  for (const char* action : {"cancel", "retry"}) {
    auto acmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto id = std::make_shared<std::string>();
    std::string name = action;
    auto* sub = run->add_subcommand(name, name == "cancel" ? "Cancel a run" : "Run a finished run again");
    sub->fallthrough();
    sub->add_option("RUN", *id, "Flow run id")->required();
    add_output_option(sub, *acmd);
    sub->callback([acmd, id, name] {
      auto& c = *acmd;
      auto r = c.request([&](ApiClient& api) { return name == "cancel" ? api.cancel_flow_run(*id) : api.retry_flow_run(*id); });
      if (!r) return;
      json doc = unwrap(*r, "run");
      if (c.json_out()) c.emit_json(doc);
      else c.out() << "flow run " << *id << (name == "cancel" ? " cancel requested" : " retried")
                   << (doc.contains("state") ? " (" + field(doc, {"state"}) + ")" : "") << "\n";
      c.ctx->exit_code = kOk;
    });
  }
}

// ---- get ----

void add_get(CLI::App& app, CliContext& ctx) {
  auto* get = subcommand(app, "get", "List runs, logs and agents");
  get->require_subcommand(1);
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    struct Args { std::string flow, project, state; int limit = 20; };
    auto a = std::make_shared<Args>();
    auto* runs = get->add_subcommand("runs", "List flow runs, newest first");
    runs->fallthrough();
    runs->add_option("--flow", a->flow, "Flow id or name (latest version)");
    runs->add_option("--project", a->project, "Project of the --flow name");
    runs->add_option("--state", a->state, "Only runs in this state (e.g. Running, Failed)");
    runs->add_option("--limit", a->limit, "At most N runs (1-1000, default 20)")->check(CLI::Range(1, 1000));
    add_output_option(runs, *cmd);
    runs->callback([cmd, a] {
      auto& c = *cmd;
      if (!a->state.empty() && !parse_state(a->state)) {
        c.ctx->exit_code = c.usage("--state '" + a->state + "' is not a state (Scheduled, Pending, Submitted, Running, "
                                   "Retrying, Cancelling, Success, Failed, TimedOut, Crashed, Cancelled, ...)");
        return;
      }
      auto api = c.api();
      if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
      client::FlowRunFilter f;
      if (!a->flow.empty()) {
        auto flow = resolve_flow(**api, a->flow, a->project);
        if (!flow) { c.ctx->exit_code = c.fail(flow.status()); return; }
        f.flow_id = flow_id_of(*flow);
      }
      if (!a->state.empty()) f.state = a->state;
      f.limit = a->limit;
      auto r = (*api)->list_flow_runs(f);
      if (!r) { c.ctx->exit_code = c.fail(r.status()); return; }
      if (c.json_out()) {
        c.emit_json(*r);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& run : items_of(*r, {"runs", "flow_runs"}))
          rows.push_back({field(run, {"id"}), field(run, {"flow_name", "flow"}), field(run, {"state"}),
                          field(run, {"scheduled_start_time"}), field(run, {"start_time"}),
                          field(run, {"end_time"}), field(run, {"labels"})});
        print_table(c.out(), {"ID", "FLOW", "STATE", "SCHEDULED", "STARTED", "ENDED", "LABELS"}, rows);
      }
      c.ctx->exit_code = kOk;
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    struct Args { std::string run; bool follow = false; };
    auto a = std::make_shared<Args>();
    auto* logs = get->add_subcommand("logs", "Print a run's logs");
    logs->fallthrough();
    logs->add_option("RUN", a->run, "Flow run id")->required();
    logs->add_flag("--follow,-f", a->follow, "Keep printing until the run finishes");
    add_output_option(logs, *cmd);
    logs->callback([cmd, a] {
      auto& c = *cmd;
      auto api = c.api();
      if (!api) { c.ctx->exit_code = c.fail(api.status()); return; }
      if (a->follow && !c.json_out()) {
        auto fin = follow_run(**api, *c.ctx, a->run, c.out(), false);
        if (!fin) { c.ctx->exit_code = c.fail(fin.status()); return; }
        c.ctx->exit_code = kOk;
        return;
      }
      // All pages so far (with --follow and json: until the run is final).
      json all = json::array();
      std::string cursor = "0";
      while (true) {
        bool final_state = true;
        if (a->follow) {
          auto run = (*api)->get_flow_run(a->run);
          if (!run) { c.ctx->exit_code = c.fail(run.status()); return; }
          auto st = parse_state(field(unwrap(*run, "run"), {"state"}));
          final_state = st && is_final(*st);
        }
        auto page = (*api)->get_logs(a->run, cursor, final_state ? Millis(0) : Millis(1000));
        if (!page) { c.ctx->exit_code = c.fail(page.status()); return; }
        json logs = items_of(*page, {"logs"});
        for (const auto& l : logs) all.push_back(l);
        std::string next = next_log_cursor(*page, logs, cursor);
        if (logs.empty() && final_state) break;
        if (logs.empty()) c.ctx->clock->sleep_for(Millis(500));
        if (next == cursor && !logs.empty()) break;  // a server that ignores the cursor
        cursor = next;
      }
      if (c.json_out()) c.emit_json({{"logs", all}});
      else for (const auto& l : all) print_log_line(c.out(), l);
      c.ctx->exit_code = kOk;
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto* agents = get->add_subcommand("agents", "List agents with their labels and health");
    agents->fallthrough();
    add_output_option(agents, *cmd);
    agents->callback([cmd] {
      auto& c = *cmd;
      auto r = c.request([](ApiClient& api) { return api.list_agents(); });
      if (!r) return;
      c.emit_listing(*r, {"agents"}, {"NAME", "TYPE", "LABELS", "HEALTH", "LAST HEARTBEAT", "ID"}, [](const json& ag) {
        return std::vector<std::string>{field(ag, {"name"}), field(ag, {"type"}), field(ag, {"labels"}),
                                        agent_healthy(ag) ? "healthy" : "unhealthy", field(ag, {"last_heartbeat"}),
                                        field(ag, {"id"})};
      });
    });
  }
}

}  // namespace

void add_client_commands(CLI::App& app, CliContext& ctx) {
  if (ctx.out == nullptr) ctx.out = &std::cout;
  if (ctx.err == nullptr) ctx.err = &std::cerr;
  if (ctx.clock == nullptr) ctx.clock = &system_clock();
  auto opt = [&](const char* name, std::optional<std::string>& target, const char* help) {
    app.add_option_function<std::string>(name, [&target](const std::string& v) { target = v; }, help);
  };
  opt("--profile", ctx.flags.profile, "Profile in ~/.culvert/config.toml (env CULVERT_PROFILE)");
  opt("--api-url", ctx.flags.api_url, "Server URL (env CULVERT_API_URL)");
  opt("--api-token", ctx.flags.api_token, "API token (env CULVERT_API_TOKEN)");
  add_config(app, ctx);
  add_auth(app, ctx);
  add_project(app, ctx);
  add_flow(app, ctx);
  add_run(app, ctx);
  add_get(app, ctx);
}

}  // namespace culvert::cli
