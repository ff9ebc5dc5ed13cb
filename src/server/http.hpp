// The server's view of one HTTP exchange, free of any networking library.
//
// HttpServer (http_server.hpp) turns bytes into a Request and a Response back into
// bytes; everything above it (router, auth, routes) sees only these plain structs, so
// it is unit-tested and fuzzed without sockets. Plain values; not thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace culvert::server {

struct Request {
  std::string method;        // "GET", "POST", ... as sent
  std::string target;        // raw request target: path plus query
  std::string path;          // percent-decoded path, no query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string authorization;  // the Authorization header, verbatim ("" when absent)
  std::string content_type;
  std::string if_none_match;    // the If-None-Match header ("" when absent)
  std::string accept_encoding;  // the Accept-Encoding header ("" when absent)
  std::string body;
  std::string remote;         // peer address, for logs
  // For long polls: `watch_peer(on_gone)` asks the server to call `on_gone` (from an
  // I/O thread) if the client closes its connection before the answer is written.
  // Set by HttpServer; empty where there is no socket (in-process tests). At most once.
  std::function<void(std::function<void()> on_gone)> watch_peer;

  // The first value of query parameter `name`, or nullopt.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Delivers the response of one request. May be called from any thread, exactly once.
using Responder = std::function<void(Response)>;

// What HttpServer calls for each request. Implementations must not block: slow work
// goes to another thread, which calls the responder when done. Thread-safe: called
// concurrently from every I/O thread.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void handle(Request request, Responder respond) = 0;
};

// Splits a raw request target into a decoded path and query parameters. Returns
// false when the target is malformed (bad percent-escape, not starting with '/').
bool parse_target(std::string_view target, Request& out);
// Percent-decoding ('+' becomes a space only when `plus_is_space`). nullopt on a bad
// escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);
// Percent-encoding of a query-parameter value (unreserved characters kept).
std::string percent_encode(std::string_view in);

// The JSON error body {"error":{"code":"...","message":"..."}} with the given status.
Response error_response(int http_status, std::string_view code, std::string_view message);
// The reason phrase's short code used in error bodies: 400 -> "bad_request", ...
const char* error_code_for(int http_status);

}  // namespace culvert::server
