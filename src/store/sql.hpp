// Internal to the store: a minimal SQL connection interface that the SQLite and
// PostgreSQL backends implement, so that the store's logic (SqlStore,
// sql_store_impl.hpp) is written once and behaves identically on both.
//
// Error handling: Db methods throw DbError on a database failure. Only the store's
// transaction wrapper (SqlStore::transact) catches it and turns it into a Status, so
// no DbError ever leaves the store; expected outcomes (not found, conflicts) are Status
// values returned by the store's own code.
//
// A Db is one connection and is not thread-safe; SqlStore serializes calls on it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

namespace culvert::store::detail {

enum class Dialect { kSqlite, kPostgres };

// A statement parameter: NULL, an integer, or text.
using Value = std::variant<std::monostate, int64_t, std::string>;
using Params = std::vector<Value>;

inline Value null_value() { return std::monostate{}; }
inline Value opt_value(const std::optional<std::string>& s) {
  return s ? Value(*s) : Value(std::monostate{});
}
Value opt_time_value(const std::optional<SysTime>& t);
Value time_value(SysTime t);

// One result row, every column as text (NULL = nullopt).
class Row {
 public:
  explicit Row(std::vector<std::optional<std::string>> cols) : cols_(std::move(cols)) {}
  size_t size() const { return cols_.size(); }
  bool is_null(size_t i) const { return !cols_.at(i).has_value(); }
  const std::string& str(size_t i) const;  // "" for NULL
  std::optional<std::string> opt(size_t i) const { return cols_.at(i); }
  int64_t i64(size_t i) const;  // 0 for NULL
  SysTime time(size_t i) const;
  std::optional<SysTime> opt_time(size_t i) const;

 private:
  std::vector<std::optional<std::string>> cols_;
};

class DbError : public std::runtime_error {
 public:
  enum class Kind {
    kUnique,       // a unique constraint was violated
    kForeignKey,   // a referenced row does not exist
    kRetry,        // busy / serialization failure / deadlock: the transaction may be retried
    kUnavailable,  // the connection is lost or the database cannot be opened
    kOther,
  };
  DbError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

enum class TxMode { kRead, kWrite };

class Db {
 public:
  virtual ~Db() = default;
  virtual Dialect dialect() const = 0;
  // Starts a transaction. kWrite takes the write lock at once on SQLite (BEGIN
  // IMMEDIATE), so read-then-write transactions never fail on a stale snapshot.
  virtual void begin(TxMode mode) = 0;
  virtual void commit() = 0;
  // Never throws; a no-op when no transaction is open.
  virtual void rollback() noexcept = 0;
  // Runs one statement with `?` placeholders (statements are prepared and cached).
  virtual std::vector<Row> query(std::string_view sql, const Params& params = {}) = 0;
  // Runs one statement; returns the number of rows changed.
  virtual int64_t exec(std::string_view sql, const Params& params = {}) = 0;
  // Runs several `;`-separated statements without parameters (schema scripts).
  virtual void exec_script(const std::string& sql) = 0;
  // Cross-process mutual exclusion for schema migrations (PostgreSQL: a session
  // advisory lock; SQLite: nothing, migrations run in one BEGIN IMMEDIATE transaction).
  virtual void lock_migrations() = 0;
  virtual void unlock_migrations() noexcept = 0;
  // PostgreSQL: a transaction-scoped advisory lock on `key` (serializes appends per
  // flow run so that log ids commit in id order). SQLite: nothing (writes are serial).
  virtual void xact_lock(std::string_view key) = 0;
  // Re-establishes a lost connection (PostgreSQL). Throws DbError(kUnavailable).
  virtual void reconnect() = 0;
};

// full_sync: synchronous=FULL (each commit synced) instead of NORMAL.
std::unique_ptr<Db> open_sqlite_db(const std::string& path, Millis busy_timeout, bool full_sync = false);
std::unique_ptr<Db> open_postgres_db(const std::string& url);

}  // namespace culvert::store::detail
