// SqlStore (sql_store_impl.hpp): flow runs — creation, listing, state changes, history,
// claims, staleness.
#include "store/sql_store_impl.hpp"

#include <charconv>
#include <tuple>

#include "core/crypto.hpp"
#include "core/json_text.hpp"
#include "core/labels.hpp"

namespace culvert::store::detail {

namespace {

constexpr const char* kRunColumns =
    "SELECT r.id, r.flow_id, r.project_id, f.name, f.version, r.parameters_json, r.labels, "
    "r.idempotency_key, r.auto_scheduled, r.state, r.state_message, r.version, r.run_count, "
    "r.agent_id, r.created, r.state_changed_at, r.scheduled_start_time, r.submitted_at, "
    "r.start_time, r.end_time, r.heartbeat_at, COALESCE(r.run_config_json, f.run_config_json), r.run_config_type, "
    "r.infra_kind, r.infra_id, r.infra_agent_id, r.infra_reported_at, r.parent_run_id, r.map_task, r.map_chunk, "
    "r.map_start, r.map_end, r.parent_attempt FROM flow_runs r JOIN flows f ON f.id = r.flow_id ";

FlowRun to_run(const Row& r) {
  FlowRun run;
  run.id = r.str(0);
  run.flow_id = r.str(1);
  run.project_id = r.str(2);
  run.flow_name = r.str(3);
  run.flow_version = static_cast<int>(r.i64(4));
  run.parameters_json = r.str(5);
  run.labels = parse_labels(r.str(6));
  run.idempotency_key = r.opt(7);
  run.auto_scheduled = r.i64(8) != 0;
  run.state = row_state(r, 9);
  run.state_message = r.str(10);
  run.version = r.i64(11);
  run.run_count = static_cast<int>(r.i64(12));
  run.agent_id = r.opt(13);
  run.created = r.time(14);
  run.state_changed_at = r.time(15);
  run.scheduled_start_time = r.time(16);
  run.submitted_at = r.opt_time(17);
  run.start_time = r.opt_time(18);
  run.end_time = r.opt_time(19);
  run.heartbeat_at = r.opt_time(20);
  run.run_config_json = r.str(21);
  run.run_config_type = r.str(22);
  if (!r.is_null(23)) {
    Infrastructure i;
    i.kind = r.str(23);
    i.id = r.str(24);
    i.agent_id = r.opt(25).value_or("");
    i.reported_at = r.time(26);
    run.infrastructure = std::move(i);
  }
  if (!r.is_null(27)) {
    ChildRun c;
    c.parent_run_id = r.str(27);
    c.task = r.opt(28).value_or("");
    c.chunk = static_cast<int>(r.i64(29));
    c.start = r.i64(30);
    c.end = r.i64(31);
    c.parent_attempt = static_cast<int>(r.i64(32));
    run.child = std::move(c);
  }
  return run;
}


// The states in which a run is waiting to be claimed once due. Written as literals in
// the claim query so that the partial index flow_runs_due applies.
constexpr const char* kDueStates = "('Scheduled', 'Pending', 'Retrying')";

std::string encode_cursor(const FlowRun& last) { return flow_run_cursor(last); }

bool decode_cursor(const std::string& cursor, int64_t* created, std::string* id) {
  auto sep = cursor.find('_');
  if (sep == std::string::npos || sep == 0 || sep + 1 >= cursor.size()) return false;
  auto [p, ec] = std::from_chars(cursor.data(), cursor.data() + sep, *created);
  if (ec != std::errc() || p != cursor.data() + sep) return false;
  *id = cursor.substr(sep + 1);
  return true;
}

}  // namespace

Result<std::pair<FlowRun, bool>> SqlStore::create_flow_run(const NewFlowRun& spec) {
  if (spec.initial_state != State::kScheduled && spec.initial_state != State::kPending)
    return invalid_argument(std::string("a new flow run starts Scheduled or Pending, not ") +
                            state_name(spec.initial_state));
  if (spec.idempotency_key && spec.idempotency_key->empty())
    return invalid_argument("idempotency_key must not be empty");
  return transact(
      TxMode::kWrite,
      [&]() -> Result<std::pair<FlowRun, bool>> {
        auto frows = db_->query("SELECT project_id, labels, run_config_type FROM flows WHERE id = ?", {spec.flow_id});
        if (frows.empty()) return not_found("flow '" + spec.flow_id + "' does not exist");
        if (spec.idempotency_key) {
          auto rows = db_->query(std::string(kRunColumns) + "WHERE r.flow_id = ? AND r.idempotency_key = ?",
                                 {spec.flow_id, *spec.idempotency_key});
          if (!rows.empty()) return std::make_pair(to_run(rows[0]), false);
        }
        std::string labels = spec.labels ? labels_json(*spec.labels) : frows[0].str(1);
        int64_t label_set = label_set_id(labels);
        int64_t now = now_ms();
        int64_t due = spec.scheduled_start_time ? to_unix_ms(*spec.scheduled_start_time) : now;
        std::string id = new_uuid();
        db_->exec(
            "INSERT INTO flow_runs (id, flow_id, project_id, parameters_json, labels, label_set_id, "
            "idempotency_key, auto_scheduled, state, state_message, version, run_count, created, "
            "state_changed_at, scheduled_start_time, run_config_type) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?, ?)",
            {id, spec.flow_id, frows[0].str(0), spec.parameters_json, labels, label_set,
             opt_value(spec.idempotency_key), int64_t{spec.auto_scheduled ? 1 : 0},
             std::string(state_name(spec.initial_state)), spec.state_message, now, now, due, frows[0].str(2)});
        append_history(id, std::nullopt, spec.initial_state, spec.state_message, 1, false, std::nullopt, now);
        auto run = load_run(id, false);
        if (!run) return run.status();
        return std::make_pair(std::move(run).value(), true);
      },
      /*retry_unique=*/true);
}

Result<FlowRun> SqlStore::get_flow_run(const std::string& id) {
  return transact(TxMode::kRead, [&]() -> Result<FlowRun> { return load_run(id, false); });
}

Result<FlowRunPage> SqlStore::list_flow_runs(const FlowRunQuery& q) {
  if (q.limit < 1 || q.limit > 1000) return invalid_argument("limit must be between 1 and 1000");
  int64_t c_created = 0;
  std::string c_id;
  if (!q.cursor.empty() && !decode_cursor(q.cursor, &c_created, &c_id))
    return invalid_argument("malformed cursor '" + q.cursor + "'");
  return transact(TxMode::kRead, [&]() -> Result<FlowRunPage> {
    std::string sql = kRunColumns;
    Params params;
    std::vector<std::string> conds;
    if (q.flow_id) {
      conds.push_back("r.flow_id = ?");
      params.push_back(*q.flow_id);
    }
    if (q.project_id) {
      conds.push_back("r.project_id = ?");
      params.push_back(*q.project_id);
    }
    if (!q.states.empty()) {
      std::string in;
      for (State st : q.states) {
        in += in.empty() ? "?" : ", ?";
        params.push_back(std::string(state_name(st)));
      }
      conds.push_back(q.states.size() == 1 ? "r.state = ?" : "r.state IN (" + in + ")");
    }
    if (q.agent_id) {
      conds.push_back("r.agent_id = ?");
      params.push_back(*q.agent_id);
    }
    if (q.parent_run_id) {
      conds.push_back("r.parent_run_id = ?");
      params.push_back(*q.parent_run_id);
    }
    if (q.label) {
      // Label sets are stored as JSON arrays of strings: look for the label's quoted
      // form (case-sensitive on both databases).
      std::string quoted = labels_json({*q.label});
      quoted = quoted.substr(1, quoted.size() - 2);
      conds.push_back(db_->dialect() == Dialect::kPostgres
                          ? "r.label_set_id IN (SELECT id FROM label_sets WHERE strpos(labels, ?) > 0)"
                          : "r.label_set_id IN (SELECT id FROM label_sets WHERE instr(labels, ?) > 0)");
      params.push_back(quoted);
    }
    if (q.created_after) {
      conds.push_back("r.created >= CAST(? AS BIGINT)");
      params.push_back(to_unix_ms(*q.created_after));
    }
    if (q.created_before) {
      conds.push_back("r.created < CAST(? AS BIGINT)");
      params.push_back(to_unix_ms(*q.created_before));
    }
    if (!q.cursor.empty()) {
      // A row-value comparison, so that both databases use it as an index range.
      conds.push_back("(r.created, r.id) < (CAST(? AS BIGINT), ?)");
      params.push_back(c_created);
      params.push_back(c_id);
    }
    for (size_t i = 0; i < conds.size(); ++i) sql += (i == 0 ? "WHERE " : " AND ") + conds[i];
    sql += " ORDER BY r.created DESC, r.id DESC LIMIT ?";
    params.push_back(int64_t{q.limit + 1});
    FlowRunPage page;
    for (const auto& r : db_->query(sql, params)) page.runs.push_back(to_run(r));
    if (static_cast<int>(page.runs.size()) > q.limit) {
      page.runs.pop_back();
      page.next_cursor = encode_cursor(page.runs.back());
    }
    return page;
  });
}

Result<std::optional<SysTime>> SqlStore::latest_auto_scheduled_start(const std::string& flow_id) {
  return transact(TxMode::kRead, [&]() -> Result<std::optional<SysTime>> {
    auto rows = db_->query(
        "SELECT MAX(scheduled_start_time) FROM flow_runs WHERE flow_id = ? AND auto_scheduled = 1", {flow_id});
    return rows.at(0).opt_time(0);
  });
}

Result<FlowRun> SqlStore::set_flow_run_state(const SetFlowRunState& c) {
  return transact(TxMode::kWrite, [&]() -> Result<FlowRun> {
    auto loaded = load_run(c.run_id, /*lock=*/true);
    if (!loaded) return loaded.status();
    FlowRun run = std::move(loaded).value();
    if (c.expected_version && *c.expected_version != run.version)
      return conflict("stale version: flow run " + run.id + " is at version " + std::to_string(run.version) +
                      " (state " + state_name(run.state) + "), the change expected version " +
                      std::to_string(*c.expected_version));
    Status legal = check_flow_run_transition(run.state, c.state, c.forced);
    if (!legal.is_ok()) return legal;
    return apply_state_change(std::move(run), c.state, c.message, c.forced, c.scheduled_start_time, to_unix_ms(c.now));
  });
}

Result<FlowRun> SqlStore::apply_state_change(FlowRun run, State to, const std::string& message, bool forced,
                                             std::optional<SysTime> scheduled_start_time, int64_t now) {
  State from = run.state;
  run.state = to;
  run.state_message = message;
  run.state_changed_at = from_unix_ms(now);
  if (to == State::kRunning) {
    run.run_count += 1;  // the next attempt: its own start, no end yet
    run.start_time = from_unix_ms(now);
    run.end_time.reset();
    run.heartbeat_at = from_unix_ms(now);
  }
  if (to == State::kSubmitted) run.submitted_at = from_unix_ms(now);
  if (is_final(to)) run.end_time = from_unix_ms(now);
  const bool waiting = to == State::kScheduled || to == State::kPending || to == State::kRetrying;
  if (waiting) {
    run.agent_id.reset();
    run.submitted_at.reset();
    run.start_time.reset();  // the attempt that ended keeps its times (flow_run_attempts)
    run.end_time.reset();
    run.infrastructure.reset();
  }
  if (scheduled_start_time) run.scheduled_start_time = *scheduled_start_time;
  int64_t changed = db_->exec(
      "UPDATE flow_runs SET state = ?, state_message = ?, version = version + 1, run_count = ?, "
      "agent_id = ?, state_changed_at = ?, scheduled_start_time = ?, submitted_at = ?, start_time = ?, "
      "end_time = ?, heartbeat_at = ?" +
          std::string(run.infrastructure ? "" : ", infra_kind = NULL, infra_id = NULL, infra_agent_id = NULL, "
                                                "infra_reported_at = NULL") +
          " WHERE id = ? AND version = ?",
      {std::string(state_name(run.state)), run.state_message, int64_t{run.run_count}, opt_value(run.agent_id), now,
       time_value(run.scheduled_start_time), opt_time_value(run.submitted_at), opt_time_value(run.start_time),
       opt_time_value(run.end_time), opt_time_value(run.heartbeat_at), run.id, run.version});
  if (changed != 1) return conflict("stale version: flow run " + run.id + " changed concurrently");
  run.version += 1;
  append_history(run.id, from, run.state, run.state_message, run.version, forced, run.agent_id, now);
  record_attempt(run, now);
  // Child runs never have children of their own (create_child_runs refuses them).
  if (!run.child && (is_final(to) || to == State::kCancelling || waiting)) {
    if (Status s = end_children(run, now); !s) return s;
  }
  return run;
}

Status SqlStore::end_children(const FlowRun& parent, int64_t now) {
  auto rows = db_->query(
      "SELECT id FROM flow_runs WHERE parent_run_id = ? AND state NOT IN ('Success', 'Failed', 'TimedOut', "
      "'Crashed', 'Cancelled', 'Cached', 'Skipped', 'TriggerFailed', 'Cancelling') ORDER BY id" +
          for_update(""),
      {parent.id});
  std::string message;
  if (parent.state == State::kCancelling || parent.state == State::kCancelled)
    message = "the parent flow run " + parent.id + " was cancelled: " + parent.state_message;
  else if (is_final(parent.state))
    message = "the parent flow run " + parent.id + " ended " + state_name(parent.state);
  else
    message = "the parent flow run " + parent.id + " went back to " + state_name(parent.state) +
              " (its next attempt creates its own child runs)";
  message = bound_message(std::move(message));
  for (const auto& r : rows) {
    auto child = load_run(r.str(0), /*lock=*/false);
    if (!child) return child.status();
    State to = (child->state == State::kSubmitted || child->state == State::kRunning) ? State::kCancelling
                                                                                        : State::kCancelled;
    if (Status legal = check_flow_run_transition(child->state, to); !legal) continue;
    auto done = apply_state_change(std::move(child).value(), to, message, false, std::nullopt, now);
    if (!done) return done.status();
  }
  return Status::ok();
}

// Keeps the run's current attempt up to date after a state change: Running begins
// attempt run_count; while it goes on, each change is its state; a final state or a
// way back to the queue ends it. An attempt that has ended is never changed again.
void SqlStore::record_attempt(const FlowRun& run, int64_t now) {
  if (run.run_count < 1) return;
  if (run.state == State::kRunning) {
    db_->exec("INSERT INTO flow_run_attempts (flow_run_id, attempt, state, message, agent_id, start_time, end_time) "
              "VALUES (?, ?, ?, ?, ?, ?, NULL)",
              {run.id, int64_t{run.run_count}, std::string(state_name(run.state)), run.state_message,
               opt_value(run.agent_id), now});
    return;
  }
  const bool ends = is_final(run.state) || run.state == State::kScheduled || run.state == State::kPending ||
                    run.state == State::kRetrying;
  db_->exec("UPDATE flow_run_attempts SET state = ?, message = ?, end_time = ? "
            "WHERE flow_run_id = ? AND attempt = ? AND end_time IS NULL",
            {std::string(state_name(run.state)), run.state_message, ends ? Value(now) : null_value(), run.id,
             int64_t{run.run_count}});
}

Result<std::vector<FlowRunAttempt>> SqlStore::list_flow_run_attempts(const std::string& run_id) {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<FlowRunAttempt>> {
    auto rows = db_->query(
        "SELECT flow_run_id, attempt, state, message, agent_id, start_time, end_time "
        "FROM flow_run_attempts WHERE flow_run_id = ? ORDER BY attempt",
        {run_id});
    if (rows.empty() && !run_exists(run_id)) return not_found("flow run '" + run_id + "' does not exist");
    std::vector<FlowRunAttempt> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      FlowRunAttempt a;
      a.flow_run_id = r.str(0);
      a.attempt = static_cast<int>(r.i64(1));
      a.state = row_state(r, 2);
      a.message = r.str(3);
      a.agent_id = r.opt(4);
      a.start_time = r.time(5);
      a.end_time = r.opt_time(6);
      out.push_back(std::move(a));
    }
    return out;
  });
}

