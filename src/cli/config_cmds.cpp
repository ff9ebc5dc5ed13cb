// `culvert config set api-url`, `config show` and `auth login`: the profile file.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <ostream>

#include "cli/command.hpp"

namespace culvert::cli {

void add_config_commands(CLI::App& app, CliContext& ctx) {
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
      c.usage("api-url '" + *url + "' must start with http:// or https://");
      return;
    }
    auto path = client::default_config_path(c.ctx->env);
    if (!path) { c.fail(path.status()); return; }
    auto s = c.settings();
    if (!s) { c.fail(s.status()); return; }
    std::string u = *url;
    while (u.size() > 8 && u.back() == '/') u.pop_back();
    if (auto st = client::set_profile_value(*path, s->profile, "api_url", u); !st) { c.fail(st); return; }
    if (c.json_out())
      c.emit_json({{"profile", s->profile}, {"api_url", u}, {"config_file", path->string()}});
    else
      c.out() << "api_url of profile '" << s->profile << "' set to " << u << " (" << path->string() << ")\n";
    c.done();
  });

  auto show_cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto* show = config->add_subcommand("show", "Show the settings in effect and where each comes from");
  show->fallthrough();
  add_output_option(show, *show_cmd);
  show->callback([show_cmd] {
    auto& c = *show_cmd;
    auto s = c.settings();
    if (!s) { c.fail(s.status()); return; }
    auto path = client::default_config_path(c.ctx->env);
    std::string file = path ? path->string() : "";
    std::string masked =
        s->api_token.empty() ? "(none)" : s->api_token.substr(0, std::min<size_t>(8, s->api_token.size())) + "...";
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
    c.done();
  });

  auto* auth = subcommand(app, "auth", "Log in and manage API tokens");
  auth->require_subcommand(1);
  auto login_cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto token = std::make_shared<std::string>();
  auto* login = auth->add_subcommand("login", "Store an API token in the profile (--profile, else the active one)");
  login->fallthrough();
  login->add_option("--token", *token, "The API token")->required();
  add_output_option(login, *login_cmd);
  login->callback([login_cmd, token] {
    auto& c = *login_cmd;
    if (token->empty()) { c.usage("--token is empty"); return; }
    auto path = client::default_config_path(c.ctx->env);
    if (!path) { c.fail(path.status()); return; }
    auto s = c.settings();
    if (!s) { c.fail(s.status()); return; }
    if (auto st = client::set_profile_value(*path, s->profile, "api_token", *token); !st) { c.fail(st); return; }
    if (c.json_out())
      c.emit_json({{"profile", s->profile}, {"config_file", path->string()}});
    else
      c.out() << "token stored in profile '" << s->profile << "' (" << path->string() << ")\n";
    c.done();
  });
}

}  // namespace culvert::cli
