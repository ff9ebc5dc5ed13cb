// HTTP/1.1 server with keep-alive on Boost.Beast (kept out of this header).
//
// Threading model: one io_context run by `threads` I/O threads. Each connection lives
// on its own strand, reads one request at a time, hands it to the RequestHandler and
// writes the response when the handler's Responder is called (from any thread; the
// write is posted back onto the connection's strand). Handlers must not block the I/O
// threads. A body above `body_limit` is answered with 413 and the connection closed;
// an unparsable request gets 400. Connections are capped (`max_connections`); a failed
// accept is retried after a back-off, never in a loop, and logged rate-limited.
//
// Owns its sockets and threads; the RequestHandler is borrowed and must outlive it.
// start()/stop() are called by one owner thread; port() and in_flight() are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <culvert/status.hpp>

#include "server/http.hpp"

namespace culvert::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // an IP address literal
  uint16_t port = 4200;            // 0 picks a free port (read it back with port())
  int threads = 0;                 // I/O threads. Default: number of cores
  size_t body_limit = 1 << 20;     // bytes. Default: 1 MiB
  // A request's header must have arrived this long after its first byte (or after the
  // connection was accepted): slow or silent clients do not hold a descriptor longer.
  std::chrono::milliseconds header_timeout{10000};
  // A keep-alive connection idle between requests this long is closed. Long polls are
  // requests in progress, not idle: their wait is separate.
  std::chrono::milliseconds idle_timeout{30000};
  // Open connections at most; at the cap the server stops accepting (new connections
  // wait in the listen backlog) until one closes. 0: default_max_connections().
  int max_connections = 0;
  // After an accept fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
  // ENOMEM), the next accept waits this long (a timer: no I/O thread is blocked).
  std::chrono::milliseconds accept_backoff{100};
  // Accept failures are logged at most once per this interval, with their count.
  std::chrono::milliseconds accept_log_interval{10000};
};

// The connection cap derived from the soft RLIMIT_NOFILE: the limit minus 64
// descriptors kept for database connections, files and the listening socket (half the
// limit when it is below 128), at least 4.
int default_max_connections();
int max_connections_for_nofile(long nofile);

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, RequestHandler& handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. Unavailable when the address cannot
  // be bound.
  Status start();
  // The bound port (after start()).
  uint16_t port() const;
  // Requests read but not yet answered.
  int in_flight() const;
  // Open connections, and the cap in force (after start()).
  int connections() const;
  int max_connections() const;

  // Stops accepting connections; connections finish the request they are on and are
  // then closed (no further keep-alive requests).
  void stop_accepting();
  // Waits up to `grace` for in-flight requests to be answered, then closes every
  // connection and joins the I/O threads. Idempotent.
  void stop(std::chrono::milliseconds grace);

  struct Impl;  // defined in http_server.cpp only

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace culvert::server