Result<std::vector<StateChange>> SqlStore::get_flow_run_history(const std::string& run_id, int64_t after_id,
                                                                int limit) {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<StateChange>> {
    std::string sql =
        "SELECT id, flow_run_id, from_state, state, message, version, forced, agent_id, ts "
        "FROM flow_run_states WHERE flow_run_id = ? AND id > ? ORDER BY id";
    Params params{run_id, after_id};
    if (limit > 0) {
      sql += " LIMIT ?";
      params.push_back(int64_t{limit});
    }
    auto rows = db_->query(sql, params);
    // Every run has its creation in its history: no rows from the start means no run.
    if (rows.empty() && after_id <= 0) return not_found("flow run '" + run_id + "' does not exist");
    std::vector<StateChange> out;
    for (const auto& r : rows) {
      StateChange s;
      s.id = r.i64(0);
      s.flow_run_id = r.str(1);
      if (!r.is_null(2)) s.from_state = row_state(r, 2);
      s.state = row_state(r, 3);
      s.message = r.str(4);
      s.version = r.i64(5);
      s.forced = r.i64(6) != 0;
      s.agent_id = r.opt(7);
      s.timestamp = r.time(8);
      out.push_back(std::move(s));
    }
    return out;
  });
}

Result<FlowRun> SqlStore::heartbeat_flow_run(const std::string& run_id, SysTime now) {
  return transact(TxMode::kWrite, [&]() -> Result<FlowRun> {
    if (db_->exec("UPDATE flow_runs SET heartbeat_at = ? WHERE id = ?", {time_value(now), run_id}) == 0)
      return not_found("flow run '" + run_id + "' does not exist");
    return load_run(run_id, false);
  });
}

