// Serving the web UI (docs/UI.md) beside the API, on the same port.
//
// UiHandler is the RequestHandler given to HttpServer: paths under /api/ and /metrics go
// to the API unchanged; every other path is answered from the embedded assets
// (ui_assets.hpp) on the I/O thread, with no store and no token (the files are public;
// every piece of data the UI shows comes from /api/v1 with the user's token).
//
//   /assets/<base>/<file>  the file: ETag, gzip when accepted, cached for a year
//                          (a new build has a new base); unknown → 404
//   /, /runs/ID, ...       index.html (no-cache), so every page is a deep link
//   a last segment with a dot, /assets/... not found → 404 (not index.html)
//
// Every UI answer carries a strict Content-Security-Policy (scripts only from this
// origin, no inline script, frame-ancestors 'none'), X-Content-Type-Options: nosniff,
// X-Frame-Options: DENY and Referrer-Policy: no-referrer. Only GET (405 else).
// Borrows `api`; thread-safe.
#pragma once

#include <span>

#include "server/http.hpp"
#include "server/ui_assets.hpp"

namespace culvert::server {

// The answer to a request for a UI path (pure; what UiHandler sends).
Response ui_response(const Request& req, std::span<const UiAsset> assets, std::string_view base);
// Whether `path` belongs to the API (/api, /api/..., /metrics) rather than to the UI.
bool is_api_path(std::string_view path);
// Whether an Accept-Encoding header value accepts gzip (a q of 0 refuses it).
bool accepts_gzip(std::string_view accept_encoding);

// The Content-Security-Policy sent with every UI answer.
extern const char* const kUiContentSecurityPolicy;

class UiHandler final : public RequestHandler {
 public:
  explicit UiHandler(RequestHandler& api) : api_(api) {}
  void handle(Request request, Responder respond) override;

 private:
  RequestHandler& api_;
};

}  // namespace culvert::server
