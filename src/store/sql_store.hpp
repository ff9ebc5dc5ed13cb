// Internal to the store: SqlStore (sql_store_impl.hpp) implements Store once over
// detail::Db, for both SQLite and PostgreSQL (backend differences stay inside the Db
// implementations and a few dialect switches, e.g. FOR UPDATE SKIP LOCKED).
#pragma once

#include <memory>

#include "store/store.hpp"

namespace culvert::store::detail {

class Db;

// Takes ownership of `db` (already migrated). `clock` is not owned and must outlive
// the store.
std::unique_ptr<Store> make_sql_store(std::unique_ptr<Db> db, Clock& clock);

}  // namespace culvert::store::detail
