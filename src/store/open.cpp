// open_store: picks the backend from the URL, connects, and applies migrations.
#include <filesystem>
#include <system_error>

#include "core/timefmt.hpp"
#include "store/schema.hpp"
#include "store/sql.hpp"
#include "store/sql_store.hpp"
#include "store/store.hpp"

namespace culvert::store {

Result<std::unique_ptr<Store>> open_store(std::string_view url, const StoreOptions& options) {
  Clock& clock = options.clock ? *options.clock : system_clock();
  std::unique_ptr<detail::Db> db;
  try {
    if (url.starts_with("sqlite://")) {
      std::string path(url.substr(9));
      if (path != ":memory:") {
        if (path.empty() || path[0] != '/')
          return invalid_argument("SQLite URL '" + std::string(url) +
                                  "' must name an absolute path (sqlite:///abs/path.db) or be sqlite://:memory:");
        std::error_code ec;
        std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
        if (ec)
          return unavailable("cannot create the directory of '" + path + "': " + ec.message());
      }
      db = detail::open_sqlite_db(path, options.busy_timeout);
    } else if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
      db = detail::open_postgres_db(std::string(url));
    } else {
      return invalid_argument("unsupported store URL '" + std::string(url) +
                              "' (expected sqlite:///abs/path.db, sqlite://:memory: or "
                              "postgresql://user@host:port/db)");
    }
    detail::migrate(*db, to_unix_ms(clock.now()));
  } catch (const detail::DbError& e) {
    return unavailable(std::string("cannot open the store: ") + e.what());
  }
  return detail::make_sql_store(std::move(db), clock);
}

}  // namespace culvert::store
