#include "store/schema.hpp"

namespace culvert::store::detail {
namespace {

// Version 1: the initial schema. Times are Unix milliseconds (BIGINT), booleans are
// 0/1 INTEGERs, label lists are JSON arrays of sorted, distinct strings.
// %SERIAL% is an auto-increasing 64-bit primary key.
constexpr const char* kSchemaV1 = R"SQL(
CREATE TABLE projects (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL,
  created BIGINT NOT NULL
);
CREATE TABLE flows (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  archived INTEGER NOT NULL,
  artifact_uri TEXT NOT NULL,
  artifact_sha256 TEXT NOT NULL,
  description_json TEXT NOT NULL,
  labels TEXT NOT NULL,
  schedule_json TEXT,
  schedule_active INTEGER NOT NULL,
  max_run_retries INTEGER NOT NULL,
  idempotency_key TEXT,
  created BIGINT NOT NULL,
  UNIQUE (project_id, name, version),
  UNIQUE (project_id, name, idempotency_key)
);
CREATE INDEX flows_latest ON flows (project_id, archived, name);
CREATE INDEX flows_scheduled ON flows (archived, schedule_active);
CREATE TABLE label_sets (
  id %SERIAL%,
  labels TEXT NOT NULL UNIQUE
);
CREATE TABLE flow_runs (
  id TEXT PRIMARY KEY,
  flow_id TEXT NOT NULL REFERENCES flows(id),
  project_id TEXT NOT NULL,
  parameters_json TEXT NOT NULL,
  labels TEXT NOT NULL,
  label_set_id BIGINT NOT NULL REFERENCES label_sets(id),
  idempotency_key TEXT,
  auto_scheduled INTEGER NOT NULL,
  state TEXT NOT NULL,
  state_message TEXT NOT NULL,
  version BIGINT NOT NULL,
  run_count INTEGER NOT NULL,
  agent_id TEXT,
  created BIGINT NOT NULL,
  state_changed_at BIGINT NOT NULL,
  scheduled_start_time BIGINT NOT NULL,
  submitted_at BIGINT,
  start_time BIGINT,
  end_time BIGINT,
  heartbeat_at BIGINT,
  UNIQUE (flow_id, idempotency_key)
);
CREATE INDEX flow_runs_by_created ON flow_runs (created, id);
CREATE INDEX flow_runs_by_flow ON flow_runs (flow_id, created, id);
CREATE INDEX flow_runs_by_project ON flow_runs (project_id, created, id);
CREATE INDEX flow_runs_by_state ON flow_runs (state, created, id);
CREATE INDEX flow_runs_by_flow_state ON flow_runs (flow_id, state, created, id);
CREATE INDEX flow_runs_due ON flow_runs (label_set_id, scheduled_start_time, id)
  WHERE state IN ('Scheduled', 'Pending', 'Retrying');
CREATE INDEX flow_runs_auto ON flow_runs (flow_id, scheduled_start_time) WHERE auto_scheduled = 1;
CREATE TABLE flow_run_states (
  id %SERIAL%,
  flow_run_id TEXT NOT NULL REFERENCES flow_runs(id),
  from_state TEXT,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  version BIGINT NOT NULL,
  forced INTEGER NOT NULL,
  agent_id TEXT,
  ts BIGINT NOT NULL
);
CREATE INDEX flow_run_states_by_run ON flow_run_states (flow_run_id, id);
CREATE TABLE task_runs (
  id TEXT PRIMARY KEY,
  flow_run_id TEXT NOT NULL REFERENCES flow_runs(id),
  task TEXT NOT NULL,
  map_index INTEGER NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  created BIGINT NOT NULL,
  updated BIGINT NOT NULL,
  start_time BIGINT,
  end_time BIGINT,
  UNIQUE (flow_run_id, task, map_index)
);
CREATE TABLE logs (
  id %SERIAL%,
  flow_run_id TEXT NOT NULL REFERENCES flow_runs(id),
  task_run_id TEXT,
  task TEXT,
  map_index INTEGER NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL,
  ts BIGINT NOT NULL
);
CREATE INDEX logs_by_run ON logs (flow_run_id, id);
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  labels TEXT NOT NULL,
  created BIGINT NOT NULL,
  last_heartbeat BIGINT
);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scope TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  flow_run_id TEXT,
  created BIGINT NOT NULL,
  expires BIGINT,
  revoked_at BIGINT
)
)SQL";

