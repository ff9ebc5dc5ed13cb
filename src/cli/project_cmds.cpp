// `culvert project create` and `project list`.
#include <CLI/CLI.hpp>

#include <ostream>

#include "cli/command.hpp"

namespace culvert::cli {

void add_project_commands(CLI::App& app, CliContext& ctx) {
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
      if (!api) { c.fail(api.status()); return; }
      auto r = decoded((*api)->create_project(a->name, a->description), client::decode_project);
      if (!r && r.status().code() == StatusCode::kConflict && a->skip) {
        json existing = {{"name", a->name}};
        auto listed = decoded((*api)->list_projects(), client::decode_projects);
        if (!listed) { c.fail(listed.status()); return; }
        for (size_t i = 0; i < listed->value.size(); ++i)
          if (listed->value[i].name == a->name) existing = listed->document["projects"][i];
        existing["created"] = false;
        if (c.json_out()) c.emit_json(existing);
        else c.out() << "project '" << a->name << "' already exists\n";
        c.done();
        return;
      }
      if (!r) { c.fail(r.status()); return; }
      if (c.json_out()) c.emit_json(r->document);
      else c.out() << "project '" << a->name << "' created (" << r->value.id << ")\n";
      c.done();
    });
  }
  {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto* list = project->add_subcommand("list", "List projects");
    list->fallthrough();
    add_output_option(list, *cmd);
    list->callback([cmd] {
      auto& c = *cmd;
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto r = decoded((*api)->list_projects(), client::decode_projects);
      if (!r) { c.fail(r.status()); return; }
      if (c.json_out()) {
        c.emit_json(r->document);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& p : r->value) rows.push_back({p.name, p.description, p.id, p.created});
        print_table(c.out(), {"NAME", "DESCRIPTION", "ID", "CREATED"}, rows);
      }
      c.done();
    });
  }
}

}  // namespace culvert::cli
