// PostgreSQL implementation of detail::Db over libpqxx 6: one connection, READ
// COMMITTED transactions (pqxx::work) for writes, autocommit statements for reads,
// statements prepared once per connection and
// cached by their SQL text (`?` placeholders are rewritten to $1, $2, ...).
#include <pqxx/pqxx>

#include <functional>
#include <map>

#include "store/sql.hpp"

namespace culvert::store::detail {
namespace {

// Arbitrary constant identifying Culvert's schema-migration advisory lock.
constexpr int64_t kMigrationLockKey = 0x43756c7665727431;  // "Culvert1"

std::string to_dollar_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool in_string = false;
  for (char c : sql) {
    if (c == '\'') in_string = !in_string;
    if (c == '?' && !in_string) {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

[[noreturn]] void rethrow_pqxx() {
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    throw DbError(DbError::Kind::kUnavailable, std::string("PostgreSQL connection lost: ") + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    throw DbError(DbError::Kind::kUnavailable, std::string("PostgreSQL commit in doubt: ") + e.what());
  } catch (const pqxx::sql_error& e) {
    const std::string& st = e.sqlstate();
    DbError::Kind kind = DbError::Kind::kOther;
    if (st == "23505") kind = DbError::Kind::kUnique;
    else if (st == "23503") kind = DbError::Kind::kForeignKey;
    else if (st == "40001" || st == "40P01" || st == "55P03") kind = DbError::Kind::kRetry;
    else if (st.rfind("08", 0) == 0 || st.rfind("57P", 0) == 0) kind = DbError::Kind::kUnavailable;
    throw DbError(kind, std::string("PostgreSQL: ") + e.what());
  } catch (const DbError&) {
    throw;
  } catch (const std::exception& e) {
    throw DbError(DbError::Kind::kOther, std::string("PostgreSQL: ") + e.what());
  }
}

class PostgresDb final : public Db {
 public:
  explicit PostgresDb(std::string url) : url_(std::move(url)) { connect(); }

  ~PostgresDb() override {
    rollback();
    unlock_migrations();
  }

  Dialect dialect() const override { return Dialect::kPostgres; }

  void begin(TxMode mode) override {
    try {
      if (!conn_ || !conn_->is_open()) connect();
      // A read runs its statements without BEGIN/COMMIT: one round trip instead of
      // three. Under READ COMMITTED each statement takes its own snapshot either way,
      // so this changes nothing a reader can see.
      if (mode == TxMode::kRead) tx_ = std::make_unique<pqxx::nontransaction>(*conn_);
      else tx_ = std::make_unique<pqxx::work>(*conn_);
    } catch (...) {
      tx_.reset();
      rethrow_pqxx();
    }
  }

  void commit() override {
    try {
      tx_->commit();
      tx_.reset();
    } catch (...) {
      tx_.reset();
      rethrow_pqxx();
    }
  }

  void rollback() noexcept override {
    try {
      tx_.reset();
    } catch (...) {
    }
  }

  std::vector<Row> query(std::string_view sql, const Params& params) override {
    std::vector<Row> rows;
    try {
      pqxx::result r = run(sql, params);
      rows.reserve(r.size());
      for (const auto& row : r) {
        std::vector<std::optional<std::string>> cols;
        cols.reserve(row.size());
        for (const auto& f : row) {
          if (f.is_null()) cols.emplace_back(std::nullopt);
          else cols.emplace_back(std::string(f.c_str(), f.size()));
        }
        rows.emplace_back(std::move(cols));
      }
    } catch (...) {
      rethrow_pqxx();
    }
    return rows;
  }

  int64_t exec(std::string_view sql, const Params& params) override {
    try {
      return static_cast<int64_t>(run(sql, params).affected_rows());
    } catch (...) {
      rethrow_pqxx();
    }
  }

  void exec_script(const std::string& sql) override {
    try {
      if (tx_) {
        tx_->exec(sql);
      } else {
        pqxx::nontransaction n(*conn_);
        n.exec(sql);
      }
    } catch (...) {
      rethrow_pqxx();
    }
  }

  void lock_migrations() override {
    exec_script("SELECT pg_advisory_lock(" + std::to_string(kMigrationLockKey) + ")");
    migration_locked_ = true;
  }

  void unlock_migrations() noexcept override {
    if (!migration_locked_) return;
    migration_locked_ = false;
    try {
      if (conn_ && conn_->is_open()) {
        pqxx::nontransaction n(*conn_);
        n.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
      }
    } catch (...) {
    }
  }

  void xact_lock(std::string_view key) override {
    // 64-bit FNV-1a of the key: stable across processes and builds.
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : key) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    exec("SELECT pg_advisory_xact_lock(CAST(? AS BIGINT))", {static_cast<int64_t>(h)});
  }

  void reconnect() override {
    try {
      connect();
    } catch (...) {
      rethrow_pqxx();
    }
  }

 private:
  void connect() {
    tx_.reset();
    prepared_.clear();
    conn_.reset();
    try {
      conn_ = std::make_unique<pqxx::connection>(url_);
    } catch (const std::exception& e) {
      throw DbError(DbError::Kind::kUnavailable, std::string("cannot connect to PostgreSQL: ") + e.what());
    }
  }

  pqxx::result run(std::string_view sql, const Params& params) {
    if (!tx_) throw DbError(DbError::Kind::kOther, "statement outside a transaction");
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      std::string name = "s" + std::to_string(prepared_.size() + 1);
      conn_->prepare(name, to_dollar_placeholders(sql));
      it = prepared_.emplace(std::string(sql), name).first;
    }
    std::vector<std::string> texts(params.size());
    std::vector<const char*> ptrs(params.size(), nullptr);
    for (size_t i = 0; i < params.size(); ++i) {
      if (std::holds_alternative<int64_t>(params[i])) {
        texts[i] = std::to_string(std::get<int64_t>(params[i]));
        ptrs[i] = texts[i].c_str();
      } else if (std::holds_alternative<std::string>(params[i])) {
        ptrs[i] = std::get<std::string>(params[i]).c_str();
      }
    }
    return tx_->exec_prepared(it->second, pqxx::prepare::make_dynamic_params(ptrs));
  }

  std::string url_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::transaction_base> tx_;
  std::map<std::string, std::string, std::less<>> prepared_;
  bool migration_locked_ = false;
};

}  // namespace

std::unique_ptr<Db> open_postgres_db(const std::string& url) {
  return std::make_unique<PostgresDb>(url);
}

}  // namespace culvert::store::detail