Result<FlowRun> SqlStore::set_flow_run_infrastructure(const std::string& run_id, const std::string& agent_id,
                                                      const std::string& kind, const std::string& infra_id,
                                                      SysTime now) {
  if (kind.empty() || infra_id.empty()) return invalid_argument("an infrastructure kind and id must not be empty");
  return transact(TxMode::kWrite, [&]() -> Result<FlowRun> {
    auto run = load_run(run_id, /*lock=*/true);
    if (!run) return run.status();
    if (run->agent_id != agent_id)
      return conflict("flow run " + run_id + " is not on agent " + agent_id + " (" +
                      (run->agent_id ? "it is on agent " + *run->agent_id : std::string("it is on no agent")) +
                      ", state " + state_name(run->state) + ")");
    if (db_->exec("UPDATE flow_runs SET infra_kind = ?, infra_id = ?, infra_agent_id = ?, infra_reported_at = ? "
                  "WHERE id = ? AND agent_id = ?",
                  {kind, infra_id, agent_id, time_value(now), run_id, agent_id}) != 1)
      return conflict("flow run " + run_id + " changed concurrently");
    return load_run(run_id, false);
  });
}

Result<std::vector<FlowRun>> SqlStore::claim_runs(const ClaimRequest& req) {
  if (req.max < 1 || req.max > 1000) return invalid_argument("max must be between 1 and 1000");
  if (req.agent_id.empty()) return invalid_argument("agent_id must not be empty");
  return transact(TxMode::kWrite, [&]() -> Result<std::vector<FlowRun>> {
    std::vector<FlowRun> claimed;
    // 0. A deregistered agent claims nothing until it registers again.
    auto agent = db_->query("SELECT stopped_at FROM agents WHERE id = ?", {req.agent_id});
    if (!agent.empty() && !agent[0].is_null(0))
      return conflict("agent " + req.agent_id + " is stopped (deregistered); register it again to claim runs");
    // 1. The label sets this agent covers (label sets are few: one per distinct
    //    combination of run labels ever used).
    std::vector<int64_t> covered;
    for (const auto& r : db_->query("SELECT id, labels FROM label_sets"))
      if (labels_cover(req.agent_labels, parse_labels(r.str(1)))) covered.push_back(r.i64(0));
    if (covered.empty()) return claimed;
    // The run-config types it takes: its own and "" (a run config without a type).
    // Without a list, every type a flow version has.
    std::vector<std::string> types;
    if (req.run_config_types) {
      types = *req.run_config_types;
      types.push_back("");
    } else {
      // The flow versions' types and those of child runs with their own run config.
      for (const auto& r : db_->query("SELECT DISTINCT run_config_type FROM flows UNION SELECT DISTINCT "
                                      "run_config_type FROM flow_runs WHERE run_config_json IS NOT NULL"))
        types.push_back(r.str(0));
    }
    std::sort(types.begin(), types.end());
    types.erase(std::unique(types.begin(), types.end()), types.end());
    if (types.empty()) return claimed;
    // 2. Due runs of those sets and types, oldest due first, via the partial index
    //    flow_runs_due (label set, type, due time). Runs of sets the agent does not
    //    cover, or of types it does not launch, are never read.
    struct Candidate {
      int64_t due;
      std::string id;
      State state;
      int64_t version;
    };
    std::vector<Candidate> cands;
    const std::string lock = db_->dialect() == Dialect::kPostgres ? " FOR UPDATE SKIP LOCKED" : "";
    const std::string base = std::string("SELECT scheduled_start_time, id, state, version FROM flow_runs WHERE ") +
                             "state IN " + kDueStates + " AND scheduled_start_time <= ? AND ";
    auto collect = [&](const std::vector<Row>& rows) {
      for (const auto& r : rows) cands.push_back({r.i64(0), r.str(1), row_state(r, 2), r.i64(3)});
    };
    if (covered.size() * types.size() <= 16) {
      // One index range per (set, type), each read no further than `max` rows.
      for (int64_t set : covered)
        for (const auto& type : types)
          collect(db_->query(
              base + "label_set_id = ? AND run_config_type = ? ORDER BY scheduled_start_time, id LIMIT ?" + lock,
              {time_value(req.now), set, type, int64_t{req.max}}));
    } else {
      std::string sets, in_types;
      Params params{time_value(req.now)};
      for (int64_t set : covered) {
        sets += sets.empty() ? "?" : ", ?";
        params.push_back(set);
      }
      for (const auto& type : types) {
        in_types += in_types.empty() ? "?" : ", ?";
        params.push_back(type);
      }
      params.push_back(int64_t{req.max});
      collect(db_->query(base + "label_set_id IN (" + sets + ") AND run_config_type IN (" + in_types +
                             ") ORDER BY scheduled_start_time, id LIMIT ?" + lock,
                         params));
    }
    std::sort(cands.begin(), cands.end(),
              [](const Candidate& a, const Candidate& b) { return std::tie(a.due, a.id) < std::tie(b.due, b.id); });
    if (static_cast<int>(cands.size()) > req.max) cands.resize(req.max);
    // 3. Submit them.
    int64_t now = to_unix_ms(req.now);
    const std::string message = "claimed by agent " + req.agent_id;
    for (const auto& c : cands) {
      Status legal = check_flow_run_transition(c.state, State::kSubmitted);
      if (!legal.is_ok()) continue;  // cannot happen for the due states; be safe
      int64_t changed = db_->exec(
          "UPDATE flow_runs SET state = 'Submitted', state_message = ?, version = version + 1, agent_id = ?, "
          "submitted_at = ?, state_changed_at = ?, infra_kind = NULL, infra_id = NULL, infra_agent_id = NULL, "
          "infra_reported_at = NULL WHERE id = ? AND version = ?",
          {message, req.agent_id, now, now, c.id, c.version});
      if (changed != 1) continue;
      append_history(c.id, c.state, State::kSubmitted, message, c.version + 1, false, req.agent_id, now);
      auto run = load_run(c.id, false);
      if (!run) return run.status();
      if (req.run_token) {
        Status s = insert_token(req.run_token(*run));
        if (!s.is_ok()) return s;
      }
      claimed.push_back(std::move(run).value());
    }
    return claimed;
  });
}

