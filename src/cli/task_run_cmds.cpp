// `culvert get task-runs`: a run's tasks (an unmapped task's task run, a mapped task's
// counts by state), or with --task one task's task runs by map index; paged with
// --cursor, or every page with --all. Also the reading of every task that `run
// inspect` shows.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <ostream>
#include <set>

#include "cli/command.hpp"

namespace culvert::cli {

namespace {

// Cursors are short opaque strings of the server.
constexpr size_t kMaxCursorLength = 512;

bool bad_cursor(const std::string& c) {
  return c.size() > kMaxCursorLength ||
         std::any_of(c.begin(), c.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x21; });
}

std::string with_next_start(const client::TaskRun& t) {
  std::string message = t.message;
  if (t.next_start_time) message += (message.empty() ? "" : "; ") + std::string("next attempt at ") + *t.next_start_time;
  return message;
}

}  // namespace

std::string mapped_states_text(const client::MappedTask& m) {
  std::string out;
  for (const auto& [state, n] : m.states) out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + state_name(state);
  return out;
}

Result<TaskListing> read_task_listing(ApiClient& api, const std::string& run_id, size_t max_tasks) {
  TaskListing all;
  all.task_runs_doc = json::array();
  all.mapped_doc = json::array();
  client::TaskRunQuery q;
  q.limit = 1000;
  std::set<std::string> seen;
  size_t tasks = 0;
  for (;;) {
    auto page = decoded(api.list_task_runs(run_id, q), client::decode_task_run_page);
    if (!page) return page.status();
    for (auto& d : page->document["task_runs"]) all.task_runs_doc.push_back(std::move(d));
    if (page->document.contains("mapped_tasks"))
      for (auto& d : page->document["mapped_tasks"]) all.mapped_doc.push_back(std::move(d));
    tasks += page->value.task_runs.size() + page->value.mapped_tasks.size();
    for (auto& t : page->value.task_runs) all.task_runs.push_back(std::move(t));
    for (auto& m : page->value.mapped_tasks) all.mapped.push_back(std::move(m));
    if (!page->value.next_cursor) return all;
    if (tasks > max_tasks) {
      all.next_cursor = page->value.next_cursor;
      return all;
    }
    if (!seen.insert(*page->value.next_cursor).second)
      return internal_error("the server's answer is malformed: next_cursor '" + page->value.next_cursor->substr(0, 64) +
                            "' repeats an earlier page");
    q.cursor = page->value.next_cursor;
  }
}

void print_task_table(std::ostream& o, const TaskListing& l) {
  // One row per task, in task order: an unmapped task's task run, a mapped task's
  // counts (its task runs: `culvert get task-runs RUN --task T`).
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;
  for (const auto& t : l.task_runs)
    rows.push_back({t.task, {t.task, std::to_string(t.map_index), t.state ? state_name(*t.state) : "",
                             std::to_string(t.attempts), std::to_string(t.run_attempt), with_next_start(t)}});
  for (const auto& m : l.mapped)
    rows.push_back({m.task, {m.task, "0.." + std::to_string(m.max_map_index), mapped_states_text(m), "", "",
                             std::to_string(m.count) + " task runs"}});
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::vector<std::string>> cells;
  for (auto& r : rows) cells.push_back(std::move(r.second));
  if (!cells.empty()) print_table(o, {"TASK", "MAP", "STATE", "ATTEMPTS", "RUN ATTEMPT", "MESSAGE"}, cells);
}

