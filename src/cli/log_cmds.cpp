// `culvert get logs RUN [--follow] [--attempt N]`.
#include <CLI/CLI.hpp>

#include <ostream>

#include <culvert/clock.hpp>

#include "cli/command.hpp"
#include "cli/follow.hpp"

namespace culvert::cli {

void add_log_commands(CLI::App& app, CliContext& ctx) {
  auto* get = subcommand(app, "get", "List runs, logs and agents");
  get->require_subcommand(1);
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  struct Args { std::string run; bool follow = false; int attempt = 0; };
  auto a = std::make_shared<Args>();
  auto* logs = get->add_subcommand("logs", "Print a run's logs");
  logs->fallthrough();
  logs->add_option("RUN", a->run, "Flow run id")->required();
  logs->add_flag("--follow,-f", a->follow, "Keep printing until the run finishes");
  logs->add_option("--attempt", a->attempt,
                   "Only this attempt of the run (1, 2, ...); default: every attempt, a line between them")
      ->check(CLI::Range(1, 1000000));
  add_output_option(logs, *cmd);
  logs->callback([cmd, a] {
    auto& c = *cmd;
    auto api = c.api();
    if (!api) { c.fail(api.status()); return; }
    if (a->follow && !c.json_out()) {
      auto fin = follow_run(**api, *c.ctx, a->run, c.out(), false, a->attempt);
      if (!fin) { c.fail(fin.status()); return; }
      c.done();
      return;
    }
    // All pages so far (with --follow and json: until the run is final).
    json all = json::array();
    std::vector<client::LogLine> lines;
    std::string cursor = "0";
    while (true) {
      bool final_state = true;
      if (a->follow) {
        auto run = decoded((*api)->get_flow_run(a->run), client::decode_flow_run);
        if (!run) { c.fail(run.status()); return; }
        final_state = is_final(run->value.state);
      }
      auto page = decoded((*api)->get_logs(a->run, cursor, final_state ? Millis(0) : Millis(1000), a->attempt),
                          client::decode_log_page);
      if (!page) { c.fail(page.status()); return; }
      bool empty = page->value.logs.empty();
      for (auto& d : page->document["logs"]) all.push_back(std::move(d));
      std::string next = next_log_cursor(page->value, cursor);
      for (auto& l : page->value.logs) lines.push_back(std::move(l));
      if (empty && final_state) break;
      if (empty) c.ctx->clock->sleep_for(Millis(500));
      if (next == cursor && !empty) break;  // a server that ignores the cursor
      cursor = next;
    }
    if (c.json_out()) {
      c.emit_json({{"logs", all}});
    } else {
      LogPrinter printer(c.out());
      for (const auto& l : lines) printer.print(l);
    }
    c.done();
  });
}

}  // namespace culvert::cli