// Version 2: run counts per state for metrics, kept up to date by every state change
// (in 16 shards per state so that concurrent PostgreSQL transactions rarely wait on
// one counter row), so that counting does not scan the runs.
constexpr const char* kSchemaV2 = R"SQL(
CREATE TABLE run_state_counts (
  state TEXT NOT NULL,
  shard INTEGER NOT NULL,
  count BIGINT NOT NULL,
  PRIMARY KEY (state, shard)
);
INSERT INTO run_state_counts (state, shard, count) SELECT state, 0, COUNT(*) FROM flow_runs GROUP BY state
)SQL";

// Version 3: ended runs by end time, for log retention (prune_logs).
constexpr const char* kSchemaV3 = R"SQL(
CREATE INDEX flow_runs_by_end ON flow_runs (end_time, id) WHERE end_time IS NOT NULL
)SQL";

// Version 4: task runs stored as ranges of alike task runs (store/task_run_ranges.hpp),
// keyed by (flow run, task, first map index) with no other index. Ids are derived from
// the key; the ids of older rows are kept in `id`.
constexpr const char* kSchemaV4 = R"SQL(
CREATE TABLE task_runs_v4 (
  flow_run_id TEXT NOT NULL REFERENCES flow_runs(id),
  task TEXT NOT NULL,
  map_index INTEGER NOT NULL,
  map_count INTEGER NOT NULL,
  id TEXT,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  created BIGINT NOT NULL,
  updated BIGINT NOT NULL,
  start_time BIGINT,
  end_time BIGINT,
  PRIMARY KEY (flow_run_id, task, map_index)
)%WITHOUT_ROWID%;
INSERT INTO task_runs_v4 (flow_run_id, task, map_index, map_count, id, state, message, attempts, created,
                          updated, start_time, end_time)
  SELECT flow_run_id, task, map_index, 1, id, state, message, attempts, created, updated, start_time, end_time
  FROM task_runs;
DROP TABLE task_runs;
ALTER TABLE task_runs_v4 RENAME TO task_runs
)SQL";

// Version 5: a Retrying task run's next start time, and the task runs' history of
// replaced states (every Retrying update: why an attempt failed, when the next starts).
constexpr const char* kSchemaV5 = R"SQL(
ALTER TABLE task_runs ADD COLUMN next_start BIGINT;
CREATE TABLE task_run_history (
  id %SERIAL%,
  flow_run_id TEXT NOT NULL REFERENCES flow_runs(id),
  task TEXT NOT NULL,
  map_index INTEGER NOT NULL,
  map_count INTEGER NOT NULL,
  run_attempt INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  ts BIGINT NOT NULL,
  next_start BIGINT,
  UNIQUE (flow_run_id, task, map_index, run_attempt, attempts, state)
);
CREATE INDEX task_run_history_by_run ON task_run_history (flow_run_id, id)
)SQL";

// Version 6: the run config of flow versions and runs (its type, so that a claim takes
// only the run-config types the agent launches, through the due-runs index), what runs a
// flow run (reported by its agent), and agents bound to the token that registered them,
// stopped when deregistered, with the run-config types they launch. Existing rows get
// the run config from the stored flow description.
constexpr const char* kSchemaV6 = R"SQL(
ALTER TABLE flows ADD COLUMN run_config_json TEXT NOT NULL DEFAULT '';
ALTER TABLE flows ADD COLUMN run_config_type TEXT NOT NULL DEFAULT '';
UPDATE flows SET run_config_json = %RUN_CONFIG_JSON%, run_config_type = %RUN_CONFIG_TYPE%;
ALTER TABLE flow_runs ADD COLUMN run_config_type TEXT NOT NULL DEFAULT '';
UPDATE flow_runs SET run_config_type = (SELECT f.run_config_type FROM flows f WHERE f.id = flow_runs.flow_id);
ALTER TABLE flow_runs ADD COLUMN infra_kind TEXT;
ALTER TABLE flow_runs ADD COLUMN infra_id TEXT;
ALTER TABLE flow_runs ADD COLUMN infra_agent_id TEXT;
ALTER TABLE flow_runs ADD COLUMN infra_reported_at BIGINT;
DROP INDEX flow_runs_due;
CREATE INDEX flow_runs_due ON flow_runs (label_set_id, run_config_type, scheduled_start_time, id)
  WHERE state IN ('Scheduled', 'Pending', 'Retrying');
