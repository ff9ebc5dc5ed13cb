// Test support: runs the real `culvert server start` binary on a free port with a
// temporary HOME, and a small keep-alive HTTP client (libcurl) to talk to it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace culvert::testing {

struct Reply {
  long status = 0;  // 0: no answer (connection failed)
  std::string text;
  nlohmann::json body;  // discarded when the body is not JSON
};

// Not thread-safe: one client per thread.
class HttpClient {
 public:
  explicit HttpClient(std::string base_url);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Reply request(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& token = "", long timeout_ms = 60000);
  Reply get(const std::string& path, const std::string& token = "") { return request("GET", path, "", token); }
  Reply post(const std::string& path, const nlohmann::json& body, const std::string& token) {
    return request("POST", path, body.is_null() ? "" : body.dump(), token);
  }

 private:
  std::string base_;
  void* curl_;
};

// A temporary directory removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Resource limits set in the child before it runs the server (0: inherited).
struct ServerLimits {
  long nofile = 0;  // RLIMIT_NOFILE (soft and hard)
};

class ServerProcess {
 public:
  // Starts `culvert server start --listen 127.0.0.1:0 --db DB_URL EXTRA...` with
  // HOME=home and waits (reading its stdout) until it prints "listening on URL".
  // Returns nullptr (after a gtest failure) if it exits or prints no such line.
  static std::unique_ptr<ServerProcess> start(const std::string& home, const std::string& db_url,
                                              const std::vector<std::string>& extra = {},
                                              ServerLimits limits = {});
  ~ServerProcess();

  const std::string& url() const { return url_; }
  // Everything printed on stdout up to and including the "listening on" line.
  const std::string& banner() const { return banner_; }
  pid_t pid() const { return pid_; }
  // What the server has written to stderr so far (its log).
  std::string log() const;
  // SIGKILL and reap.
  void kill9();
  // SIGTERM and wait; returns the exit status (or 128 + signal).
  int terminate();

 private:
  pid_t pid_ = -1;
  std::string url_;
  std::string banner_;
  std::string log_path_;
};

// The SQLite or PostgreSQL URL for a fresh database of `backend` ("sqlite" or
// "postgres"); `keep` holds what must stay alive while it is used.
struct TestDb {
  std::string url;
  std::shared_ptr<void> keep;
};
TestDb make_test_db(const std::string& backend);

}  // namespace culvert::testing
