// Test and benchmark support (not part of the server): a fresh, empty database per
// test for each backend.
//
//   sqlite:   a new file in a new temporary directory (deleted afterwards)
//   postgres: a new database on the server named by $CULVERT_TEST_PG_URL, or by the
//             first line of the file $CULVERT_TEST_PG_URL_FILE (written by
//             scripts/testenv/postgres.sh start); dropped afterwards
//
// Not thread-safe; one TestDatabase per test.
#pragma once

#include <string>

#include <culvert/status.hpp>

namespace culvert::store {

class TestDatabase {
 public:
  // backend: "sqlite" or "postgres".
  static Result<TestDatabase> create(const std::string& backend);
  TestDatabase(TestDatabase&& other) noexcept;
  TestDatabase& operator=(TestDatabase&&) = delete;
  TestDatabase(const TestDatabase&) = delete;
  ~TestDatabase();

  // The URL to pass to open_store.
  const std::string& url() const { return url_; }

 private:
  TestDatabase() = default;
  std::string backend_;
  std::string url_;
  std::string dir_;       // sqlite: the temporary directory
  std::string admin_url_; // postgres: the server's maintenance database
  std::string db_name_;   // postgres: the database created for this test
};

// The PostgreSQL URL from the environment (see above); empty when none is configured.
std::string test_postgres_url();

}  // namespace culvert::store