CREATE INDEX flow_runs_by_agent ON flow_runs (agent_id, created, id) WHERE agent_id IS NOT NULL;
ALTER TABLE agents ADD COLUMN token_id TEXT;
ALTER TABLE agents ADD COLUMN stopped_at BIGINT;
ALTER TABLE agents ADD COLUMN run_config_types TEXT NOT NULL DEFAULT '[]';
UPDATE agents SET run_config_types = '["' || type || '"]'
)SQL";

// Version 7: the bytes of log messages each flow run has stored, for the per-run log
// quota (append_logs), counted from the lines already there.
constexpr const char* kSchemaV7 = R"SQL(
ALTER TABLE flow_runs ADD COLUMN log_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE flow_runs SET log_bytes = COALESCE((SELECT SUM(%OCTETS_OF_MESSAGE%) FROM logs
                                           WHERE logs.flow_run_id = flow_runs.id), 0)
)SQL";

// Version 8: the attempts of a flow run. Each attempt's own times, state and agent
// (flow_run_attempts), and the attempt that wrote each log line and task run. A run that
// ran before keeps its latest attempt, read from its state history (from its latest
// entry into Running to the change that ended it); rows written before are attempt 1's.
constexpr const char* kSchemaV8 = R"SQL(
CREATE TABLE flow_run_attempts (
  flow_run_id TEXT NOT NULL REFERENCES flow_runs(id),
  attempt INTEGER NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  agent_id TEXT,
  start_time BIGINT NOT NULL,
  end_time BIGINT,
  PRIMARY KEY (flow_run_id, attempt)
);
INSERT INTO flow_run_attempts (flow_run_id, attempt, state, message, agent_id, start_time, end_time)
  SELECT r.id, r.run_count, COALESCE(e.state, r.state), COALESCE(e.message, r.state_message), l.agent_id,
         COALESCE(l.ts, r.start_time, r.state_changed_at), e.ts
  FROM flow_runs r
  LEFT JOIN (SELECT flow_run_id, MAX(id) AS id FROM flow_run_states WHERE state = 'Running'
             GROUP BY flow_run_id) latest ON latest.flow_run_id = r.id
  LEFT JOIN flow_run_states l ON l.id = latest.id
  LEFT JOIN flow_run_states e ON e.id = (
    SELECT MIN(x.id) FROM flow_run_states x WHERE x.flow_run_id = r.id AND x.id > latest.id AND x.state IN
      ('Success', 'Cached', 'Skipped', 'Failed', 'TimedOut', 'TriggerFailed', 'Crashed', 'Cancelled',
       'Scheduled', 'Pending', 'Retrying'))
  WHERE r.run_count > 0;
ALTER TABLE logs ADD COLUMN run_attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE task_runs ADD COLUMN run_attempt INTEGER NOT NULL DEFAULT 1
)SQL";

// Version 9: the kind of each flow version's artifact (docs/FORMATS.md "artifact_kind":
// binary, python, python-package, yaml), which tells `culvert execute` how to run it.
// Versions registered before were all flow binaries.
constexpr const char* kSchemaV9 = R"SQL(
ALTER TABLE flows ADD COLUMN artifact_kind TEXT NOT NULL DEFAULT 'binary'
)SQL";

// Version 10: the runs each agent takes at once, as it says when it registers (NULL for
// an agent that registered before, or that does not say).
constexpr const char* kSchemaV10 = R"SQL(
ALTER TABLE agents ADD COLUMN max_concurrent INTEGER
)SQL";

// Version 11: child runs, one per chunk of a distributed mapped task of a parent run
// (NULL for every other run): the parent, the task, the chunk and its map indexes
// [map_start, map_end), the parent's attempt; and a run's own run config (NULL: its flow
// version's). A chunk is created once per (parent, attempt, task).
constexpr const char* kSchemaV11 = R"SQL(
ALTER TABLE flow_runs ADD COLUMN parent_run_id TEXT REFERENCES flow_runs(id);
ALTER TABLE flow_runs ADD COLUMN map_task TEXT;
ALTER TABLE flow_runs ADD COLUMN map_chunk INTEGER;
ALTER TABLE flow_runs ADD COLUMN map_start INTEGER;
ALTER TABLE flow_runs ADD COLUMN map_end INTEGER;
ALTER TABLE flow_runs ADD COLUMN parent_attempt INTEGER;
ALTER TABLE flow_runs ADD COLUMN run_config_json TEXT;
CREATE UNIQUE INDEX flow_runs_children ON flow_runs (parent_run_id, parent_attempt, map_task, map_chunk)
  WHERE parent_run_id IS NOT NULL
)SQL";

