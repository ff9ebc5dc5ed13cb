// SqlStore (sql_store_impl.hpp): projects.
#include "store/sql_store_impl.hpp"

#include "core/crypto.hpp"

namespace culvert::store::detail {

namespace {

constexpr const char* kProjectColumns = "SELECT id, name, description, created FROM projects ";

Project to_project(const Row& r) {
  return Project{r.str(0), r.str(1), r.str(2), r.time(3)};
}

}  // namespace

Result<Project> SqlStore::create_project(const std::string& name, const std::string& description,
                                         bool skip_if_exists) {
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

Result<std::vector<Project>> SqlStore::list_projects() {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<Project>> {
    std::vector<Project> out;
    for (const auto& r : db_->query(std::string(kProjectColumns) + "ORDER BY name"))
      out.push_back(to_project(r));
    return out;
  });
}

Result<Project> SqlStore::get_project(const std::string& id) {
  return transact(TxMode::kRead, [&]() -> Result<Project> {
    auto rows = db_->query(std::string(kProjectColumns) + "WHERE id = ?", {id});
    if (rows.empty()) return not_found("project '" + id + "' does not exist");
    return to_project(rows[0]);
  });
}

Result<Project> SqlStore::find_project(const std::string& name) {
  return transact(TxMode::kRead, [&]() -> Result<Project> {
    auto rows = db_->query(std::string(kProjectColumns) + "WHERE name = ?", {name});
    if (rows.empty()) return not_found("project '" + name + "' does not exist");
    return to_project(rows[0]);
  });
}

}  // namespace culvert::store::detail
