// `culvert run FLOW` (create, --watch), `run inspect`, `run cancel`, `run retry` and
// `get runs` (paged with --cursor, or every page with --all).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <ostream>
#include <set>
#include <sstream>

#include <culvert/clock.hpp>

#include "cli/command.hpp"
#include "cli/follow.hpp"
#include "core/labels.hpp"
#include "core/timefmt.hpp"

namespace culvert::cli {
namespace {

// `get runs --all` stops past this many runs (they are held in memory to print one table
// or one JSON document): narrow the listing, or page through it with --cursor.
constexpr size_t kMaxAllRuns = 100000;
// Cursors are short opaque strings of the server.
constexpr size_t kMaxCursorLength = 512;

Result<json> parse_params(const std::vector<std::string>& params) {
  json out = json::object();
  for (const auto& p : params) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) return invalid_argument("--param '" + p + "' must be NAME=VALUE");
    std::string value = p.substr(eq + 1);
    json v = json::parse(value, nullptr, /*allow_exceptions=*/false);
    out[p.substr(0, eq)] = v.is_discarded() ? json(value) : v;  // JSON if it parses, else a string
  }
  return out;
}

// "agent a1 launches docker; run needs local" when agent `a` does not launch the run's
// run-config type; "" when it does (or the run config has no type).
std::string type_mismatch(const client::Agent& a, const client::FlowRun& run) {
  if (run.run_config_type.empty() ||
      std::find(a.run_config_types.begin(), a.run_config_types.end(), run.run_config_type) != a.run_config_types.end())
    return "";
  return "agent " + a.name + " launches " + join(a.run_config_types, ", ") + "; run needs " + run.run_config_type;
}

// Why a waiting run has not been taken, from the agents the server lists.
void explain_waiting(const client::FlowRun& run, const std::vector<client::Agent>& agents, json& diag,
                     std::ostream* o) {
  json rows = json::array();
  int healthy = 0, stopped = 0;
  std::vector<std::string> reasons;
  for (const auto& a : agents) {
    bool ok = a.status == client::AgentStatus::kHealthy;
    auto missing = missing_labels(a.labels, run.labels);
    std::string mismatch = type_mismatch(a, run);
    healthy += ok;
    stopped += a.status == client::AgentStatus::kStopped;
    rows.push_back({{"id", a.id}, {"name", a.name}, {"healthy", ok}, {"status", agent_status_name(a.status)},
                    {"labels", a.labels}, {"missing_labels", missing}, {"run_config_types", a.run_config_types},
                    {"type_mismatch", mismatch.empty() ? json(nullptr) : json(mismatch)},
                    {"can_take", ok && missing.empty() && mismatch.empty()}});
  }
  diag["agents"] = rows;
  if (agents.empty()) {
    reasons.push_back("no agent is registered: start one with `culvert agent start`");
  } else if (healthy == 0) {
    reasons.push_back("no healthy agent: " + std::to_string(agents.size()) + " registered, " +
                      (stopped == 0 ? "none has sent a heartbeat recently"
                                    : std::to_string(stopped) + " stopped, " + std::to_string(agents.size() - stopped) +
                                          " without a recent heartbeat"));
  } else {
    int able = 0, labelled = 0;
    for (size_t i = 0; i < agents.size(); ++i) {
      if (agents[i].status != client::AgentStatus::kHealthy) continue;
      auto miss = missing_labels(agents[i].labels, run.labels);
      std::string mismatch = type_mismatch(agents[i], run);
      labelled += miss.empty();
      if (miss.empty() && mismatch.empty()) {
        ++able;
        reasons.push_back("agent '" + agents[i].name + "' can take it");
      } else if (!miss.empty()) {
        reasons.push_back("agent '" + agents[i].name + "' lacks label" + (miss.size() > 1 ? "s " : " ") +
                          join(miss, ", ") + (mismatch.empty() ? "" : "; " + mismatch.substr(mismatch.find(" launches ") + 1)));
      } else {
        reasons.push_back(mismatch);
      }
    }
    if (able == 0)
      reasons.insert(reasons.begin(), labelled == 0 ? "no healthy agent has all of the run's labels"
                                                    : "no healthy agent with the run's labels launches its run-config "
                                                      "type, " + run.run_config_type);
  }
  diag["reasons"] = reasons;
  if (o != nullptr) {
    *o << "why it has not been taken:\n";
    for (const auto& r : reasons) *o << "  - " << r << "\n";
  }
}

