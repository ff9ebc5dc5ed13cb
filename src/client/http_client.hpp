// HTTP/1.1 client for the Culvert server API, over libcurl.
//
// One HttpClient owns one curl easy handle and reuses it for every request, so
// consecutive requests to the same server share a keep-alive connection. It adds the
// bearer token, JSON headers and timeouts, and turns failures into culvert::Status:
// transport errors (connection refused, DNS, timeout) and non-2xx answers, whose
// `{"error":{"code","message"}}` body supplies the message.
//
// NOT thread-safe: use one HttpClient (or ApiClient) per thread. Owns its curl handle;
// movable, not copyable.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <culvert/status.hpp>

namespace culvert::client {

struct ClientOptions {
  // Base URL of the server, without the /api/v1 suffix. Default: http://127.0.0.1:4200.
  std::string api_url = "http://127.0.0.1:4200";
  // Sent as "Authorization: Bearer <token>" when non-empty.
  std::string api_token;
  // Default: 5 s.
  std::chrono::milliseconds connect_timeout{5000};
  // Whole-request limit, on top of any long-poll wait a call asks for. Default: 30 s.
  std::chrono::milliseconds request_timeout{30000};
  // An answer longer than this is cut off and the call fails (the server's listings
  // stop at about 4 MiB a page). Default: 64 MiB.
  size_t max_answer_bytes = size_t{64} << 20;
};

struct HttpResponse {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  explicit HttpClient(ClientOptions options);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  const ClientOptions& options() const;

  // Sends one request; `target` is the path and query ("/api/v1/flows?project=p").
  // `body` (may be empty) is sent as application/json for POST/PUT/PATCH/DELETE.
  // `extra_timeout` extends the request timeout (long polls). Any HTTP status is a
  // value here; only transport failures are errors (kUnavailable, kTimeout).
  Result<HttpResponse> send(std::string_view method, std::string_view target, std::string_view body,
                            std::chrono::milliseconds extra_timeout = std::chrono::milliseconds(0));

  // send(), then a non-2xx status becomes an error Status (see status_from_http).
  Result<std::string> call(std::string_view method, std::string_view target, std::string_view body,
                           std::chrono::milliseconds extra_timeout = std::chrono::milliseconds(0));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The Status for a non-2xx answer: 400 InvalidArgument, 401 Unauthenticated, 403
// PermissionDenied, 404 NotFound, 409 Conflict, 413 TooLarge, 422 Unprocessable, 5xx
// Unavailable/Internal. The message is the server's error.message when the body has
// one, else "HTTP <status> from <what>" plus the start of the body.
Status status_from_http(int http_status, std::string_view body, std::string_view what);

// Percent-encodes a path segment or query value (RFC 3986 unreserved kept).
std::string url_encode(std::string_view s);

}  // namespace culvert::client