Result<std::vector<FlowRun>> SqlStore::find_stale_running_runs(SysTime cutoff, int limit) {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<FlowRun>> {
    std::vector<FlowRun> out;
    for (const auto& r : db_->query(
             std::string(kRunColumns) +
                 "WHERE r.state IN ('Running', 'Cancelling') AND "
                 "COALESCE(r.heartbeat_at, r.start_time, r.state_changed_at) < ? "
                 "ORDER BY COALESCE(r.heartbeat_at, r.start_time, r.state_changed_at), r.id LIMIT ?",
             {time_value(cutoff), int64_t{limit}}))
      out.push_back(to_run(r));
    return out;
  });
}

Result<std::vector<FlowRun>> SqlStore::find_stale_submitted_runs(SysTime cutoff, int limit,
                                                                 std::optional<SysTime> starting_agents_alive_since) {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<FlowRun>> {
    std::vector<FlowRun> out;
    std::string sql = std::string(kRunColumns) + "WHERE r.state = 'Submitted' AND r.submitted_at < ? ";
    Params params = {time_value(cutoff)};
    if (starting_agents_alive_since) {
      // Not a run its live agent reported starting.
      sql += "AND NOT (r.infra_id IS NOT NULL AND r.infra_agent_id = r.agent_id AND EXISTS ("
             "SELECT 1 FROM agents a WHERE a.id = r.agent_id AND a.stopped_at IS NULL AND a.last_heartbeat >= ?)) ";
      params.push_back(time_value(*starting_agents_alive_since));
    }
    sql += "ORDER BY r.submitted_at, r.id LIMIT ?";
    params.push_back(int64_t{limit});
    for (const auto& r : db_->query(sql, params)) out.push_back(to_run(r));
    return out;
  });
}

