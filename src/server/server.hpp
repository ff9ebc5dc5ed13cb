// The orchestration server: store connections, database pool, HTTP server, API,
// long-poll waiters and background services, wired together.
//
// Threading: I/O threads (HttpServer), a database pool with one store connection per
// thread (WorkPool), and one timer thread that wakes expired long polls and runs the
// background services (liveness, and later schedules) on the pool at their interval.
//
// Owns everything it creates. start()/stop() are called by one owner thread.
#pragma once

#include <memory>
#include <string>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/liveness.hpp"
#include "server/retention.hpp"
#include "server/scheduler.hpp"

namespace culvert::server {

struct ServerOptions {
  std::string db_url;                   // REQUIRES: sqlite:///PATH or postgresql://...
  std::string listen = "127.0.0.1:4200";  // host:port; port 0 picks a free one
  size_t max_body = 1 << 20;            // Default: 1 MiB
  int max_connections = 0;              // Default (0): from RLIMIT_NOFILE (default_max_connections)
  Millis header_timeout{10000};         // a request's header must arrive within this
  Millis idle_timeout{30000};           // idle keep-alive connections are closed after this
  int io_threads = 0;                   // Default: number of cores
  int db_threads = 4;                   // database connections / pool threads
  Millis poll_interval{250};            // long polls re-check the database this often
  Millis tick{20};                      // timer resolution (long-poll deadlines)
  Millis shutdown_grace{10000};         // in-flight requests get this long at stop()
  bool bootstrap_admin = true;          // create an admin token on an empty database
  std::string profile_path;             // save that token here ("" = don't)
  std::string profile_name = "default";
  ApiOptions api;
  AuthOptions auth;
  LivenessOptions liveness;
  bool liveness_enabled = true;
  SchedulerOptions scheduler;
  bool scheduler_enabled = true;
  RetentionOptions retention;  // started when retention.retention > 0
};

// Splits "host:port" or "[v6]:port". InvalidArgument when malformed.
Status parse_listen(const std::string& listen, std::string& host, uint16_t& port);

class Server {
 public:
  explicit Server(ServerOptions options, Clock& clock = system_clock());
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Adds a background service (before start()).
  void add_service(std::unique_ptr<BackgroundService> service);
  // What services use to wake waiters (valid after construction).
  RunEvents& events();

  // Opens the store connections (migrating the database), creates the admin token on
  // an empty database, listens and starts the threads.
  Status start();
  uint16_t port() const;
  // "http://HOST:PORT" (127.0.0.1 when listening on a wildcard address).
  std::string url() const;
  // The admin token created by start() on an empty database ("" otherwise).
  const std::string& bootstrap_token() const;

  // Stops accepting, answers parked long polls, waits for in-flight requests (up to
  // shutdown_grace), stops the threads and closes the store. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace culvert::server
