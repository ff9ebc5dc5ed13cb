// A small blocking HTTP client on libcurl, for talking to AWS endpoints (S3, ECS) and
// the credential endpoints (ECS container credentials, EC2 instance metadata).
// One call = one request on a fresh easy handle; no shared state, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <culvert/status.hpp>

namespace culvert::aws {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  // The body: `body`, or when `body_file` is set, `body_length` bytes of that file
  // from `body_offset` (streamed, never held in memory).
  std::string_view body;
  std::string body_file;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  // When set, a 2xx response body is streamed into this file (created or truncated);
  // other responses are kept in HttpResponse::body for error reporting.
  std::string response_file;
  long connect_timeout_ms = 5000;
  long timeout_ms = 0;  // whole request; 0 = none
  // Aborts a transfer slower than 1 KiB/s for this long (0 = never).
  long low_speed_seconds = 60;
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // The first header named `name` (lower case), or "" when absent.
  std::string header(std::string_view name) const;
};

// Sends the request. A transport failure (refused, timed out, DNS) is Unavailable and
// names the URL's host; any HTTP status, including 4xx/5xx, is a response.
Result<HttpResponse> http_send(const HttpRequest& request);

// Where AWS clients send their requests: http_send in production, a fake in unit tests
// (so request shapes, failures and retries are tested without a network).
// Implementations must be thread-safe.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // As http_send: a transport failure is Unavailable, any HTTP status a response.
  virtual Result<HttpResponse> send(const HttpRequest& request) = 0;
};
// The process-wide transport over http_send (stateless, never destroyed).
HttpTransport& curl_transport();

// Splits "scheme://host[:port][/path]" into its parts. InvalidArgument when malformed.
struct UrlParts {
  std::string scheme;  // "http" or "https"
  std::string host;    // without port
  std::string port;    // "" when absent
  std::string path;    // "" or starting with '/'
  // "host" or "host:port" as in a Host header (default ports omitted).
  std::string host_header() const;
};
Result<UrlParts> parse_url(std::string_view url);

}  // namespace culvert::aws
