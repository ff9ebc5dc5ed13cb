// SqlStore (sql_store_impl.hpp): agents.
#include "store/sql_store_impl.hpp"

#include "core/crypto.hpp"

namespace culvert::store::detail {

namespace {

constexpr const char* kAgentColumns =
    "SELECT id, name, type, labels, created, last_heartbeat, token_id, stopped_at, run_config_types, max_concurrent FROM agents ";

Agent to_agent(const Row& r) {
  Agent a;
  a.id = r.str(0);
  a.name = r.str(1);
  a.type = r.str(2);
  a.labels = parse_labels(r.str(3));
  a.created = r.time(4);
  a.last_heartbeat = r.opt_time(5);
  a.token_id = r.opt(6);
  a.stopped_at = r.opt_time(7);
  a.run_config_types = parse_labels(r.str(8));
  if (a.run_config_types.empty()) a.run_config_types = {a.type};
  if (!r.is_null(9)) a.max_concurrent = static_cast<int>(r.i64(9));
  return a;
}

}  // namespace

Result<Agent> SqlStore::register_agent(const NewAgent& a) {
  if (a.name.empty()) return invalid_argument("agent name must not be empty");
  if (a.token_id && a.token_id->empty()) return invalid_argument("an agent's token id must not be empty");
  if (a.max_concurrent && *a.max_concurrent < 1) return invalid_argument("an agent's max concurrent runs must be at least 1");
  const Value max_concurrent = a.max_concurrent ? Value(int64_t{*a.max_concurrent}) : Value();
  return transact(
      TxMode::kWrite,
      [&]() -> Result<Agent> {
        auto rows = db_->query("SELECT id, token_id FROM agents WHERE name = ?" + for_update(""), {a.name});
        const std::string types = labels_json({a.type});
        std::string id;
        if (rows.empty()) {
          if (a.token_id) {
            auto n = db_->query("SELECT COUNT(*) FROM agents WHERE token_id = ?", {*a.token_id});
            if (!n.empty() && n[0].i64(0) >= kMaxAgentsPerToken)
              return conflict("this token has registered " + std::to_string(kMaxAgentsPerToken) +
                              " agents, the most one token may; re-register one of their names, or use another token");
          }
          id = new_uuid();
          db_->exec(
              "INSERT INTO agents (id, name, type, labels, created, token_id, run_config_types, max_concurrent) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              {id, a.name, a.type, labels_json(a.labels), now_ms(), opt_value(a.token_id), types, max_concurrent});
        } else {
          id = rows[0].str(0);
          auto bound = rows[0].opt(1);
          if (bound && bound != a.token_id) {
            // Bound to another token: only when that token can no longer be used.
            auto t = db_->query("SELECT revoked_at, expires FROM tokens WHERE id = ?", {*bound});
            bool live = !t.empty() && t[0].is_null(0) && (t[0].is_null(1) || t[0].i64(1) > now_ms());
            if (live)
              return conflict("agent name '" + a.name + "' is registered by another token (agent " + id +
                              "); use that token, or another name");
          }
          db_->exec(
              "UPDATE agents SET type = ?, labels = ?, token_id = ?, stopped_at = NULL, run_config_types = ?, "
              "max_concurrent = ? WHERE id = ?",
              {a.type, labels_json(a.labels), a.token_id ? Value(*a.token_id) : opt_value(bound), types, max_concurrent,
               id});
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

Status SqlStore::deregister_agent(const std::string& id, SysTime now) {
  return transact(TxMode::kWrite, [&]() -> Result<Unit> {
           if (db_->query("SELECT 1 FROM agents WHERE id = ?", {id}).empty())
             return not_found("agent '" + id + "' does not exist");
           db_->exec("UPDATE agents SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL", {time_value(now), id});
           return Unit{};
         })
      .status();
}

Status SqlStore::set_agent_types(const std::string& id, const std::vector<std::string>& types) {
  return transact(TxMode::kWrite, [&]() -> Result<Unit> {
           if (db_->exec("UPDATE agents SET run_config_types = ? WHERE id = ?", {labels_json(types), id}) == 0)
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