std::string infrastructure_text(const client::Infrastructure& i) {
  std::string s = i.kind + " " + i.id;
  std::string more;
  if (!i.agent_id.empty()) more = "agent " + i.agent_id;
  if (!i.reported_at.empty()) more += (more.empty() ? "" : ", ") + std::string("reported ") + i.reported_at;
  return more.empty() ? s : s + " (" + more + ")";
}

void add_run_create(CLI::App* run, CliContext& ctx) {
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
    if (a->flow.empty()) { c.usage("run: give FLOW (or one of inspect, cancel, retry)"); return; }
    auto params = parse_params(a->params);
    if (!params) { c.usage(params.status().message()); return; }
    json body = {{"parameters", *params}};
    if (!a->project.empty()) {
      body["project"] = a->project;
      body["flow"] = a->flow;
    } else if (looks_like_id(a->flow)) {
      body["flow_id"] = a->flow;
    } else {
      c.usage("--project is required with a flow name");
      return;
    }
    if (!a->labels.empty()) body["labels"] = a->labels;
    if (!a->key.empty()) body["idempotency_key"] = a->key;
    auto api = c.api();
    if (!api) { c.fail(api.status()); return; }
    auto created = decoded((*api)->create_flow_run(body), client::decode_flow_run);
    if (!created) { c.fail(created.status()); return; }
    const std::string id = created->value.id;
    if (!a->watch) {
      if (c.json_out()) c.emit_json(created->document);
      else c.out() << "flow run " << id << " created (" << state_name(created->value.state) << ")\n";
      c.done();
      return;
    }
    if (!c.json_out()) c.out() << "flow run " << id << " created\n";
    auto fin = follow_run(**api, *c.ctx, id, c.json_out() ? c.err() : c.out(), true);
    if (!fin) { c.fail(fin.status()); return; }
    if (c.json_out()) c.emit_json(fin->document);
    else c.out() << "flow run " << id << " finished: " << state_name(fin->value.state) << "\n";
    c.ctx->exit_code = fin->value.state == State::kSuccess ? kOk : kFailure;
  });
}

// At most this many children are listed by `run inspect`; the rest are counted.
constexpr size_t kMaxChildRows = 50;

void print_children(std::ostream& o, const std::string& parent, const client::ChildRunListing& l) {
  std::string states;
  auto by_state = l.by_state;  // in state order (Scheduled ... Cancelled)
  std::sort(by_state.begin(), by_state.end());
  for (const auto& [st, n] : by_state) states += (states.empty() ? "" : ", ") + std::string(state_name(st)) + " " + std::to_string(n);
  o << "children:    " << l.count << " (attempt " << l.parent_attempt << ": " << states << ")\n";
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < l.children.size() && i < kMaxChildRows; ++i) {
    const auto& ch = l.children[i];
    rows.push_back({std::to_string(ch.chunk), ch.task, std::to_string(ch.start) + ".." + std::to_string(ch.end - 1),
                    state_name(ch.state), std::to_string(ch.run_count),
                    ch.infrastructure ? ch.infrastructure->kind + " " + ch.infrastructure->id : "", ch.id});
  }
  print_table(o, {"CHUNK", "TASK", "INDEXES", "STATE", "ATTEMPTS", "INFRASTRUCTURE", "ID"}, rows);
  if (l.count > static_cast<int64_t>(rows.size()))
    o << "... " << l.count - static_cast<int64_t>(rows.size()) << " more (culvert get runs --parent " << parent
      << " --all)\n";
}

