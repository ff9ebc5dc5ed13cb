// Bearer-token authentication and scope checks (docs/SERVER.md).
//
// Tokens are looked up by the SHA-256 of the secret (the store never holds secrets).
// Scopes are ordered admin ⊃ user ⊃ runner; a `run` token acts for one flow run only
// and is admitted only on routes that allow it, for that run.
//
// Authenticator caches successful look-ups for `cache_ttl` (default 2 s) so that a
// busy client does not cost a database read per request. Expiry is checked on every
// request. A revocation made through this server takes effect at once (the entry is
// dropped); one made through another replica takes effect within `cache_ttl`.
// A run token stops working `run_token_grace` after its run reached a final state.
// Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "server/router.hpp"

namespace culvert::store {
class Store;
}

namespace culvert::server {

enum class Scope { kRun = 0, kRunner = 1, kUser = 2, kAdmin = 3 };

std::optional<Scope> parse_scope(std::string_view name);
const char* scope_name(Scope s);

// What a child run's token may report of its parent run besides its own run: the task
// runs and log lines of the parent's map task `task`, of the parent's attempt
// `parent_attempt`, for the map indexes [start, end) (docs/CONCEPTS.md, child runs).
struct ChildScope {
  std::string parent_run_id;
  std::string task;
  int parent_attempt = 0;
  int64_t start = 0;
  int64_t end = 0;
};

struct Principal {
  std::string token_id;
  std::string name;
  Scope scope = Scope::kRunner;
  std::string flow_run_id;  // for Scope::kRun
  std::optional<SysTime> expires;
  // For the run token of a child run.
  std::optional<ChildScope> child;

  bool is_run_token() const { return scope == Scope::kRun; }
  // Whether this principal may read or write flow run `run_id`.
  bool may_access_run(std::string_view run_id) const {
    return scope != Scope::kRun || flow_run_id == run_id;
  }
};

// OK when `p` may call a route with this access; PermissionDenied naming the scope
// that is needed otherwise.
Status authorize(const Principal& p, Access access, bool run_token_allowed);

// The secret of "Bearer <secret>" (scheme case-insensitive), or nullopt.
std::optional<std::string_view> bearer_secret(std::string_view authorization);

struct AuthOptions {
  Millis cache_ttl{2000};          // Default: 2 s
  Millis run_token_grace{60000};   // Default: 60 s after the run's end
  size_t max_cache_entries = 100000;
};

class Authenticator {
 public:
  Authenticator(Clock& clock, AuthOptions options);

  // Resolves an Authorization header value. Unauthenticated when the header is
  // missing or malformed, or the token is unknown, expired or revoked. Blocks on
  // `store` on a cache miss (call it from the database pool).
  Result<Principal> authenticate(std::string_view authorization, store::Store& store);

  // Forget cached entries of a token (after revocation) / of a run's tokens (when the
  // run's state changes, so that the grace period starts without delay).
  void invalidate_token(const std::string& token_id);
  void invalidate_run(const std::string& run_id);

 private:
  struct Entry {
    Principal principal;
    std::optional<SysTime> run_ended;  // end time of the bound run, when final
    SteadyTime fetched{};
  };
  Status check(const Entry& e) const;

  Clock& clock_;
  AuthOptions options_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> cache_;  // key: token hash
};

}  // namespace culvert::server
