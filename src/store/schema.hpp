// Internal to the store: the versioned schema and how it is applied.
#pragma once

#include <string>
#include <vector>

#include "store/sql.hpp"

namespace culvert::store::detail {

struct Migration {
  int version;
  const char* description;
  std::string sql;  // `;`-separated statements in the dialect's SQL
};

// Every migration, in version order.
std::vector<Migration> migrations(Dialect dialect);

// Applies the migrations not yet recorded in schema_migrations, each in its own
// transaction, under Db::lock_migrations so that concurrent openers (several server
// processes) apply each one exactly once. Idempotent. Returns the schema version.
// Throws DbError, also when the database holds a migration newer than this build knows.
int migrate(Db& db, int64_t now_ms);

}  // namespace culvert::store::detail