void add_run_inspect(CLI::App* run, CliContext& ctx) {
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  auto id = std::make_shared<std::string>();
  auto* inspect = run->add_subcommand("inspect", "Show a run, its task runs, and why it is waiting");
  inspect->fallthrough();
  inspect->add_option("RUN", *id, "Flow run id")->required();
  add_output_option(inspect, *cmd);
  inspect->callback([cmd, id] {
    auto& c = *cmd;
    auto api = c.api();
    if (!api) { c.fail(api.status()); return; }
    auto got = decoded((*api)->get_flow_run(*id), client::decode_flow_run);
    if (!got) { c.fail(got.status()); return; }
    const client::FlowRun& r = got->value;
    auto tasks = read_task_listing(**api, *id);
    if (!tasks) { c.fail(tasks.status()); return; }
    // The task runs' history (every Retrying state), all pages.
    std::vector<client::TaskRunHistoryEntry> history;
    json history_doc = json::array();
    for (std::string after = "0"; !after.empty();) {
      auto page = decoded((*api)->list_task_run_history(*id, after), client::decode_task_run_history);
      if (!page && page.status().code() == StatusCode::kNotFound) break;  // a server without the history
      if (!page) { c.fail(page.status()); return; }
      for (auto& e : page->value.history) history.push_back(std::move(e));
      if (page->document.contains("history") && page->document["history"].is_array())
        for (const auto& e : page->document["history"]) history_doc.push_back(e);
      after = page->value.next_cursor == after ? "" : page->value.next_cursor;
    }
    // The run's attempts, each with its own times (a server without the route: none).
    std::vector<client::FlowRunAttempt> attempts;
    json attempts_doc = json::array();
    {
      auto got_attempts = decoded((*api)->get_flow_run_attempts(*id), client::decode_attempts);
      if (!got_attempts && got_attempts.status().code() != StatusCode::kNotFound) {
        c.fail(got_attempts.status());
        return;
      }
      if (got_attempts) {
        attempts = std::move(got_attempts->value);
        attempts_doc = got_attempts->document["attempts"];
      }
    }
    // A parent's fan-out: its current attempt's children, by chunk.
    std::optional<client::ChildRunListing> children;
    json children_doc = nullptr;
    if (r.children) {
      auto got_children = decoded((*api)->list_child_runs(*id, "", static_cast<int>(r.children->parent_attempt)),
                                  client::decode_child_runs);
      if (!got_children) { c.fail(got_children.status()); return; }
      children = std::move(got_children->value);
      children_doc = std::move(got_children->document);
    }
    json diag = json::object();
    bool waiting = r.state == State::kScheduled || r.state == State::kPending;
    std::ostringstream human;
    if (waiting) {
      auto agents = decoded((*api)->list_agents(), client::decode_agents);
      if (!agents) { c.fail(agents.status()); return; }
      SysTime now = c.ctx->clock->now();
      if (auto start = parse_rfc3339(r.scheduled_start_time); start && *start > now && r.state == State::kScheduled)
        diag["waiting_for_start_time"] = format_rfc3339(*start);
      explain_waiting(r, agents->value, diag, c.json_out() ? nullptr : &human);
      if (diag.contains("waiting_for_start_time"))
        human << "  - its start time has not come yet: " << diag["waiting_for_start_time"].get<std::string>() << "\n";
    }
    if (c.json_out()) {
      json doc = got->document;
      doc["task_runs"] = tasks->task_runs_doc;
      doc["mapped_tasks"] = tasks->mapped_doc;
      doc["task_run_history"] = history_doc;
      doc["attempts"] = attempts_doc;
      if (r.children) doc["child_runs"] = children_doc;
      if (waiting) doc["diagnosis"] = diag;
      c.emit_json(doc);
      c.done();
      return;
    }
    auto& o = c.out();
    o << "flow run:    " << r.id << "\n"
      << "flow:        " << r.flow_name << " (version " << r.flow_version << ", " << r.flow_id << ")\n"
      << "state:       " << state_name(r.state) << (r.state_message.empty() ? "" : " (" + r.state_message + ")")
      << "\n"
      << "labels:      " << join(r.labels) << "\n"
      << "parameters:  " << r.parameters.dump(-1, ' ', false, json::error_handler_t::replace) << "\n"
      << "scheduled:   " << r.scheduled_start_time << "\n"
      << "agent:       " << r.agent_id.value_or("") << "\n";
    if (r.infrastructure) o << "infrastructure: " << infrastructure_text(*r.infrastructure) << "\n";
    if (r.child)
      o << "parent:      " << r.child->parent_run_id << " (task " << r.child->task << ", chunk " << r.child->chunk
        << ", map indexes " << r.child->start << ".." << r.child->end - 1 << ", its attempt "
        << r.child->parent_attempt << ")\n";
    if (children) print_children(o, r.id, *children);
    if (!attempts.empty()) {
      o << "attempts:\n";
      std::vector<std::vector<std::string>> rows;
      for (const auto& at : attempts)
        rows.push_back({std::to_string(at.attempt), at.state ? state_name(*at.state) : "", at.start_time,
                        at.end_time.value_or(""), at.agent_id.value_or(""), at.message});
      print_table(o, {"ATTEMPT", "STATE", "START", "END", "AGENT", "MESSAGE"}, rows);
    }
    print_task_table(o, *tasks);
    if (tasks->next_cursor)
      o << "(more tasks: culvert get task-runs " << r.id << " --cursor " << *tasks->next_cursor << ")\n";
    if (!history.empty()) {
      o << "task-run history:\n";
      for (const auto& h : history) {
        std::string who = h.task;
        if (h.map_index >= 0)
          who += "[" + std::to_string(h.map_index) +
                 (h.map_count > 1 ? ".." + std::to_string(h.map_index + h.map_count - 1) : "") + "]";
        o << "  " << h.timestamp << " " << who << " (run attempt " << h.run_attempt << ") attempt " << h.attempts << " "
          << (h.state ? state_name(*h.state) : "") << ": " << h.message
          << (h.next_start_time ? "; next attempt at " + *h.next_start_time : "") << "\n";
      }
    }
    o << human.str();
    c.done();
  });
}

