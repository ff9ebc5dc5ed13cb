// `culvert auth create-token`, `auth list-tokens` and `auth revoke-token` (admin scope).
#include <CLI/CLI.hpp>

#include <ostream>

#include <culvert/clock.hpp>

#include "cli/command.hpp"
#include "core/timefmt.hpp"

namespace culvert::cli {

void add_token_commands(CLI::App& app, CliContext& ctx) {
  auto* auth = subcommand(app, "auth", "Log in and manage API tokens");
  auth->require_subcommand(1);
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
        c.usage("--expires '" + a->expires + "' is not a duration (e.g. 30d, 12h, 90m)");
        return;
      }
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto t = decoded((*api)->create_token(a->name, a->scope, a->expires.empty() ? std::nullopt
                                                                 : std::optional<std::string_view>(a->expires)),
                       client::decode_token);
      if (!t) { c.fail(t.status()); return; }
      if (!t->value.token) { c.fail(internal_error("the server's answer is malformed: token is missing")); return; }
      if (c.json_out()) {
        c.emit_json(t->document);
      } else {
        c.out() << "Created token " << t->value.id << " (" << a->name << ", scope " << a->scope << "):\n"
                << *t->value.token << "\nIt is shown only this once: store it now.\n";
      }
      c.done();
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto* list = auth->add_subcommand("list-tokens", "List API tokens (never their secrets)");
    list->fallthrough();
    add_output_option(list, *cmd);
    list->callback([cmd] {
      auto& c = *cmd;
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto tokens = decoded((*api)->list_tokens(), client::decode_tokens);
      if (!tokens) { c.fail(tokens.status()); return; }
      if (c.json_out()) {
        c.emit_json(tokens->document);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& t : tokens->value)
          rows.push_back({t.id, t.name, t.scope, t.expires.value_or(""), t.created, t.revoked ? "yes" : "no"});
        print_table(c.out(), {"ID", "NAME", "SCOPE", "EXPIRES", "CREATED", "REVOKED"}, rows);
      }
      c.done();
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
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto r = (*api)->revoke_token(*id);
      if (!r) { c.fail(r.status()); return; }
      if (c.json_out()) c.emit_json({{"id", *id}, {"revoked", true}});
      else c.out() << "token " << *id << " revoked\n";
      c.done();
    });
  }
}

}  // namespace culvert::cli