Result<FlowRun> SqlStore::load_run(const std::string& id, bool lock) {
  auto rows = db_->query(std::string(kRunColumns) + "WHERE r.id = ?" + (lock ? for_update("r") : ""), {id});
  if (rows.empty()) return not_found("flow run '" + id + "' does not exist");
  return to_run(rows[0]);
}

// The id of a label set (a JSON array of normalized labels), created when new.
int64_t SqlStore::label_set_id(const std::string& labels) {
  auto rows = db_->query("SELECT id FROM label_sets WHERE labels = ?", {labels});
  if (rows.empty()) {
    db_->exec("INSERT INTO label_sets (labels) VALUES (?) ON CONFLICT (labels) DO NOTHING", {labels});
    rows = db_->query("SELECT id FROM label_sets WHERE labels = ?", {labels});
  }
  return rows.at(0).i64(0);
}

// Every state change goes through here: the history row and the state counts.
void SqlStore::append_history(const std::string& run_id, std::optional<State> from, State to, const std::string& message,
                              int64_t version, bool forced, const std::optional<std::string>& agent_id, int64_t ts) {
  uint32_t h = 2166136261u;
  for (unsigned char ch : run_id) h = (h ^ ch) * 16777619u;
  int shard = static_cast<int>(h % 16);
  count_deltas_[{state_name(to), shard}] += 1;
  if (from) count_deltas_[{state_name(*from), shard}] -= 1;
  db_->exec(
      "INSERT INTO flow_run_states (flow_run_id, from_state, state, message, version, forced, agent_id, ts) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      {run_id, from ? Value(std::string(state_name(*from))) : null_value(), std::string(state_name(to)), message,
       version, int64_t{forced ? 1 : 0}, opt_value(agent_id), ts});
}

