// The Store implementation shared by SQLite and PostgreSQL (see sql_store.hpp).
//
// Every public method runs in one transaction through transact(), which serializes
// calls on this connection, retries transactions that lost a race (busy database,
// serialization failure, deadlock, or a unique-key race where a retry finds the
// winner's row), and converts database errors into Status values.
#include "store/sql_store.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/crypto.hpp"
#include "core/labels.hpp"
#include "core/timefmt.hpp"
#include "store/sql.hpp"
#include "store/task_run_ranges.hpp"

namespace culvert::store::detail {

Value time_value(SysTime t) { return to_unix_ms(t); }
Value opt_time_value(const std::optional<SysTime>& t) {
  return t ? Value(to_unix_ms(*t)) : Value(std::monostate{});
}

const std::string& Row::str(size_t i) const {
  static const std::string kEmpty;
  const auto& c = cols_.at(i);
  return c ? *c : kEmpty;
}

int64_t Row::i64(size_t i) const {
  const auto& c = cols_.at(i);
  if (!c) return 0;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(c->data(), c->data() + c->size(), v);
  if (ec != std::errc()) throw DbError(DbError::Kind::kOther, "not an integer in column " + std::to_string(i) + ": '" + *c + "'");
  return v;
}

SysTime Row::time(size_t i) const { return from_unix_ms(i64(i)); }

std::optional<SysTime> Row::opt_time(size_t i) const {
  if (is_null(i)) return std::nullopt;
  return time(i);
}

namespace {

struct Unit {};

std::string labels_json(const std::vector<std::string>& labels) {
  return nlohmann::json(normalize_labels(labels)).dump();
}

std::vector<std::string> parse_labels(const std::string& text) {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& e : j)
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

State row_state(const Row& row, size_t i) {
  auto s = parse_state(row.str(i));
  if (!s) throw DbError(DbError::Kind::kOther, "unknown state '" + row.str(i) + "' in the database");
  return *s;
}

constexpr const char* kFlowColumns =
    "SELECT f.id, f.project_id, p.name, f.name, f.version, f.archived, f.artifact_uri, "
    "f.artifact_sha256, f.description_json, f.labels, f.schedule_json, f.schedule_active, "
    "f.max_run_retries, f.idempotency_key, f.created FROM flows f JOIN projects p ON p.id = f.project_id ";

Flow to_flow(const Row& r) {
  Flow f;
  f.id = r.str(0);
  f.project_id = r.str(1);
  f.project_name = r.str(2);
  f.name = r.str(3);
  f.version = static_cast<int>(r.i64(4));
  f.archived = r.i64(5) != 0;
  f.artifact_uri = r.str(6);
  f.artifact_sha256 = r.str(7);
  f.description_json = r.str(8);
  f.labels = parse_labels(r.str(9));
  f.schedule_json = r.opt(10);
  f.schedule_active = r.i64(11) != 0;
  f.max_run_retries = static_cast<int>(r.i64(12));
  f.idempotency_key = r.opt(13);
  f.created = r.time(14);
  return f;
}

constexpr const char* kRunColumns =
    "SELECT r.id, r.flow_id, r.project_id, f.name, f.version, r.parameters_json, r.labels, "
    "r.idempotency_key, r.auto_scheduled, r.state, r.state_message, r.version, r.run_count, "
    "r.agent_id, r.created, r.state_changed_at, r.scheduled_start_time, r.submitted_at, "
    "r.start_time, r.end_time, r.heartbeat_at FROM flow_runs r JOIN flows f ON f.id = r.flow_id ";

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
  return run;
}

// A task_runs row (a range of alike task runs, see task_run_ranges.hpp); column 10 is
// the task.
constexpr const char* kRangeColumns =
    "SELECT map_index, map_count, id, state, message, attempts, created, updated, start_time, end_time, task "
    "FROM task_runs ";

StoredRange to_range(const Row& r) {
  StoredRange s;
  s.lo = r.i64(0);
  s.count = r.i64(1);
  s.id = r.opt(2);
  s.f.state = row_state(r, 3);
  s.f.message = r.str(4);
  s.f.attempts = r.i64(5);
  s.f.created = r.i64(6);
  s.f.updated = r.i64(7);
  if (!r.is_null(8)) s.f.start = r.i64(8);
  if (!r.is_null(9)) s.f.end = r.i64(9);
  return s;
}

constexpr const char* kAgentColumns =
    "SELECT id, name, type, labels, created, last_heartbeat FROM agents ";

Agent to_agent(const Row& r) {
  Agent a;
  a.id = r.str(0);
  a.name = r.str(1);
  a.type = r.str(2);
  a.labels = parse_labels(r.str(3));
  a.created = r.time(4);
  a.last_heartbeat = r.opt_time(5);
  return a;
}

constexpr const char* kTokenColumns =
    "SELECT id, name, scope, flow_run_id, created, expires, revoked_at FROM tokens ";

Token to_token(const Row& r) {
  Token t;
  t.id = r.str(0);
  t.name = r.str(1);
  t.scope = r.str(2);
  t.flow_run_id = r.opt(3);
  t.created = r.time(4);
  t.expires = r.opt_time(5);
  t.revoked_at = r.opt_time(6);
  return t;
}

constexpr const char* kProjectColumns = "SELECT id, name, description, created FROM projects ";

Project to_project(const Row& r) {
  return Project{r.str(0), r.str(1), r.str(2), r.time(3)};
}

constexpr const char* kLogColumns =
    "SELECT id, flow_run_id, task_run_id, task, map_index, level, message, ts FROM logs ";

LogRecord to_log(const Row& r) {
  LogRecord l;
  l.id = r.i64(0);
  l.flow_run_id = r.str(1);
  l.task_run_id = r.opt(2);
  l.task = r.opt(3);
  l.map_index = static_cast<int>(r.i64(4));
  l.level = r.str(5);
  l.message = r.str(6);
  l.timestamp = r.time(7);
  return l;
}

// The states in which a run is waiting to be claimed once due. Written as literals in
// the claim query so that the partial index flow_runs_due applies.
constexpr const char* kDueStates = "('Scheduled', 'Pending', 'Retrying')";

std::string encode_cursor(const FlowRun& last) {
  return std::to_string(to_unix_ms(last.created)) + "_" + last.id;
}

bool decode_cursor(const std::string& cursor, int64_t* created, std::string* id) {
  auto sep = cursor.find('_');
  if (sep == std::string::npos || sep == 0 || sep + 1 >= cursor.size()) return false;
  auto [p, ec] = std::from_chars(cursor.data(), cursor.data() + sep, *created);
  if (ec != std::errc() || p != cursor.data() + sep) return false;
  *id = cursor.substr(sep + 1);
  return true;
}

Status db_error_status(const DbError& e) {
  switch (e.kind()) {
    case DbError::Kind::kUnique:
      return conflict(std::string("duplicate: ") + e.what());
    case DbError::Kind::kForeignKey:
      return not_found(std::string("a referenced object does not exist: ") + e.what());
    case DbError::Kind::kRetry:
      return unavailable(std::string("the database stayed busy: ") + e.what());
    case DbError::Kind::kUnavailable:
      return unavailable(e.what());
    case DbError::Kind::kOther:
      break;
  }
  return internal_error(e.what());
}

class SqlStore final : public Store {
 public:
  SqlStore(std::unique_ptr<Db> db, Clock& clock) : db_(std::move(db)), clock_(clock) {}

