// `culvert get agents`: the registered agents, their labels, how they stand (healthy,
// unhealthy: no recent heartbeat, stopped: deregistered) and the runs each takes at once
// ("-" when it did not say).
#include <CLI/CLI.hpp>

#include <ostream>

#include "cli/command.hpp"

namespace culvert::cli {

void add_agent_list_commands(CLI::App& app, CliContext& ctx) {
  auto* get = subcommand(app, "get", "List runs, logs and agents");
  get->require_subcommand(1);
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto* agents = get->add_subcommand("agents", "List agents with their labels and health");
  agents->fallthrough();
  add_output_option(agents, *cmd);
  agents->callback([cmd] {
    auto& c = *cmd;
    auto api = c.api();
    if (!api) { c.fail(api.status()); return; }
    auto r = decoded((*api)->list_agents(), client::decode_agents);
    if (!r) { c.fail(r.status()); return; }
    if (c.json_out()) {
      c.emit_json(r->document);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& a : r->value)
        rows.push_back({a.name, a.type, join(a.labels), agent_status_name(a.status),
                        a.max_concurrent ? std::to_string(*a.max_concurrent) : "-", a.last_heartbeat.value_or(""), a.id});
      print_table(c.out(), {"NAME", "TYPE", "LABELS", "HEALTH", "MAX CONCURRENT", "LAST HEARTBEAT", "ID"}, rows);
    }
    c.done();
  });
}

}  // namespace culvert::cli