// One counting query per state, so that each is a range of the (state, created, id)
// index and reads no table row, however many runs there are.
Result<Dashboard> SqlStore::dashboard(SysTime since, SysTime late_before, int late_limit) {
  return transact(TxMode::kRead, [&]() -> Result<Dashboard> {
    Dashboard d;
    for (int s = 0; s <= static_cast<int>(State::kCancelled); ++s) {
      State st = static_cast<State>(s);
      auto rows = db_->query("SELECT COUNT(*) FROM flow_runs WHERE state = ? AND created >= CAST(? AS BIGINT)",
                             {std::string(state_name(st)), to_unix_ms(since)});
      if (int64_t n = rows.at(0).i64(0); n > 0) d.created_since_by_state.push_back({st, n});
    }
    const char* late = "r.state IN ('Scheduled', 'Pending') AND r.scheduled_start_time < CAST(? AS BIGINT)";
    d.late_count = db_->query(std::string("SELECT COUNT(*) FROM flow_runs r WHERE ") + late, {to_unix_ms(late_before)})
                       .at(0)
                       .i64(0);
    if (late_limit > 0 && d.late_count > 0) {
      for (const auto& r : db_->query(std::string(kRunColumns) + "WHERE " + late +
                                          " ORDER BY r.scheduled_start_time, r.id LIMIT ?",
                                      {to_unix_ms(late_before), int64_t{late_limit}}))
        d.late_runs.push_back(to_run(r));
    }
    for (const auto& r : db_->query(
             "SELECT agent_id, COUNT(*) FROM flow_runs WHERE state IN ('Submitted', 'Running', 'Cancelling') "
             "AND agent_id IS NOT NULL GROUP BY agent_id ORDER BY agent_id"))
      d.in_flight_by_agent.emplace_back(r.str(0), r.i64(1));
    return d;
  });
}

}  // namespace culvert::store::detail

namespace culvert::store {

std::string flow_run_cursor(const FlowRun& run) { return std::to_string(to_unix_ms(run.created)) + "_" + run.id; }

}  // namespace culvert::store
