#include "store/testing.hpp"

#include <pqxx/pqxx>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/crypto.hpp"

namespace culvert::store {
namespace {

// Replaces the database name (the URL's path) of a postgresql:// URL.
std::string with_database(const std::string& url, const std::string& db) {
  auto scheme = url.find("://");
  auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  std::string base = slash == std::string::npos ? url : url.substr(0, slash);
  std::string query;
  if (slash != std::string::npos) {
    auto q = url.find('?', slash);
    if (q != std::string::npos) query = url.substr(q);
  }
  return base + "/" + db + query;
}

}  // namespace

std::string test_postgres_url() {
  if (const char* u = std::getenv("CULVERT_TEST_PG_URL"); u && *u) return u;
  if (const char* f = std::getenv("CULVERT_TEST_PG_URL_FILE"); f && *f) {
    std::ifstream in(f);
    std::string line;
    if (std::getline(in, line)) return line;
  }
  return {};
}

Result<TestDatabase> TestDatabase::create(const std::string& backend) {
  TestDatabase t;
  t.backend_ = backend;
  if (backend == "sqlite") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "culvert-store-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return internal_error("mkdtemp failed");
    t.dir_ = tmpl;
    t.url_ = "sqlite://" + t.dir_ + "/culvert.db";
    return t;
  }
  if (backend == "postgres") {
    std::string base = test_postgres_url();
    if (base.empty())
      return unavailable("no PostgreSQL server for tests: set CULVERT_TEST_PG_URL or CULVERT_TEST_PG_URL_FILE "
                         "(scripts/testenv/postgres.sh start DIR writes DIR/url)");
    t.admin_url_ = with_database(base, "postgres");
    t.db_name_ = "culvert_test_" + hex_encode(random_bytes(6));
    try {
      pqxx::connection c(t.admin_url_);
      pqxx::nontransaction n(c);
      n.exec("CREATE DATABASE " + t.db_name_);
    } catch (const std::exception& e) {
      return unavailable(std::string("cannot create a test database: ") + e.what());
    }
    t.url_ = with_database(base, t.db_name_);
    return t;
  }
  return invalid_argument("unknown test backend '" + backend + "'");
}

TestDatabase::TestDatabase(TestDatabase&& o) noexcept
    : backend_(std::move(o.backend_)),
      url_(std::move(o.url_)),
      dir_(std::move(o.dir_)),
      admin_url_(std::move(o.admin_url_)),
      db_name_(std::move(o.db_name_)) {
  o.dir_.clear();
  o.db_name_.clear();
}

TestDatabase::~TestDatabase() {
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  if (!db_name_.empty()) {
    try {
      pqxx::connection c(admin_url_);
      pqxx::nontransaction n(c);
      n.exec("DROP DATABASE IF EXISTS " + db_name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
      // Best effort: the cluster is thrown away after the tests anyway.
    }
  }
}

}  // namespace culvert::store
