// SqlStore (sql_store_impl.hpp): agents.
#include "store/sql_store_impl.hpp"

#include "core/crypto.hpp"

namespace culvert::store::detail {

namespace {

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

}  // namespace

Result<Agent> SqlStore::register_agent(const NewAgent& a) {
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

Result<Agent> SqlStore::get_agent(const std::string& id) {
  return transact(TxMode::kRead, [&]() -> Result<Agent> { return load_agent(id); });
}

Status SqlStore::heartbeat_agent(const std::string& id, SysTime now) {
  return transact(TxMode::kWrite, [&]() -> Result<Unit> {
           if (db_->exec("UPDATE agents SET last_heartbeat = ? WHERE id = ?", {time_value(now), id}) == 0)
             return not_found("agent '" + id + "' does not exist");
           return Unit{};
         })
      .status();
}

Result<std::vector<Agent>> SqlStore::list_agents() {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<Agent>> {
    std::vector<Agent> out;
    for (const auto& r : db_->query(std::string(kAgentColumns) + "ORDER BY name")) out.push_back(to_agent(r));
    return out;
  });
}

Result<Agent> SqlStore::load_agent(const std::string& id) {
  auto rows = db_->query(std::string(kAgentColumns) + "WHERE id = ?", {id});
  if (rows.empty()) return not_found("agent '" + id + "' does not exist");
  return to_agent(rows[0]);
}

}  // namespace culvert::store::detail