  std::string_view backend() const override {
    return db_->dialect() == Dialect::kSqlite ? "sqlite" : "postgresql";
  }

  Result<int> schema_version() override {
    return transact(TxMode::kRead, [&]() -> Result<int> {
      auto rows = db_->query("SELECT MAX(version) FROM schema_migrations");
      return static_cast<int>(rows.at(0).i64(0));
    });
  }

  // ---- projects

  Result<Project> create_project(const std::string& name, const std::string& description,
                                 bool skip_if_exists) override {
    if (name.empty()) return invalid_argument("project name must not be empty");
    return transact(
        TxMode::kWrite,
        [&]() -> Result<Project> {
          auto rows = db_->query(std::string(kProjectColumns) + "WHERE name = ?", {name});
          if (!rows.empty()) {
            if (skip_if_exists) return to_project(rows[0]);
            return conflict("project '" + name + "' already exists");
          }
          Project p{new_uuid(), name, description, now_ms_time()};
          db_->exec("INSERT INTO projects (id, name, description, created) VALUES (?, ?, ?, ?)",
                    {p.id, p.name, p.description, time_value(p.created)});
          return p;
        },
        /*retry_unique=*/true);
  }

  Result<std::vector<Project>> list_projects() override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<Project>> {
      std::vector<Project> out;
      for (const auto& r : db_->query(std::string(kProjectColumns) + "ORDER BY name"))
        out.push_back(to_project(r));
      return out;
    });
  }

  Result<Project> get_project(const std::string& id) override {
    return transact(TxMode::kRead, [&]() -> Result<Project> {
      auto rows = db_->query(std::string(kProjectColumns) + "WHERE id = ?", {id});
      if (rows.empty()) return not_found("project '" + id + "' does not exist");
      return to_project(rows[0]);
    });
  }

  Result<Project> find_project(const std::string& name) override {
    return transact(TxMode::kRead, [&]() -> Result<Project> {
      auto rows = db_->query(std::string(kProjectColumns) + "WHERE name = ?", {name});
      if (rows.empty()) return not_found("project '" + name + "' does not exist");
      return to_project(rows[0]);
    });
  }

  // ---- flows

  Result<Flow> register_flow(const NewFlowVersion& spec) override {
    if (spec.name.empty()) return invalid_argument("flow name must not be empty");
    if (spec.project.empty()) return invalid_argument("project name must not be empty");
    if (spec.max_run_retries < 0) return invalid_argument("max_run_retries must not be negative");
    return transact(
        TxMode::kWrite,
        [&]() -> Result<Flow> {
          auto prows = db_->query("SELECT id FROM projects WHERE name = ?" + for_update(""), {spec.project});
          std::string project_id;
          if (prows.empty()) {
            if (!spec.create_project_if_missing)
              return not_found("project '" + spec.project + "' does not exist");
            project_id = new_uuid();
            db_->exec("INSERT INTO projects (id, name, description, created) VALUES (?, ?, '', ?)",
                      {project_id, spec.project, now_ms()});
          } else {
            project_id = prows[0].str(0);
          }
          if (spec.idempotency_key) {
            auto rows = db_->query(std::string(kFlowColumns) +
                                       "WHERE f.project_id = ? AND f.name = ? AND f.idempotency_key = ?",
                                   {project_id, spec.name, *spec.idempotency_key});
            if (!rows.empty()) return to_flow(rows[0]);
          }
          auto vrows = db_->query("SELECT MAX(version) FROM flows WHERE project_id = ? AND name = ?",
                                  {project_id, spec.name});
          int version = static_cast<int>(vrows.at(0).i64(0)) + 1;
          db_->exec("UPDATE flows SET archived = 1 WHERE project_id = ? AND name = ? AND archived = 0",
                    {project_id, spec.name});
          std::string id = new_uuid();
          db_->exec(
              "INSERT INTO flows (id, project_id, name, version, archived, artifact_uri, artifact_sha256, "
              "description_json, labels, schedule_json, schedule_active, max_run_retries, idempotency_key, "
              "created) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              {id, project_id, spec.name, int64_t{version}, spec.artifact_uri, spec.artifact_sha256,
               spec.description_json, labels_json(spec.labels), opt_value(spec.schedule_json),
               int64_t{spec.schedule_json && spec.schedule_active ? 1 : 0}, int64_t{spec.max_run_retries},
               opt_value(spec.idempotency_key), now_ms()});
          return load_flow(id);
        },
        /*retry_unique=*/true);
  }

  Result<Flow> get_flow(const std::string& id) override {
    return transact(TxMode::kRead, [&]() -> Result<Flow> { return load_flow(id); });
  }

  Result<std::vector<Flow>> list_flows(const std::optional<std::string>& project_id,
                                       bool latest_only) override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<Flow>> {
      std::string sql = kFlowColumns;
      Params params;
      std::vector<std::string> conds;
      if (project_id) {
        conds.push_back("f.project_id = ?");
        params.push_back(*project_id);
      }
      if (latest_only) conds.push_back("f.archived = 0");
      for (size_t i = 0; i < conds.size(); ++i) sql += (i == 0 ? "WHERE " : " AND ") + conds[i];
      sql += " ORDER BY p.name, f.name, f.version DESC";
      std::vector<Flow> out;
      for (const auto& r : db_->query(sql, params)) out.push_back(to_flow(r));
      return out;
    });
  }

  Result<Flow> find_latest_flow(const std::string& project, const std::string& name) override {
    return transact(TxMode::kRead, [&]() -> Result<Flow> {
      auto rows = db_->query(std::string(kFlowColumns) + "WHERE p.name = ? AND f.name = ? AND f.archived = 0",
                             {project, name});
      if (rows.empty()) return not_found("flow '" + name + "' does not exist in project '" + project + "'");
      return to_flow(rows[0]);
    });
  }

  Status set_schedule_active(const std::string& flow_id, bool active) override {
    return transact(TxMode::kWrite, [&]() -> Result<Unit> {
               auto rows = db_->query("SELECT schedule_json FROM flows WHERE id = ?", {flow_id});
               if (rows.empty()) return not_found("flow '" + flow_id + "' does not exist");
               if (rows[0].is_null(0)) return invalid_argument("flow '" + flow_id + "' has no schedule");
               db_->exec("UPDATE flows SET schedule_active = ? WHERE id = ?", {int64_t{active ? 1 : 0}, flow_id});
               return Unit{};
             })
        .status();
  }

  Result<std::vector<Flow>> list_scheduled_flows() override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<Flow>> {
      std::vector<Flow> out;
      for (const auto& r : db_->query(std::string(kFlowColumns) +
                                      "WHERE f.archived = 0 AND f.schedule_active = 1 AND "
                                      "f.schedule_json IS NOT NULL ORDER BY p.name, f.name"))
        out.push_back(to_flow(r));
      return out;
    });
  }

  // ---- flow runs

  Result<std::pair<FlowRun, bool>> create_flow_run(const NewFlowRun& spec) override {
    if (spec.initial_state != State::kScheduled && spec.initial_state != State::kPending)
      return invalid_argument(std::string("a new flow run starts Scheduled or Pending, not ") +
                              state_name(spec.initial_state));
    if (spec.idempotency_key && spec.idempotency_key->empty())
      return invalid_argument("idempotency_key must not be empty");
    return transact(
        TxMode::kWrite,
        [&]() -> Result<std::pair<FlowRun, bool>> {
          auto frows = db_->query("SELECT project_id, labels FROM flows WHERE id = ?", {spec.flow_id});
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
              "state_changed_at, scheduled_start_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?)",
              {id, spec.flow_id, frows[0].str(0), spec.parameters_json, labels, label_set,
               opt_value(spec.idempotency_key), int64_t{spec.auto_scheduled ? 1 : 0},
               std::string(state_name(spec.initial_state)), spec.state_message, now, now, due});
          append_history(id, std::nullopt, spec.initial_state, spec.state_message, 1, false, std::nullopt, now);
          auto run = load_run(id, false);
          if (!run) return run.status();
          return std::make_pair(std::move(run).value(), true);
        },
        /*retry_unique=*/true);
  }

  Result<FlowRun> get_flow_run(const std::string& id) override {
    return transact(TxMode::kRead, [&]() -> Result<FlowRun> { return load_run(id, false); });
  }

  Result<FlowRunPage> list_flow_runs(const FlowRunQuery& q) override {
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
      if (q.state) {
        conds.push_back("r.state = ?");
        params.push_back(std::string(state_name(*q.state)));
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

  Result<std::optional<SysTime>> latest_auto_scheduled_start(const std::string& flow_id) override {
    return transact(TxMode::kRead, [&]() -> Result<std::optional<SysTime>> {
      auto rows = db_->query(
          "SELECT MAX(scheduled_start_time) FROM flow_runs WHERE flow_id = ? AND auto_scheduled = 1", {flow_id});
      return rows.at(0).opt_time(0);
    });
  }

  Result<FlowRun> set_flow_run_state(const SetFlowRunState& c) override {
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
      State from = run.state;
      int64_t now = to_unix_ms(c.now);
      run.state = c.state;
      run.state_message = c.message;
      run.state_changed_at = from_unix_ms(now);
      if (c.state == State::kRunning) {
        run.run_count += 1;
        if (!run.start_time) run.start_time = from_unix_ms(now);
        run.heartbeat_at = from_unix_ms(now);
      }
      if (c.state == State::kSubmitted) run.submitted_at = from_unix_ms(now);
      if (is_final(c.state)) run.end_time = from_unix_ms(now);
      if (c.state == State::kScheduled || c.state == State::kPending || c.state == State::kRetrying) {
        run.agent_id.reset();
        run.submitted_at.reset();
        run.end_time.reset();
      }
      if (c.scheduled_start_time) run.scheduled_start_time = *c.scheduled_start_time;
      int64_t changed = db_->exec(
          "UPDATE flow_runs SET state = ?, state_message = ?, version = version + 1, run_count = ?, "
          "agent_id = ?, state_changed_at = ?, scheduled_start_time = ?, submitted_at = ?, start_time = ?, "
          "end_time = ?, heartbeat_at = ? WHERE id = ? AND version = ?",
          {std::string(state_name(run.state)), run.state_message, int64_t{run.run_count}, opt_value(run.agent_id),
           now, time_value(run.scheduled_start_time), opt_time_value(run.submitted_at),
           opt_time_value(run.start_time), opt_time_value(run.end_time), opt_time_value(run.heartbeat_at), run.id,
           run.version});
      if (changed != 1)
        return conflict("stale version: flow run " + run.id + " changed concurrently");
      run.version += 1;
      append_history(run.id, from, run.state, run.state_message, run.version, c.forced, run.agent_id, now);
      return run;
    });
  }

  Result<std::vector<StateChange>> get_flow_run_history(const std::string& run_id) override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<StateChange>> {
      auto rows = db_->query(
          "SELECT id, flow_run_id, from_state, state, message, version, forced, agent_id, ts "
          "FROM flow_run_states WHERE flow_run_id = ? ORDER BY id",
          {run_id});
      if (rows.empty()) return not_found("flow run '" + run_id + "' does not exist");
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

  Result<FlowRun> heartbeat_flow_run(const std::string& run_id, SysTime now) override {
    return transact(TxMode::kWrite, [&]() -> Result<FlowRun> {
      if (db_->exec("UPDATE flow_runs SET heartbeat_at = ? WHERE id = ?", {time_value(now), run_id}) == 0)
        return not_found("flow run '" + run_id + "' does not exist");
      return load_run(run_id, false);
    });
  }

  Result<std::vector<FlowRun>> claim_runs(const ClaimRequest& req) override {
    if (req.max < 1 || req.max > 1000) return invalid_argument("max must be between 1 and 1000");
    if (req.agent_id.empty()) return invalid_argument("agent_id must not be empty");
    return transact(TxMode::kWrite, [&]() -> Result<std::vector<FlowRun>> {
      // 1. The label sets this agent covers (label sets are few: one per distinct
      //    combination of run labels ever used).
      std::vector<int64_t> covered;
      for (const auto& r : db_->query("SELECT id, labels FROM label_sets"))
        if (labels_cover(req.agent_labels, parse_labels(r.str(1)))) covered.push_back(r.i64(0));
      std::vector<FlowRun> claimed;
      if (covered.empty()) return claimed;
      // 2. Due runs of those sets, oldest due first, via the partial index flow_runs_due.
      //    Runs of sets the agent does not cover are never read.
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
      if (covered.size() <= 16) {
        for (int64_t set : covered)
          collect(db_->query(base + "label_set_id = ? ORDER BY scheduled_start_time, id LIMIT ?" + lock,
                             {time_value(req.now), set, int64_t{req.max}}));
      } else {
        std::string in;
        Params params{time_value(req.now)};
        for (int64_t set : covered) {
          in += in.empty() ? "?" : ", ?";
          params.push_back(set);
        }
        params.push_back(int64_t{req.max});
        collect(db_->query(base + "label_set_id IN (" + in + ") ORDER BY scheduled_start_time, id LIMIT ?" + lock,
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
            "submitted_at = ?, state_changed_at = ? WHERE id = ? AND version = ?",
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

  Result<std::vector<FlowRun>> find_stale_running_runs(SysTime cutoff, int limit) override {
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

  Result<std::vector<FlowRun>> find_stale_submitted_runs(SysTime cutoff, int limit) override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<FlowRun>> {
      std::vector<FlowRun> out;
      for (const auto& r : db_->query(std::string(kRunColumns) +
                                          "WHERE r.state = 'Submitted' AND r.submitted_at < ? "
                                          "ORDER BY r.submitted_at, r.id LIMIT ?",
                                      {time_value(cutoff), int64_t{limit}}))
        out.push_back(to_run(r));
      return out;
    });
  }

  // ---- task runs

  // A batch's updates by (flow run, task), each group's in batch order (indexes).
  using Key = std::pair<std::string_view, std::string_view>;
  using TaskGroups = std::map<Key, std::vector<size_t>>;

  Result<std::vector<std::string>> upsert_task_runs(const std::vector<TaskRunUpdate>& updates) override {
    for (const auto& u : updates) {
      if (u.flow_run_id.empty()) return invalid_argument("task-run update without flow_run_id");
      if (u.task.empty()) return invalid_argument("task-run update without a task name");
      if (u.map_index < -1) return invalid_argument("map_index must be -1 or more");
      if (u.map_count < 1) return invalid_argument("map_count must be 1 or more");
      if (u.map_count > 1 && u.map_index < 0) return invalid_argument("map_count above 1 needs a map_index");
      if (int64_t{u.map_index} + u.map_count - 1 > kMaxMapIndex)
        return invalid_argument("map indexes end at " + std::to_string(kMaxMapIndex));
      if (u.attempts && *u.attempts < 0) return invalid_argument("attempts must not be negative");
    }
    if (updates.empty()) return std::vector<std::string>{};
    return transact(TxMode::kWrite, [&]() -> Result<std::vector<std::string>> {
      // Concurrent batches of one run (PostgreSQL) merge their ranges one after the
      // other: a transaction-scoped advisory lock per run, taken in id order.
      std::set<std::string> runs;
      for (const auto& u : updates) runs.insert(u.flow_run_id);
      for (const auto& id : runs) {
        db_->xact_lock("task_runs:" + id);
        if (db_->query("SELECT 1 FROM flow_runs WHERE id = ?", {id}).empty())
          return not_found("flow run '" + id + "' does not exist");
      }
      // The updates of each (run, task), in batch order.
      TaskGroups groups;
      for (size_t i = 0; i < updates.size(); ++i) groups[{updates[i].flow_run_id, updates[i].task}].push_back(i);
      std::map<Key, std::vector<StoredRange>> stored = stored_ranges(updates, groups);

      std::vector<std::string> ids(updates.size());
      // Unmapped task runs are rows of one that never split or merge: the batch's updates
      // of each are merged here, then with the stored row by the statement itself.
      std::vector<std::pair<const TaskRunUpdate*, StoredRange>> merges, writes;
      std::vector<std::vector<size_t>*> merge_members;
      for (auto& [key, members] : groups) {
        std::vector<RangeUpdate> batch;
        batch.reserve(members.size());
        bool mapped = false;
        for (size_t i : members) {
          const auto& u = updates[i];
          mapped = mapped || u.map_index >= 0;
          batch.push_back({u.map_index, int64_t{u.map_index} + u.map_count - 1, u.state, u.message, u.attempts,
                           to_unix_ms(u.timestamp),
                           u.start_time ? std::optional<int64_t>(to_unix_ms(*u.start_time)) : std::nullopt});
        }
        TaskRunIds id_of(key.first, key.second);
        if (!mapped) {
          RangeMerge m = merge_task_run_ranges(id_of, {}, batch);
          for (size_t i : members) ids[i] = m.ids[0];  // the derived id, unless one is stored
          merges.emplace_back(&updates[members[0]], std::move(m.write.at(0)));
          merge_members.push_back(&members);
          continue;
        }
        RangeMerge m = merge_task_run_ranges(id_of, stored[key], batch);
        for (size_t k = 0; k < members.size(); ++k) ids[members[k]] = std::move(m.ids[k]);
        for (int64_t lo : m.remove)
          db_->exec("DELETE FROM task_runs WHERE flow_run_id = ? AND task = ? AND map_index = ?",
                    {std::string(key.first), std::string(key.second), lo});
        for (auto& w : m.write) writes.emplace_back(&updates[members[0]], std::move(w));
      }
      write_ranges(writes, false);
      // Unmapped task runs whose row keeps a stored id (written before ids were derived)
      // answer with it.
      std::map<Key, std::optional<std::string>> stored_ids;
      for (const auto& r : write_ranges(merges, true)) stored_ids[{r.first->flow_run_id, r.first->task}] = r.second;
      for (size_t k = 0; k < merges.size(); ++k) {
        const TaskRunUpdate& u = *merges[k].first;
        auto it = stored_ids.find({u.flow_run_id, u.task});
        std::optional<std::string> id;
        if (it != stored_ids.end()) {
          id = it->second;
        } else {  // the update was older than the stored row: not applied
          auto rows = db_->query("SELECT id FROM task_runs WHERE flow_run_id = ? AND task = ? AND map_index = -1",
                                 {u.flow_run_id, u.task});
          if (!rows.empty()) id = rows[0].opt(0);
        }
        if (id)
          for (size_t i : *merge_members[k]) ids[i] = *id;
      }
      return ids;
    });
  }

  // Writes rows in multi-row statements of fixed sizes (few prepared statements). Each
  // row overwrites the one that begins at the same map index, or, with `merge`, is
  // merged with it as a later update (older than the stored row: ignored); then returns
  // the rows written with their stored id.
  std::vector<std::pair<const TaskRunUpdate*, std::optional<std::string>>> write_ranges(
      const std::vector<std::pair<const TaskRunUpdate*, StoredRange>>& rows, bool merge) {
    std::vector<std::pair<const TaskRunUpdate*, std::optional<std::string>>> written;
    size_t pos = 0;
    while (pos < rows.size()) {
      size_t left = rows.size() - pos;
      size_t n = left >= 256 ? 256 : left >= 64 ? 64 : left >= 16 ? 16 : left >= 4 ? 4 : 1;
      Params params;
      params.reserve(n * 12);
      std::map<Key, const TaskRunUpdate*> by_key;
      for (size_t k = pos; k < pos + n; ++k) {
        const TaskRunUpdate& u = *rows[k].first;
        const StoredRange& r = rows[k].second;
        by_key[{u.flow_run_id, u.task}] = &u;
        params.insert(params.end(),
                      {u.flow_run_id, u.task, r.lo, r.count, opt_value(r.id), std::string(state_name(r.f.state)),
                       r.f.message, r.f.attempts, r.f.created, r.f.updated,
                       r.f.start ? Value(*r.f.start) : null_value(), r.f.end ? Value(*r.f.end) : null_value()});
      }
      if (merge) {
        // Unmapped rows: one per (run, task), which names it.
        for (const auto& r : db_->query(upsert_sql(n, true), params)) {
          auto it = by_key.find({r.str(0), r.str(1)});
          if (it != by_key.end()) written.emplace_back(it->second, r.opt(2));
        }
      } else {
        db_->exec(upsert_sql(n, false), params);
      }
      pos += n;
    }
    return written;
  }

  // The stored rows that overlap the updates of each mapped group, sorted by map_index.
  std::map<Key, std::vector<StoredRange>> stored_ranges(const std::vector<TaskRunUpdate>& updates,
                                                       const TaskGroups& groups) {
    std::map<Key, std::vector<StoredRange>> out;
    for (const auto& [key, members] : groups) {
      int64_t lo = INT64_MAX, hi = INT64_MIN;
      for (size_t i : members) {
        lo = std::min<int64_t>(lo, updates[i].map_index);
        hi = std::max<int64_t>(hi, int64_t{updates[i].map_index} + updates[i].map_count - 1);
      }
      if (hi == -1) continue;  // unmapped: merged by the upsert statement itself
      // The row holding `lo`, then the rows that begin in (lo, hi].
      auto& rows = out[key];
      const std::string run(key.first), task(key.second);
      for (const auto& r : db_->query(std::string(kRangeColumns) +
                                          "WHERE flow_run_id = ? AND task = ? AND map_index <= ? "
                                          "ORDER BY map_index DESC LIMIT 1",
                                      {run, task, lo}))
        if (StoredRange s = to_range(r); s.hi() >= lo) rows.push_back(std::move(s));
      if (hi == lo) continue;
      for (const auto& r : db_->query(std::string(kRangeColumns) +
                                          "WHERE flow_run_id = ? AND task = ? AND map_index > ? AND map_index <= ? "
                                          "ORDER BY map_index",
                                      {run, task, lo, hi}))
        rows.push_back(to_range(r));
    }
    return out;
  }

  Result<std::vector<TaskRun>> list_task_runs(const std::string& flow_run_id) override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<TaskRun>> {
      auto rows = db_->query(std::string(kRangeColumns) + "WHERE flow_run_id = ? ORDER BY task, map_index",
                             {flow_run_id});
      if (rows.empty() && !run_exists(flow_run_id))
        return not_found("flow run '" + flow_run_id + "' does not exist");
      std::vector<TaskRun> out;
      std::optional<TaskRunIds> ids;
      std::string ids_task;
      for (const auto& r : rows) {
        StoredRange s = to_range(r);
        const std::string& task = r.str(10);
        if (!ids || ids_task != task) {
          ids.emplace(flow_run_id, task);
          ids_task = task;
        }
        for (int64_t i = s.lo; i <= s.hi(); ++i) {
          TaskRun t;
          t.id = ids->id(s, i);
          t.flow_run_id = flow_run_id;
          t.task = task;
          t.map_index = static_cast<int>(i);
          t.state = s.f.state;
          t.message = s.f.message;
          t.attempts = static_cast<int>(std::max<int64_t>(0, s.f.attempts));
          t.created = from_unix_ms(s.f.created);
          t.updated = from_unix_ms(s.f.updated);
          if (s.f.start) t.start_time = from_unix_ms(*s.f.start);
          if (s.f.end) t.end_time = from_unix_ms(*s.f.end);
          out.push_back(std::move(t));
        }
      }
      return out;
    });
  }

  // ---- logs

  Result<std::vector<int64_t>> append_logs(const std::vector<LogEntry>& entries) override {
    for (const auto& e : entries)
      if (e.flow_run_id.empty()) return invalid_argument("log entry without flow_run_id");
    if (entries.empty()) return std::vector<int64_t>{};
    return transact(TxMode::kWrite, [&]() -> Result<std::vector<int64_t>> {
      std::set<std::string> runs;
      for (const auto& e : entries) runs.insert(e.flow_run_id);
      for (const auto& id : runs) {  // sorted order: no deadlock between batches
        if (!run_exists(id)) return not_found("flow run '" + id + "' does not exist");
        db_->xact_lock("logs:" + id);
      }
      std::vector<int64_t> ids;
      ids.reserve(entries.size());
      for (const auto& e : entries) {
        auto rows = db_->query(
            "INSERT INTO logs (flow_run_id, task_run_id, task, map_index, level, message, ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            {e.flow_run_id, opt_value(e.task_run_id), opt_value(e.task), int64_t{e.map_index}, e.level, e.message,
             time_value(e.timestamp)});
        ids.push_back(rows.at(0).i64(0));
      }
      return ids;
    });
  }

  Result<std::vector<LogRecord>> read_logs(const std::string& flow_run_id, int64_t after, int limit) override {
    if (limit < 1 || limit > 10000) return invalid_argument("limit must be between 1 and 10000");
    return transact(TxMode::kRead, [&]() -> Result<std::vector<LogRecord>> {
      auto rows = db_->query(std::string(kLogColumns) + "WHERE flow_run_id = ? AND id > ? ORDER BY id LIMIT ?",
                             {flow_run_id, after, int64_t{limit}});
      if (rows.empty() && !run_exists(flow_run_id))
        return not_found("flow run '" + flow_run_id + "' does not exist");
      std::vector<LogRecord> out;
      for (const auto& r : rows) out.push_back(to_log(r));
      return out;
    });
  }

  // ---- agents

  Result<Agent> register_agent(const NewAgent& a) override {
    if (a.name.empty()) return invalid_argument("agent name must not be empty");
    return transact(
        TxMode::kWrite,
        [&]() -> Result<Agent> {
          auto rows = db_->query("SELECT id FROM agents WHERE name = ?", {a.name});
          std::string id;
          if (rows.empty()) {
            id = new_uuid();
            db_->exec("INSERT INTO agents (id, name, type, labels, created) VALUES (?, ?, ?, ?, ?)",
                      {id, a.name, a.type, labels_json(a.labels), now_ms()});
          } else {
            id = rows[0].str(0);
            db_->exec("UPDATE agents SET type = ?, labels = ? WHERE id = ?", {a.type, labels_json(a.labels), id});
          }
          return load_agent(id);
        },
        /*retry_unique=*/true);
  }

  Result<Agent> get_agent(const std::string& id) override {
    return transact(TxMode::kRead, [&]() -> Result<Agent> { return load_agent(id); });
  }

  Status heartbeat_agent(const std::string& id, SysTime now) override {
    return transact(TxMode::kWrite, [&]() -> Result<Unit> {
             if (db_->exec("UPDATE agents SET last_heartbeat = ? WHERE id = ?", {time_value(now), id}) == 0)
               return not_found("agent '" + id + "' does not exist");
             return Unit{};
           })
        .status();
  }

  Result<std::vector<Agent>> list_agents() override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<Agent>> {
      std::vector<Agent> out;
      for (const auto& r : db_->query(std::string(kAgentColumns) + "ORDER BY name")) out.push_back(to_agent(r));
      return out;
    });
  }

  // ---- tokens

  Result<Token> create_token(const NewToken& t) override {
    NewToken token = t;
    if (token.id.empty()) token.id = new_uuid();
    Status valid = validate_token(token);
    if (!valid.is_ok()) return valid;
    return transact(TxMode::kWrite, [&]() -> Result<Token> {
      Status s = insert_token(token);
      if (!s.is_ok()) return s;
      auto rows = db_->query(std::string(kTokenColumns) + "WHERE id = ?", {token.id});
      return to_token(rows.at(0));
    });
  }

  Result<Token> find_token_by_hash(const std::string& hash) override {
    return transact(TxMode::kRead, [&]() -> Result<Token> {
      auto rows = db_->query(std::string(kTokenColumns) + "WHERE hash = ?", {hash});
      if (rows.empty()) return not_found("no such token");
      return to_token(rows[0]);
    });
  }

  Result<std::vector<Token>> list_tokens() override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<Token>> {
      std::vector<Token> out;
      for (const auto& r : db_->query(std::string(kTokenColumns) + "ORDER BY created, id")) out.push_back(to_token(r));
      return out;
    });
  }

  Status revoke_token(const std::string& id, SysTime now) override {
    return transact(TxMode::kWrite, [&]() -> Result<Unit> {
             if (db_->exec("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                           {time_value(now), id}) == 0)
               return not_found("token '" + id + "' does not exist");
             return Unit{};
           })
        .status();
  }

  Result<int64_t> count_tokens() override {
    return transact(TxMode::kRead,
                    [&]() -> Result<int64_t> { return db_->query("SELECT COUNT(*) FROM tokens").at(0).i64(0); });
  }

  // ---- retention

  Result<PruneResult> prune_logs(const PruneCursor& after, SysTime ended_before, int max_runs) override {
    if (max_runs < 1) return invalid_argument("max_runs must be at least 1");
    return transact(TxMode::kWrite, [&]() -> Result<PruneResult> {
      PruneResult out;
      auto runs = db_->query(
          "SELECT id, end_time FROM flow_runs WHERE end_time IS NOT NULL AND (end_time, id) > (?, ?) "
          "AND end_time <= ? ORDER BY end_time, id LIMIT ?",
          {to_unix_ms(after.end), after.run_id, to_unix_ms(ended_before), int64_t{max_runs}});
      for (const auto& r : runs) out.lines += db_->exec("DELETE FROM logs WHERE flow_run_id = ?", {r.str(0)});
      if (!runs.empty()) out.next = PruneCursor{from_unix_ms(runs.back().i64(1)), runs.back().str(0)};
      return out;
    });
  }

  // ---- metrics

  Result<std::vector<StateCount>> count_runs_by_state() override {
    return transact(TxMode::kRead, [&]() -> Result<std::vector<StateCount>> {
      std::vector<StateCount> out;
      for (const auto& r : db_->query("SELECT state, SUM(count) FROM run_state_counts GROUP BY state "
                                      "HAVING SUM(count) <> 0 ORDER BY state"))
        out.push_back({row_state(r, 0), r.i64(1)});
      return out;
    });
  }

  Result<int64_t> count_agents() override {
    return transact(TxMode::kRead,
                    [&]() -> Result<int64_t> { return db_->query("SELECT COUNT(*) FROM agents").at(0).i64(0); });
  }

 private:
  static constexpr int kMaxAttempts = 20;

  // Runs `fn` in a transaction (see the file comment). `fn` returns a Result; a non-OK
  // Result rolls back. retry_unique: a unique-key violation is a lost race whose retry
  // finds the winner's row (get-or-create paths).
  template <typename F>
  auto transact(TxMode mode, F&& fn, bool retry_unique = false) -> decltype(fn()) {
    using R = decltype(fn());
    std::lock_guard<std::mutex> lock(mu_);
    for (int attempt = 1;; ++attempt) {
      try {
        try {
          db_->begin(mode);
        } catch (const DbError& e) {
          // A connection that died while idle: reconnect once; nothing was sent yet.
          if (e.kind() != DbError::Kind::kUnavailable || attempt > 1) throw;
          db_->reconnect();
          db_->begin(mode);
        }
        count_deltas_.clear();
        R r = fn();
        if (!r.is_ok()) {
          db_->rollback();
          return r;
        }
        apply_count_deltas();
        db_->commit();
        return r;
      } catch (const DbError& e) {
        db_->rollback();
        bool retry = e.kind() == DbError::Kind::kRetry ||
                     (retry_unique && e.kind() == DbError::Kind::kUnique);
        if (retry && attempt < kMaxAttempts) {
          // Real time, not clock_: this waits out another connection's transaction.
          std::this_thread::sleep_for(std::chrono::milliseconds(std::min(attempt, 10)));
          continue;
        }
        return R(db_error_status(e));
      }
    }
  }

  // INSERT of n task-run ranges; a row that begins at the same map index is overwritten,
  // or with `merge` updated as by a later update (see write_ranges).
  static std::string upsert_sql(size_t n, bool merge) {
    std::string sql =
        "INSERT INTO task_runs (flow_run_id, task, map_index, map_count, id, state, message, attempts, created, "
        "updated, start_time, end_time) VALUES ";
    for (size_t i = 0; i < n; ++i) {
      if (i) sql += ", ";
      sql += i == 0 ? "(?, ?, CAST(? AS INTEGER), CAST(? AS INTEGER), ?, ?, ?, CAST(? AS INTEGER), "
                      "CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))"
                    : "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    }
    if (merge)
      return sql +
             " ON CONFLICT (flow_run_id, task, map_index) DO UPDATE SET state = excluded.state, "
             "message = excluded.message, "
             "attempts = CASE WHEN excluded.attempts < 0 THEN task_runs.attempts ELSE excluded.attempts END, "
             "updated = excluded.updated, start_time = COALESCE(task_runs.start_time, excluded.start_time), "
             "end_time = excluded.end_time WHERE excluded.updated >= task_runs.updated "
             "RETURNING flow_run_id, task, id";
    return sql +
           " ON CONFLICT (flow_run_id, task, map_index) DO UPDATE SET map_count = excluded.map_count, "
           "id = excluded.id, state = excluded.state, message = excluded.message, attempts = excluded.attempts, "
           "created = excluded.created, updated = excluded.updated, start_time = excluded.start_time, "
           "end_time = excluded.end_time";
  }

  std::string for_update(const char* alias) const {
    if (db_->dialect() != Dialect::kPostgres) return "";
    return *alias ? std::string(" FOR UPDATE OF ") + alias : std::string(" FOR UPDATE");
  }

  int64_t now_ms() const { return to_unix_ms(clock_.now()); }
  SysTime now_ms_time() const { return from_unix_ms(now_ms()); }

  Result<Flow> load_flow(const std::string& id) {
    auto rows = db_->query(std::string(kFlowColumns) + "WHERE f.id = ?", {id});
    if (rows.empty()) return not_found("flow '" + id + "' does not exist");
    return to_flow(rows[0]);
  }

  Result<FlowRun> load_run(const std::string& id, bool lock) {
    auto rows = db_->query(std::string(kRunColumns) + "WHERE r.id = ?" + (lock ? for_update("r") : ""), {id});
    if (rows.empty()) return not_found("flow run '" + id + "' does not exist");
    return to_run(rows[0]);
  }

  Result<Agent> load_agent(const std::string& id) {
    auto rows = db_->query(std::string(kAgentColumns) + "WHERE id = ?", {id});
    if (rows.empty()) return not_found("agent '" + id + "' does not exist");
    return to_agent(rows[0]);
  }

  bool run_exists(const std::string& id) { return !db_->query("SELECT 1 FROM flow_runs WHERE id = ?", {id}).empty(); }

  // The id of a label set (a JSON array of normalized labels), created when new.
  int64_t label_set_id(const std::string& labels) {
    auto rows = db_->query("SELECT id FROM label_sets WHERE labels = ?", {labels});
    if (rows.empty()) {
      db_->exec("INSERT INTO label_sets (labels) VALUES (?) ON CONFLICT (labels) DO NOTHING", {labels});
      rows = db_->query("SELECT id FROM label_sets WHERE labels = ?", {labels});
    }
    return rows.at(0).i64(0);
  }

  // Applies the state-count changes of this transaction, in (state, shard) order so
  // that concurrent transactions lock counter rows in one order (no deadlocks).
  void apply_count_deltas() {
    for (const auto& [key, delta] : count_deltas_) {
      if (delta == 0) continue;
      db_->exec(
          "INSERT INTO run_state_counts (state, shard, count) VALUES (?, ?, ?) ON CONFLICT (state, shard) "
          "DO UPDATE SET count = run_state_counts.count + excluded.count",
          {key.first, int64_t{key.second}, delta});
    }
    count_deltas_.clear();
  }

  // Every state change goes through here: the history row and the state counts.
  void append_history(const std::string& run_id, std::optional<State> from, State to, const std::string& message,
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

  static Status validate_token(const NewToken& t) {
    if (t.scope != "admin" && t.scope != "user" && t.scope != "runner" && t.scope != "run")
      return invalid_argument("unknown token scope '" + t.scope + "' (expected admin, user, runner or run)");
    if (t.scope == "run" && (!t.flow_run_id || t.flow_run_id->empty()))
      return invalid_argument("a token of scope 'run' needs a flow_run_id");
    if (t.hash.empty()) return invalid_argument("token hash must not be empty");
    return Status::ok();
  }

  // Inside a transaction.
  Status insert_token(NewToken t) {
    if (t.id.empty()) t.id = new_uuid();
    Status valid = validate_token(t);
    if (!valid.is_ok()) return valid;
    if (!db_->query("SELECT 1 FROM tokens WHERE id = ? OR hash = ?", {t.id, t.hash}).empty())
      return conflict("a token with id '" + t.id + "' or the same hash already exists");
    db_->exec(
        "INSERT INTO tokens (id, name, scope, hash, flow_run_id, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
        {t.id, t.name, t.scope, t.hash, opt_value(t.flow_run_id), now_ms(), opt_time_value(t.expires)});
    return Status::ok();
  }

  std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> count_deltas_;  // of the open transaction
  std::unique_ptr<Db> db_;
  Clock& clock_;
};

}  // namespace

std::unique_ptr<Store> make_sql_store(std::unique_ptr<Db> db, Clock& clock) {
  return std::make_unique<SqlStore>(std::move(db), clock);
}

}  // namespace culvert::store::detail