std::string render(std::string sql, Dialect dialect) {
  auto replace_all = [&](const std::string& key, const std::string& with) {
    for (size_t p = sql.find(key); p != std::string::npos; p = sql.find(key, p + with.size()))
      sql.replace(p, key.size(), with);
  };
  replace_all("%SERIAL%", dialect == Dialect::kSqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT"
                                                      : "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");
  replace_all("%OCTETS_OF_MESSAGE%", dialect == Dialect::kSqlite ? "LENGTH(CAST(message AS BLOB))" : "OCTET_LENGTH(message)");
  replace_all("%WITHOUT_ROWID%", dialect == Dialect::kSqlite ? " WITHOUT ROWID" : "");
  // The run config object of a stored flow description (text, '' when it has none) and
  // its string "type" ('' when none).
  replace_all("%RUN_CONFIG_JSON%",
              dialect == Dialect::kSqlite
                  ? "CASE WHEN json_type(description_json, '$.run_config') = 'object' "
                    "THEN json_extract(description_json, '$.run_config') ELSE '' END"
                  : "CASE WHEN jsonb_typeof(description_json::jsonb -> 'run_config') = 'object' "
                    "THEN (description_json::jsonb -> 'run_config')::text ELSE '' END");
  replace_all("%RUN_CONFIG_TYPE%",
              dialect == Dialect::kSqlite
                  ? "CASE WHEN json_type(description_json, '$.run_config.type') = 'text' "
                    "THEN json_extract(description_json, '$.run_config.type') ELSE '' END"
                  : "CASE WHEN jsonb_typeof(description_json::jsonb #> '{run_config,type}') = 'string' "
                    "THEN description_json::jsonb #>> '{run_config,type}' ELSE '' END");
  return sql;
}

}  // namespace

std::vector<Migration> migrations(Dialect dialect) {
  return {
      {1, "initial schema", render(kSchemaV1, dialect)},
      {2, "run counts per state", render(kSchemaV2, dialect)},
      {3, "ended runs by end time", render(kSchemaV3, dialect)},
      {4, "task runs as ranges", render(kSchemaV4, dialect)},
      {5, "task-run next start times and history", render(kSchemaV5, dialect)},
      {6, "run configs of runs, infrastructure of runs, agents bound to tokens", render(kSchemaV6, dialect)},
      {7, "log bytes per flow run", render(kSchemaV7, dialect)},
      {8, "flow-run attempts", render(kSchemaV8, dialect)},
      {9, "artifact kinds of flow versions", render(kSchemaV9, dialect)},
      {10, "agents' max concurrent runs", render(kSchemaV10, dialect)},
      {11, "child runs of distributed mapped tasks, runs' own run configs", render(kSchemaV11, dialect)},
  };
}

int migrate(Db& db, int64_t now_ms) {
  struct Unlock {
    Db& db;
    ~Unlock() { db.unlock_migrations(); }
  };
  db.lock_migrations();
  Unlock unlock{db};
  auto all = migrations(db.dialect());
  int current = 0;
  for (const auto& m : all) {
    // One transaction per migration; on SQLite BEGIN IMMEDIATE excludes other openers
    // between reading the applied versions and recording this one.
    db.begin(TxMode::kWrite);
    try {
      db.exec_script(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
          "description TEXT NOT NULL, applied_at BIGINT NOT NULL)");
      auto rows = db.query("SELECT 1 FROM schema_migrations WHERE version = ?", {int64_t{m.version}});
      if (rows.empty()) {
        db.exec_script(m.sql);
        db.exec("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                {int64_t{m.version}, std::string(m.description), now_ms});
      }
      db.commit();
    } catch (...) {
      db.rollback();
      throw;
    }
    current = m.version;
  }
  // A database migrated by a newer Culvert: this one does not know its schema and must
  // not write to it (a rolled-back upgrade).
  db.begin(TxMode::kRead);
  int64_t newest = 0;
  try {
    newest = db.query("SELECT MAX(version) FROM schema_migrations").at(0).i64(0);
    db.commit();
  } catch (...) {
    db.rollback();
    throw;
  }
  if (newest > current)
    throw DbError(DbError::Kind::kOther,
                  "the database has schema version " + std::to_string(newest) + ", newer than this culvert knows (" +
                      std::to_string(current) + "); run the culvert version that upgraded it, or a later one");
  return current;
}

}  // namespace culvert::store::detail