void add_task_run_commands(CLI::App& app, CliContext& ctx) {
  auto* get = subcommand(app, "get", "List runs, logs and agents");
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  struct Args {
    std::string run, task, state, cursor;
    int limit = 100;
    bool all = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = get->add_subcommand("task-runs", "List a run's tasks, or one task's task runs (--task)");
  sub->fallthrough();
  sub->add_option("RUN", a->run, "Flow run id")->required();
  sub->add_option("--task", a->task, "Only this task's task runs, by map index (for a mapped task)");
  sub->add_option("--state", a->state, "With --task: only task runs in this state (e.g. Failed)");
  sub->add_option("--limit", a->limit, "Tasks (or with --task task runs) per page (1-1000, default 100)")
      ->check(CLI::Range(1, 1000));
  sub->add_option("--cursor", a->cursor, "Start at this cursor (printed after a listing that has more)");
  sub->add_flag("--all", a->all, "Everything: follow the cursors to the end");
  add_output_option(sub, *cmd);
  sub->callback([cmd, a] {
    auto& c = *cmd;
    if (!a->state.empty() && a->task.empty()) {
      c.usage("--state needs --task (a task's task runs in that state)");
      return;
    }
    if (!a->state.empty() && !parse_state(a->state)) {
      c.usage("--state '" + a->state + "' is not a state (Pending, Running, Success, Failed, ...)");
      return;
    }
    if (bad_cursor(a->cursor)) {
      c.usage("--cursor '" + a->cursor.substr(0, 64) + "' is not a cursor of `culvert get task-runs`");
      return;
    }
    auto api = c.api();
    if (!api) { c.fail(api.status()); return; }
    client::TaskRunQuery q;
    if (!a->task.empty()) q.task = a->task;
    if (!a->state.empty()) q.state = std::string(state_name(*parse_state(a->state)));
    q.limit = a->limit;
    if (!a->cursor.empty()) q.cursor = a->cursor;
    TaskListing l;
    l.task_runs_doc = json::array();
    l.mapped_doc = json::array();
    std::set<std::string> seen;
    for (;;) {
      auto page = decoded((*api)->list_task_runs(a->run, q), client::decode_task_run_page);
      if (!page) { c.fail(page.status()); return; }
      for (auto& d : page->document["task_runs"]) l.task_runs_doc.push_back(std::move(d));
      if (page->document.contains("mapped_tasks"))
        for (auto& d : page->document["mapped_tasks"]) l.mapped_doc.push_back(std::move(d));
      for (auto& t : page->value.task_runs) l.task_runs.push_back(std::move(t));
      for (auto& m : page->value.mapped_tasks) l.mapped.push_back(std::move(m));
      l.next_cursor = page->value.next_cursor;
      if (!a->all || !l.next_cursor) break;
      if (l.task_runs.size() + l.mapped.size() > kMaxListedTasks) {
        c.fail(invalid_argument("more than " + std::to_string(kMaxListedTasks) +
                                " items: page through them with --cursor " + *l.next_cursor));
        return;
      }
      if (!seen.insert(*l.next_cursor).second) {
        c.fail(internal_error("the server's answer is malformed: next_cursor '" + l.next_cursor->substr(0, 64) +
                              "' repeats an earlier page"));
        return;
      }
      q.cursor = l.next_cursor;
    }
    if (c.json_out()) {
      json doc = {{"task_runs", std::move(l.task_runs_doc)},
                  {"next_cursor", l.next_cursor ? json(*l.next_cursor) : json(nullptr)}};
      if (a->task.empty()) doc["mapped_tasks"] = std::move(l.mapped_doc);
      c.emit_json(doc);
      c.done();
      return;
    }
    if (a->task.empty()) {
      print_task_table(c.out(), l);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& t : l.task_runs)
        rows.push_back({t.task, std::to_string(t.map_index), t.state ? state_name(*t.state) : "",
                        std::to_string(t.attempts), t.start_time.value_or(""), t.end_time.value_or(""),
                        with_next_start(t)});
      print_table(c.out(), {"TASK", "MAP", "STATE", "ATTEMPTS", "STARTED", "ENDED", "MESSAGE"}, rows);
    }
    if (l.next_cursor)
      c.out() << "next cursor: " << *l.next_cursor << " (more: repeat with --cursor " << *l.next_cursor << ")\n";
    c.done();
  });
}

}  // namespace culvert::cli
