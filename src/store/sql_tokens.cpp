// SqlStore (sql_store_impl.hpp): API tokens.
#include "store/sql_store_impl.hpp"

#include "core/crypto.hpp"

namespace culvert::store::detail {

namespace {

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

}  // namespace

Result<Token> SqlStore::create_token(const NewToken& t) {
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

Result<Token> SqlStore::find_token_by_hash(const std::string& hash) {
  return transact(TxMode::kRead, [&]() -> Result<Token> {
    auto rows = db_->query(std::string(kTokenColumns) + "WHERE hash = ?", {hash});
    if (rows.empty()) return not_found("no such token");
    return to_token(rows[0]);
  });
}

Result<std::vector<Token>> SqlStore::list_tokens() {
  return transact(TxMode::kRead, [&]() -> Result<std::vector<Token>> {
    std::vector<Token> out;
    for (const auto& r : db_->query(std::string(kTokenColumns) + "ORDER BY created, id")) out.push_back(to_token(r));
    return out;
  });
}

Status SqlStore::revoke_token(const std::string& id, SysTime now) {
  return transact(TxMode::kWrite, [&]() -> Result<Unit> {
           if (db_->exec("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                         {time_value(now), id}) == 0)
             return not_found("token '" + id + "' does not exist");
           return Unit{};
         })
      .status();
}

Result<int64_t> SqlStore::count_tokens() {
  return transact(TxMode::kRead,
                  [&]() -> Result<int64_t> { return db_->query("SELECT COUNT(*) FROM tokens").at(0).i64(0); });
}

Status SqlStore::validate_token(const NewToken& t) {
  if (t.scope != "admin" && t.scope != "user" && t.scope != "runner" && t.scope != "run")
    return invalid_argument("unknown token scope '" + t.scope + "' (expected admin, user, runner or run)");
  if (t.scope == "run" && (!t.flow_run_id || t.flow_run_id->empty()))
    return invalid_argument("a token of scope 'run' needs a flow_run_id");
  if (t.hash.empty()) return invalid_argument("token hash must not be empty");
  return Status::ok();
}

// Inside a transaction.
Status SqlStore::insert_token(NewToken t) {
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

}  // namespace culvert::store::detail
