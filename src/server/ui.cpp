#include "server/ui.hpp"

#include <algorithm>
#include <cctype>
#include <string>

namespace culvert::server {

const char* const kUiContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  std::transform(o.begin(), o.end(), o.begin(), [](unsigned char c) { return std::tolower(c); });
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the If-None-Match header value names `etag` (or is "*"); W/ prefixes are
// compared weakly, as RFC 9110 asks for If-None-Match.
bool etag_matches(std::string_view header, std::string_view etag) {
  size_t i = 0;
  while (i <= header.size()) {
    size_t j = header.find(',', i);
    if (j == std::string_view::npos) j = header.size();
    auto tag = trim(header.substr(i, j - i));
    if (tag == "*") return true;
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (tag == etag) return true;
    i = j + 1;
  }
  return false;
}

void security_headers(Response& r) {
  r.headers.emplace_back("Content-Security-Policy", kUiContentSecurityPolicy);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
}

Response not_found(std::string_view path) {
  Response r;
  r.status = 404;
  r.content_type = "text/plain; charset=utf-8";
  r.body = "not found: " + std::string(path) + "\n";
  r.headers.emplace_back("Cache-Control", "no-store");
  security_headers(r);
  return r;
}

const UiAsset* find(std::span<const UiAsset> assets, std::string_view path) {
  auto it = std::lower_bound(assets.begin(), assets.end(), path,
                             [](const UiAsset& a, std::string_view p) { return a.path < p; });
  return it != assets.end() && it->path == path ? &*it : nullptr;
}

Response asset_response(const Request& req, const UiAsset& a, bool immutable) {
  Response r;
  r.content_type = std::string(a.content_type);
  bool gz = accepts_gzip(req.accept_encoding);
  r.headers.emplace_back("ETag", std::string(a.etag));
  r.headers.emplace_back("Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
  r.headers.emplace_back("Vary", "Accept-Encoding");
  security_headers(r);
  if (!req.if_none_match.empty() && etag_matches(req.if_none_match, a.etag)) {
    r.status = 304;
    return r;
  }
  if (gz) {
    r.headers.emplace_back("Content-Encoding", "gzip");
    r.body = std::string(a.gzip);
  } else {
    r.body = std::string(a.body);
  }
  return r;
}

}  // namespace

bool is_api_path(std::string_view path) {
  return path == "/api" || path.rfind("/api/", 0) == 0 || path == "/metrics";
}

bool accepts_gzip(std::string_view header) {
  size_t i = 0;
  while (i <= header.size()) {
    size_t j = header.find(',', i);
    if (j == std::string_view::npos) j = header.size();
    auto item = trim(header.substr(i, j - i));
    auto semi = item.find(';');
    auto coding = lower(trim(item.substr(0, semi)));
    if (coding == "gzip" || coding == "x-gzip" || coding == "*") {
      bool refused = false;
      if (semi != std::string_view::npos) {
        auto params = lower(item.substr(semi + 1));
        auto q = params.find("q=");
        if (q != std::string::npos) {
          auto v = trim(std::string_view(params).substr(q + 2));
          refused = !v.empty() && v[0] == '0' && v.find_first_of("123456789") == std::string_view::npos;
        }
      }
      if (coding != "*" || !refused) return !refused;
    }
    i = j + 1;
  }
  return false;
}

Response ui_response(const Request& req, std::span<const UiAsset> assets, std::string_view base) {
  if (req.method != "GET") {
    Response r = error_response(405, "method_not_allowed", "method " + req.method + " is not allowed on " + req.path +
                                                               "; allowed: GET");
    r.headers.emplace_back("Allow", "GET");
    security_headers(r);
    return r;
  }
  const std::string& path = req.path;
  // The path is percent-decoded already: refuse what could only be a trick (a "."
  // or ".." segment, a backslash, a NUL) before looking anything up.
  if (path.find('\\') != std::string::npos || path.find('\0') != std::string::npos ||
      path.find("/./") != std::string::npos || path.find("/../") != std::string::npos ||
      path.ends_with("/..") || path.ends_with("/."))
    return not_found(path);
  std::string prefix = std::string(base) + "/";
  if (path.rfind(prefix, 0) == 0) {
    const UiAsset* a = find(assets, std::string_view(path).substr(prefix.size()));
    return a ? asset_response(req, *a, true) : not_found(path);
  }
  if (path.rfind("/assets/", 0) == 0) return not_found(path);
  auto last = path.substr(path.rfind('/') + 1);
  if (last.find('.') != std::string::npos) return not_found(path);
  const UiAsset* index = find(assets, "index.html");
  if (!index) return not_found(path);
  return asset_response(req, *index, false);
}

void UiHandler::handle(Request request, Responder respond) {
  if (is_api_path(request.path)) return api_.handle(std::move(request), std::move(respond));
  respond(ui_response(request, ui_assets(), ui_asset_base()));
}

}  // namespace culvert::server
