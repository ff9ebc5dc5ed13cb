// The route table: methods and path patterns with `{name}` parameters.
//
// A Router holds RouteSpecs (what a route is: method, pattern, who may call it); the
// API keeps the handler of route i at index i. The route table is also what the
// OpenAPI document is checked against (openapi_test.cpp). Building is not thread-safe;
// match() on a built router is (it is read-only).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace culvert::server {

// Who may call a route. Scopes are ordered: admin ⊃ user ⊃ runner. `run` tokens are
// bound to one flow run and are admitted only where RouteSpec::run_token says so.
enum class Access { kPublic, kRunner, kUser, kAdmin };

struct RouteSpec {
  std::string method;   // "GET", "POST", "DELETE"
  std::string pattern;  // "/api/v1/flow-runs/{id}/state"
  Access access = Access::kRunner;
  bool run_token = false;  // a run token may call it (the handler checks which run)
  std::string summary;     // one line, also used by the OpenAPI check
};

class PathParams {
 public:
  void add(std::string name, std::string value) { items_.emplace_back(std::move(name), std::move(value)); }
  // The value of `{name}`; "" when the pattern had no such parameter.
  const std::string& get(std::string_view name) const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

class Router {
 public:
  struct Match {
    // 200 when a route matched (index is set), 404 when no pattern matched the path,
    // 405 when a pattern matched but not with this method (allow lists the methods).
    int status = 404;
    size_t index = 0;
    PathParams params;
    std::string allow;
  };

  // Adds a route and returns its index. Patterns must start with '/'; a segment that
  // is exactly `{name}` matches any one non-empty segment.
  size_t add(RouteSpec spec);
  Match match(std::string_view method, std::string_view path) const;
  const std::vector<RouteSpec>& routes() const { return specs_; }

 private:
  struct Compiled {
    std::vector<std::string> segments;  // literal, or "{name}"
  };
  std::vector<RouteSpec> specs_;
  std::vector<Compiled> compiled_;
};

// Splits "/a/b/c" into {"a","b","c"}; a trailing '/' is ignored.
std::vector<std::string_view> split_path(std::string_view path);

}  // namespace culvert::server
