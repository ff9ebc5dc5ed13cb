#include "cli/command.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <ostream>

namespace culvert::cli {

int Cmd::fail(const Status& s) const {
  err() << "error: " << s.message() << "\n";
  return ctx->exit_code = kFailure;
}

int Cmd::usage(const std::string& message) const {
  err() << "error: " << message << "\n";
  return ctx->exit_code = kUsage;
}

void Cmd::emit_json(const json& j) const {
  out() << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

Result<client::ProfileConfig> Cmd::config() const {
  auto path = client::default_config_path(ctx->env);
  if (!path) return client::ProfileConfig{};  // no HOME: flags and env only
  return client::load_profile_config(*path);
}

Result<client::Settings> Cmd::settings() const {
  auto c = config();
  if (!c) return c.status();
  return client::resolve_settings(ctx->flags, ctx->env, *c);
}

Result<std::unique_ptr<ApiClient>> Cmd::api() const {
  auto s = settings();
  if (!s) return s.status();
  return std::make_unique<ApiClient>(client::ClientOptions{.api_url = s->api_url, .api_token = s->api_token});
}

void add_output_option(CLI::App* command, std::string& output) {
  command->add_option("--output,-o", output, "Output format: table or json")->check(CLI::IsMember({"table", "json"}));
}

CLI::App* subcommand(CLI::App& parent, const std::string& name, const std::string& description) {
  for (auto* s : parent.get_subcommands([](CLI::App*) { return true; }))
    if (s->get_name() == name) return s;
  auto* s = parent.add_subcommand(name, description);
  s->fallthrough();
  return s;
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

bool looks_like_id(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : separator) + i;
  return out;
}

Result<Decoded<client::FlowVersion>> resolve_flow(ApiClient& api, const std::string& ref, const std::string& project) {
  if (looks_like_id(ref)) return decoded(api.get_flow(ref), client::decode_flow);
  auto listed = decoded(api.list_all_flows(project.empty() ? std::nullopt : std::optional<std::string_view>(project), ref),
                        client::decode_flows);
  if (!listed) return listed.status();
  const auto& flows = listed->value;
  std::optional<size_t> best;
  std::vector<std::string> projects;
  for (size_t i = 0; i < flows.size(); ++i) {
    const auto& f = flows[i];
    if (f.name != ref || f.archived) continue;
    if (std::find(projects.begin(), projects.end(), f.project) == projects.end()) projects.push_back(f.project);
    if (!best || f.version > flows[*best].version) best = i;
  }
  if (!best) return not_found("flow '" + ref + "' not found" + (project.empty() ? "" : " in project '" + project + "'"));
  if (projects.size() > 1)
    return invalid_argument("flow name '" + ref + "' exists in projects " + join(projects, ", ") + "; pass --project");
  // The document of the chosen item (the listing's entry, as the server sent it).
  return Decoded<client::FlowVersion>{listed->document["flows"][*best], flows[*best]};
}

}  // namespace culvert::cli
