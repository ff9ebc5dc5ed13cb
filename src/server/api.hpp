// The HTTP API of docs/SERVER.md: routes, authentication, JSON bodies, long polls.
//
// Api is the RequestHandler given to HttpServer. For each request it matches a route
// (404/405), then runs the handler on the database pool (WorkPool): authentication
// (Authenticator), scope check, body validation (api_json.hpp), store calls, and the
// response. /api/health and /api/v1/openapi.json are answered on the I/O thread.
// Long polls (claims, log reads) park in Waiters between store queries and hold no
// thread while they wait.
//
// Borrows everything it is given (all must outlive it); owns the router and metrics.
// handle() is thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <culvert/clock.hpp>

#include "server/http.hpp"
#include "server/router.hpp"
#include "server/service.hpp"

namespace culvert::store {
class Store;
}

namespace culvert::server {

class Authenticator;
class Metrics;
class Waiters;
class WorkPool;

struct ApiOptions {
  std::string version = "0.0.0";
  // Upper bound of wait_ms for claims and log reads. Default: 60 s.
  Millis max_wait{60000};
  // An agent is unhealthy once it missed this many heartbeat intervals. Default: 3 × 10 s.
  Millis agent_heartbeat_interval{10000};
  int agent_missed_heartbeats = 3;
  // Absolute lifetime of a run token (it also stops working shortly after its run
  // ends; see AuthOptions::run_token_grace). Default: 7 days.
  Millis run_token_ttl{std::chrono::hours(24 * 7)};
  // Listings (task runs, logs) stop adding items once their answer reaches this many
  // bytes, and say where to go on (next_cursor). One item always goes in, so an answer
  // may exceed it by one item (at most ~17 KiB: messages are cut to 16 KiB).
  // Default: 4 MiB.
  size_t max_answer_bytes = 4u << 20;
  // The bytes of log messages one flow run may store (all its attempts together); a
  // log batch that would pass it is refused with 413 naming the quota. 0: no quota.
  // Default: 128 MiB.
  int64_t max_log_bytes_per_run = int64_t{128} << 20;
};

// The store of database-pool worker `i` (one connection per worker).
using StoreForWorker = std::function<store::Store&(int worker)>;

// RunEvents that wake parked claims and log readers and drop cached run tokens.
std::unique_ptr<RunEvents> make_run_events(Waiters& waiters, Authenticator& auth);

class Api final : public RequestHandler {
 public:
  Api(Clock& clock, WorkPool& pool, StoreForWorker stores, Authenticator& auth, Waiters& waiters,
      RunEvents& events, ApiOptions options);
  ~Api() override;

  void handle(Request request, Responder respond) override;

  const Router& router() const;
  Metrics& metrics();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The OpenAPI 3 document describing every route (openapi.cpp).
const std::string& openapi_document();

}  // namespace culvert::server
