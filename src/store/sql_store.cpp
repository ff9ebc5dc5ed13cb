// SqlStore (sql_store_impl.hpp): the parts shared by every entity — rows, labels,
// error mapping, transactions' state counts — and make_sql_store.
#include "store/sql_store.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

#include "core/labels.hpp"
#include "store/sql_store_impl.hpp"

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

std::string_view SqlStore::backend() const {
  return db_->dialect() == Dialect::kSqlite ? "sqlite" : "postgresql";
}

Result<int> SqlStore::schema_version() {
  return transact(TxMode::kRead, [&]() -> Result<int> {
    auto rows = db_->query("SELECT MAX(version) FROM schema_migrations");
    return static_cast<int>(rows.at(0).i64(0));
  });
}

std::string SqlStore::for_update(const char* alias) const {
  if (db_->dialect() != Dialect::kPostgres) return "";
  return *alias ? std::string(" FOR UPDATE OF ") + alias : std::string(" FOR UPDATE");
}

// Applies the state-count changes of this transaction, in (state, shard) order so
// that concurrent transactions lock counter rows in one order (no deadlocks).
void SqlStore::apply_count_deltas() {
  for (const auto& [key, delta] : count_deltas_) {
    if (delta == 0) continue;
    db_->exec(
        "INSERT INTO run_state_counts (state, shard, count) VALUES (?, ?, ?) ON CONFLICT (state, shard) "
        "DO UPDATE SET count = run_state_counts.count + excluded.count",
        {key.first, int64_t{key.second}, delta});
  }
  count_deltas_.clear();
}

std::unique_ptr<Store> make_sql_store(std::unique_ptr<Db> db, Clock& clock) {
  return std::make_unique<SqlStore>(std::move(db), clock);
}

}  // namespace culvert::store::detail
