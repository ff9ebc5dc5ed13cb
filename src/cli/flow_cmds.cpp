// `culvert flow list`, `flow show`, `flow set-schedule` and `flow backfill`.
// (`flow register` is in flow_register_cmd.cpp.)
#include <CLI/CLI.hpp>

#include <ostream>

#include <culvert/clock.hpp>

#include "cli/command.hpp"
#include "core/schedule.hpp"
#include "core/timefmt.hpp"

namespace culvert::cli {
namespace {

std::string schedule_summary(const client::FlowVersion& flow) {
  if (!flow.schedule) return "";
  const Schedule& s = *flow.schedule;
  std::string text = s.kind() == Schedule::Kind::kCron ? s.cron_text() + " " + s.timezone().name()
                                                       : "every " + std::to_string(s.interval_length().count()) + "s";
  return text + (flow.schedule_active ? "" : " (paused)");
}

}  // namespace

void add_flow_commands(CLI::App& app, CliContext& ctx) {
  auto* flow = subcommand(app, "flow", "List, show, register and schedule flows");
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
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto r = decoded((*api)->list_all_flows(project->empty() ? std::nullopt : std::optional<std::string_view>(*project)),
                       client::decode_flows);
      if (!r) { c.fail(r.status()); return; }
      if (c.json_out()) {
        c.emit_json(r->document);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& f : r->value) {
          if (f.archived) continue;
          rows.push_back({f.name, std::to_string(f.version), f.project, schedule_summary(f), join(f.labels), f.id});
        }
        print_table(c.out(), {"NAME", "VERSION", "PROJECT", "SCHEDULE", "LABELS", "ID"}, rows);
      }
      c.done();
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
      if (!api) { c.fail(api.status()); return; }
      auto found = resolve_flow(**api, a->flow, a->project);
      if (!found) { c.fail(found.status()); return; }
      const client::FlowVersion& f = found->value;
      std::vector<std::string> next;
      if (f.schedule) {
        SysTime t = c.ctx->clock->now();
        for (int i = 0; i < 5; ++i) {
          auto n = f.schedule->next_after(t);
          if (!n) break;
          next.push_back(format_rfc3339(*n));
          t = *n;
        }
      }
      if (c.json_out()) {
        json doc = found->document;
        doc["next_fire_times"] = next;
        c.emit_json(doc);
      } else {
        auto& o = c.out();
        o << "flow:        " << f.name << " (version " << f.version << ")\n"
          << "id:          " << f.id << "\n"
          << "project:     " << f.project << "\n"
          << "labels:      " << join(f.labels) << "\n"
          << "artifact:    " << f.artifact.uri << "\n"
          << "schedule:    " << (f.schedule ? schedule_summary(f) : "none") << "\n";
        for (const auto& n : next) o << "  next:      " << n << "\n";
        if (!f.parameters.empty()) {
          o << "parameters:\n";
          for (const auto& p : f.parameters)
            o << "  " << p.name << " (" << p.type << ")"
              << (p.default_value ? " = " + p.default_value->dump(-1, ' ', false, json::error_handler_t::replace)
                                  : std::string(" required"))
              << "\n";
        }
        if (f.task_count) o << "tasks:       " << *f.task_count << "\n";
      }
      c.done();
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
      if (!a->active && !a->paused) { c.usage("give --active or --paused"); return; }
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto found = resolve_flow(**api, a->flow, a->project);
      if (!found) { c.fail(found.status()); return; }
      auto r = decoded((*api)->set_schedule_active(found->value.id, a->active), client::decode_flow);
      if (!r) { c.fail(r.status()); return; }
      if (c.json_out()) c.emit_json(r->document);
      else c.out() << "schedule of flow '" << found->value.name << "' " << (a->active ? "active" : "paused") << "\n";
      c.done();
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
      if (!from) { c.usage("--from '" + a->from + "' is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z)"); return; }
      auto to = parse_rfc3339(a->to);
      if (!to) { c.usage("--to '" + a->to + "' is not an RFC 3339 time (e.g. 2026-03-02T00:00:00Z)"); return; }
      if (*from >= *to) { c.usage("--from must be before --to"); return; }
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto found = resolve_flow(**api, a->flow, a->project);
      if (!found) { c.fail(found.status()); return; }
      const client::FlowVersion& f = found->value;
      // The runs of the window are created like the scheduler creates them: one per fire
      // time, keyed sched:<flow>:<time>, so a window that overlaps scheduled runs (or a
      // repeated backfill) never doubles a run.
      if (!f.schedule) { c.fail(invalid_argument("flow '" + f.name + "' has no schedule")); return; }
      auto times = backfill_fire_times(*f.schedule, *from, *to, c.ctx->clock->now());
      if (!times) { c.usage(times.status().message()); return; }
      json params = json::parse(f.schedule->parameters_json(), nullptr, /*allow_exceptions=*/false);
      if (!params.is_object()) params = json::object();
      json runs = json::array();
      std::vector<client::FlowRun> created;
      for (SysTime t : *times) {
        json body = {{"flow_id", f.id}, {"parameters", params},
                     {"idempotency_key", schedule_run_key(f.id, t)},
                     {"scheduled_start_time", format_rfc3339(t)}};
        auto r = decoded((*api)->create_flow_run(body), client::decode_flow_run);
        if (!r) {
          c.err() << "created " << runs.size() << " of " << times->size() << " runs\n";
          c.fail(r.status());
          return;
        }
        runs.push_back(std::move(r->document));
        created.push_back(std::move(r->value));
      }
      if (c.json_out()) {
        c.emit_json({{"flow_id", f.id}, {"from", format_rfc3339(*from)}, {"to", format_rfc3339(*to)}, {"runs", runs}});
      } else {
        c.out() << "backfill of flow '" << f.name << "' from " << format_rfc3339(*from) << " to "
                << format_rfc3339(*to) << ": " << created.size() << " runs\n";
        for (const auto& run : created)
          c.out() << "  " << run.id << "  " << run.scheduled_start_time << "  " << state_name(run.state) << "\n";
      }
      c.done();
    });
  }
}

}  // namespace culvert::cli
