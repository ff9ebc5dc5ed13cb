// SQLite implementation of detail::Db: one sqlite3 connection in WAL mode with
// synchronous=NORMAL (or FULL), foreign keys on, a busy timeout, and a cache of prepared
// statements keyed by their SQL text.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "store/sql.hpp"

namespace culvert::store::detail {
namespace {

class SqliteDb final : public Db {
 public:
  SqliteDb(const std::string& path, Millis busy_timeout, bool full_sync) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (path == ":memory:") flags |= SQLITE_OPEN_MEMORY;
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw DbError(DbError::Kind::kUnavailable, "cannot open SQLite database '" + path + "': " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    busy_timeout_ = busy_timeout;
    sqlite3_busy_handler(db_, &SqliteDb::on_busy, this);
    if (path != ":memory:") {
      // Switching a fresh database to WAL can fail with SQLITE_BUSY without consulting
      // the busy handler (SQLite's deadlock avoidance when several connections open it at
      // once): retry until the busy timeout.
      auto deadline = std::chrono::steady_clock::now() + busy_timeout;
      for (;;) {
        try {
          exec_script("PRAGMA journal_mode=WAL");
          break;
        } catch (const DbError& e) {
          if (e.kind() != DbError::Kind::kRetry || std::chrono::steady_clock::now() >= deadline) throw;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
    }
    exec_script(full_sync ? "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON"
                          : "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON");
  }

  ~SqliteDb() override {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  void begin(TxMode mode) override {
    exec_script(mode == TxMode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
  }
  void commit() override { exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  std::vector<Row> query(std::string_view sql, const Params& params) override {
    std::vector<Row> rows;
    run(sql, params, &rows);
    return rows;
  }

  int64_t exec(std::string_view sql, const Params& params) override {
    run(sql, params, nullptr);
    return sqlite3_changes(db_);
  }

  void exec_script(const std::string& sql) override {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      fail(rc, msg);
    }
  }

  void lock_migrations() override {}
  void unlock_migrations() noexcept override {}
  void xact_lock(std::string_view) override {}
  void reconnect() override {}

 private:
  [[noreturn]] void fail(int rc, const std::string& msg) {
    int primary = rc & 0xff;
    DbError::Kind kind = DbError::Kind::kOther;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) kind = DbError::Kind::kUnique;
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) kind = DbError::Kind::kForeignKey;
    else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) kind = DbError::Kind::kRetry;
    else if (primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR || primary == SQLITE_FULL ||
             primary == SQLITE_READONLY)
      kind = DbError::Kind::kUnavailable;
    throw DbError(kind, "SQLite: " + msg);
  }

  sqlite3_stmt* prepare(std::string_view sql) {
    auto it = stmts_.find(sql);
    if (it != stmts_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) fail(rc, std::string(sqlite3_errmsg(db_)) + " in: " + std::string(sql));
    stmts_.emplace(std::string(sql), stmt);
    return stmt;
  }

  void run(std::string_view sql, const Params& params, std::vector<Row>* rows) {
    sqlite3_stmt* stmt = prepare(sql);
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{stmt};
    for (size_t i = 0; i < params.size(); ++i) {
      int idx = static_cast<int>(i) + 1;
      const Value& v = params[i];
      if (std::holds_alternative<int64_t>(v)) {
        sqlite3_bind_int64(stmt, idx, std::get<int64_t>(v));
      } else if (std::holds_alternative<std::string>(v)) {
        const auto& s = std::get<std::string>(v);
        sqlite3_bind_text(stmt, idx, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
      } else {
        sqlite3_bind_null(stmt, idx);
      }
    }
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) fail(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_));
      if (!rows) continue;
      int n = sqlite3_column_count(stmt);
      std::vector<std::optional<std::string>> cols;
      cols.reserve(n);
      for (int c = 0; c < n; ++c) {
        if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
          cols.emplace_back(std::nullopt);
        } else {
          const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
          cols.emplace_back(std::string(p, sqlite3_column_bytes(stmt, c)));
        }
      }
      rows->emplace_back(std::move(cols));
    }
  }

  // Waits for a lock held by another connection with short sleeps (SQLite's default
  // handler sleeps up to 100 ms at a time, which wastes most of a short wait under
  // contention), until busy_timeout_ has passed since the first attempt.
  static int on_busy(void* self, int count) {
    auto* db = static_cast<SqliteDb*>(self);
    auto now = std::chrono::steady_clock::now();
    if (count == 0) db->busy_since_ = now;
    if (now - db->busy_since_ >= db->busy_timeout_) return 0;
    std::this_thread::sleep_for(std::chrono::microseconds(std::min(20 * (count + 1), 1000)));
    return 1;
  }

  sqlite3* db_ = nullptr;
  Millis busy_timeout_{5000};
  std::chrono::steady_clock::time_point busy_since_{};
  std::map<std::string, sqlite3_stmt*, std::less<>> stmts_;
};

}  // namespace

std::unique_ptr<Db> open_sqlite_db(const std::string& path, Millis busy_timeout, bool full_sync) {
  return std::make_unique<SqliteDb>(path, busy_timeout, full_sync);
}

}  // namespace culvert::store::detail