void add_run_actions(CLI::App* run, CliContext& ctx) {
  for (const char* action : {"cancel", "retry"}) {
    auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
    auto id = std::make_shared<std::string>();
    std::string name = action;
    auto* sub = run->add_subcommand(name, name == "cancel" ? "Cancel a run" : "Run a finished run again");
    sub->fallthrough();
    sub->add_option("RUN", *id, "Flow run id")->required();
    add_output_option(sub, *cmd);
    sub->callback([cmd, id, name] {
      auto& c = *cmd;
      auto api = c.api();
      if (!api) { c.fail(api.status()); return; }
      auto r = decoded(name == "cancel" ? (*api)->cancel_flow_run(*id) : (*api)->retry_flow_run(*id),
                       client::decode_flow_run);
      if (!r) { c.fail(r.status()); return; }
      if (c.json_out()) c.emit_json(r->document);
      else c.out() << "flow run " << *id << (name == "cancel" ? " cancel requested" : " retried") << " ("
                   << state_name(r->value.state) << ")\n";
      c.done();
    });
  }
}

void add_get_runs(CLI::App& app, CliContext& ctx) {
  auto* get = subcommand(app, "get", "List runs, logs and agents");
  get->require_subcommand(1);
  auto cmd = std::make_shared<Cmd>(Cmd{&ctx});
  struct Args {
    std::string flow, project, state, cursor, parent;
    int limit = 20;
    bool all = false;
  };
  auto a = std::make_shared<Args>();
  auto* runs = get->add_subcommand("runs", "List flow runs, newest first");
  runs->fallthrough();
  runs->add_option("--flow", a->flow, "Flow id or name (latest version)");
  runs->add_option("--project", a->project, "Project of the --flow name");
  runs->add_option("--state", a->state, "Only runs in this state (e.g. Running, Failed)");
  auto* limit = runs->add_option("--limit", a->limit, "At most N runs (1-1000, default 20); with --all: runs per page (default 1000)")
                    ->check(CLI::Range(1, 1000));
  runs->add_option("--cursor", a->cursor, "Start at this cursor (printed after a listing that has more runs)");
  runs->add_flag("--all", a->all, "Every run: follow the cursors to the end");
  runs->add_option("--parent", a->parent, "Only the child runs of this flow run (a distributed map's chunks)");
  add_output_option(runs, *cmd);
  runs->callback([cmd, a, limit] {
    auto& c = *cmd;
    if (!a->state.empty() && !parse_state(a->state)) {
      c.usage("--state '" + a->state + "' is not a state (Scheduled, Pending, Submitted, Running, "
              "Retrying, Cancelling, Success, Failed, TimedOut, Crashed, Cancelled, ...)");
      return;
    }
    if (a->cursor.size() > kMaxCursorLength ||
        std::any_of(a->cursor.begin(), a->cursor.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x21; })) {
      c.usage("--cursor '" + a->cursor.substr(0, 64) + "' is not a cursor of `culvert get runs`");
      return;
    }
    auto api = c.api();
    if (!api) { c.fail(api.status()); return; }
    client::FlowRunFilter f;
    if (!a->flow.empty()) {
      auto flow = resolve_flow(**api, a->flow, a->project);
      if (!flow) { c.fail(flow.status()); return; }
      f.flow_id = flow->value.id;
    }
    if (!a->state.empty()) f.state = a->state;
    if (!a->parent.empty()) f.parent = a->parent;
    f.limit = a->all && limit->count() == 0 ? 1000 : a->limit;
    if (!a->cursor.empty()) f.cursor = a->cursor;
    json documents = json::array();
    std::vector<client::FlowRun> listed;
    std::optional<std::string> next;
    std::set<std::string> seen;
    while (true) {
      auto page = decoded((*api)->list_flow_runs(f), client::decode_flow_run_page);
      if (!page) { c.fail(page.status()); return; }
      next = page->value.next_cursor;
      if (!a->all) {
        documents = std::move(page->document);  // the server's page as it came
        listed = std::move(page->value.runs);
        break;
      }
      for (auto& d : page->document["runs"]) documents.push_back(std::move(d));
      for (auto& r : page->value.runs) listed.push_back(std::move(r));
      if (!next) break;
      if (listed.size() > kMaxAllRuns) {
        c.fail(invalid_argument("more than " + std::to_string(kMaxAllRuns) +
                                " runs: narrow the listing (--flow, --state) or page through it with --cursor " +
                                *next));
        return;
      }
      if (!seen.insert(*next).second) {
        c.fail(internal_error("the server's answer is malformed: next_cursor '" + next->substr(0, 64) +
                              "' repeats an earlier page"));
        return;
      }
      f.cursor = *next;
    }
    if (c.json_out()) {
      c.emit_json(a->all ? json{{"runs", std::move(documents)}, {"next_cursor", nullptr}} : documents);
      c.done();
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : listed)
      rows.push_back({r.id, r.flow_name, state_name(r.state), r.scheduled_start_time, r.start_time.value_or(""),
                      r.end_time.value_or(""), join(r.labels)});
    print_table(c.out(), {"ID", "FLOW", "STATE", "SCHEDULED", "STARTED", "ENDED", "LABELS"}, rows);
    if (next) c.out() << "next cursor: " << *next << " (more runs: repeat with --cursor " << *next << ")\n";
    c.done();
  });
}

}  // namespace

void add_run_commands(CLI::App& app, CliContext& ctx) {
  auto* run = subcommand(app, "run", "Create a flow run (run FLOW --project P), or inspect/cancel/retry one");
  add_run_create(run, ctx);
  add_run_inspect(run, ctx);
  add_run_actions(run, ctx);
  add_get_runs(app, ctx);
}

}  // namespace culvert::cli
