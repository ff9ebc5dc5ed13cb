// SqlStore (sql_store_impl.hpp): flows and their versions, schedules.
#include "store/sql_store_impl.hpp"

#include "core/crypto.hpp"
#include "core/labels.hpp"

namespace culvert::store::detail {

namespace {

constexpr const char* kFlowColumns =
    "SELECT f.id, f.project_id, p.name, f.name, f.version, f.archived, f.artifact_uri, "
    "f.artifact_sha256, f.description_json, f.labels, f.schedule_json, f.schedule_active, "
    "f.max_run_retries, f.idempotency_key, f.created, f.artifact_kind FROM flows f JOIN projects p ON p.id = f.project_id ";

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
  f.artifact_kind = r.str(15);
  return f;
}

}  // namespace

Result<Flow> SqlStore::register_flow(const NewFlowVersion& spec) {
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
          if (!rows.empty()) {
            Flow f = to_flow(rows[0]);
            f.reused = true;
            return f;
          }
        }
        // The same bytes and metadata as the latest version: that version.
        auto latest = db_->query(std::string(kFlowColumns) + "WHERE f.project_id = ? AND f.name = ? AND f.archived = 0",
                                 {project_id, spec.name});
        if (!latest.empty()) {
          Flow f = to_flow(latest[0]);
          bool active = spec.schedule_json && spec.schedule_active;
          if (f.artifact_sha256 == spec.artifact_sha256 && f.artifact_uri == spec.artifact_uri &&
              f.artifact_kind == spec.artifact_kind &&
              f.description_json == spec.description_json && f.labels == normalize_labels(spec.labels) &&
              f.schedule_json == spec.schedule_json && f.schedule_active == active &&
              f.max_run_retries == spec.max_run_retries) {
            f.reused = true;
            return f;
          }
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
            "created, run_config_json, run_config_type, artifact_kind) "
            "VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {id, project_id, spec.name, int64_t{version}, spec.artifact_uri, spec.artifact_sha256,
             spec.description_json, labels_json(spec.labels), opt_value(spec.schedule_json),
             int64_t{spec.schedule_json && spec.schedule_active ? 1 : 0}, int64_t{spec.max_run_retries},
             opt_value(spec.idempotency_key), now_ms(), spec.run_config_json, spec.run_config_type,
             spec.artifact_kind});
        return load_flow(id);
      },
      /*retry_unique=*/true);
}

Result<Flow> SqlStore::get_flow(const std::string& id) {
  return transact(TxMode::kRead, [&]() -> Result<Flow> { return load_flow(id); });
}

Result<std::vector<Flow>> SqlStore::list_flows(const std::optional<std::string>& project_id, bool latest_only,
                                               const FlowListPage& page) {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<Flow>> {
    std::string sql = kFlowColumns;
    Params params;
    std::vector<std::string> conds;
    if (project_id) {
      conds.push_back("f.project_id = ?");
      params.push_back(*project_id);
    }
    if (latest_only) conds.push_back("f.archived = 0");
    if (page.name) {
      conds.push_back("f.name = ?");
      params.push_back(*page.name);
    }
    if (page.after_id) {
      // After it in the listing's order: (project name, flow name, version descending).
      auto after = load_flow(*page.after_id);
      if (!after) return after.status();
      conds.push_back("(p.name > ? OR (p.name = ? AND (f.name > ? OR (f.name = ? AND f.version < ?))))");
      for (const auto& v : {after->project_name, after->project_name, after->name, after->name})
        params.push_back(v);
      params.push_back(int64_t{after->version});
    }
    for (size_t i = 0; i < conds.size(); ++i) sql += (i == 0 ? "WHERE " : " AND ") + conds[i];
    sql += " ORDER BY p.name, f.name, f.version DESC";
    if (page.limit > 0) {
      sql += " LIMIT ?";
      params.push_back(int64_t{page.limit});
    }
    std::vector<Flow> out;
    for (const auto& r : db_->query(sql, params)) out.push_back(to_flow(r));
    return out;
  });
}

Result<Flow> SqlStore::find_latest_flow(const std::string& project, const std::string& name) {
  return transact(TxMode::kRead, [&]() -> Result<Flow> {
    auto rows = db_->query(std::string(kFlowColumns) + "WHERE p.name = ? AND f.name = ? AND f.archived = 0",
                           {project, name});
    if (rows.empty()) return not_found("flow '" + name + "' does not exist in project '" + project + "'");
    return to_flow(rows[0]);
  });
}

Status SqlStore::set_schedule_active(const std::string& flow_id, bool active) {
  return transact(TxMode::kWrite, [&]() -> Result<Unit> {
             auto rows = db_->query("SELECT schedule_json FROM flows WHERE id = ?", {flow_id});
             if (rows.empty()) return not_found("flow '" + flow_id + "' does not exist");
             if (rows[0].is_null(0)) return invalid_argument("flow '" + flow_id + "' has no schedule");
             db_->exec("UPDATE flows SET schedule_active = ? WHERE id = ?", {int64_t{active ? 1 : 0}, flow_id});
             return Unit{};
           })
      .status();
}

Result<std::vector<Flow>> SqlStore::list_scheduled_flows() {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<Flow>> {
    std::vector<Flow> out;
    for (const auto& r : db_->query(std::string(kFlowColumns) +
                                    "WHERE f.archived = 0 AND f.schedule_active = 1 AND "
                                    "f.schedule_json IS NOT NULL ORDER BY p.name, f.name"))
      out.push_back(to_flow(r));
    return out;
  });
}

Result<Flow> SqlStore::load_flow(const std::string& id) {
  auto rows = db_->query(std::string(kFlowColumns) + "WHERE f.id = ?", {id});
  if (rows.empty()) return not_found("flow '" + id + "' does not exist");
  return to_flow(rows[0]);
}

}  // namespace culvert::store::detail
