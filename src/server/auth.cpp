#include "server/auth.hpp"

#include <cctype>

#include "core/crypto.hpp"
#include "store/store.hpp"

namespace culvert::server {
namespace {

Status unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
Status forbidden(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

}  // namespace

std::optional<Scope> parse_scope(std::string_view name) {
  if (name == "admin") return Scope::kAdmin;
  if (name == "user") return Scope::kUser;
  if (name == "runner") return Scope::kRunner;
  if (name == "run") return Scope::kRun;
  return std::nullopt;
}

const char* scope_name(Scope s) {
  switch (s) {
    case Scope::kAdmin: return "admin";
    case Scope::kUser: return "user";
    case Scope::kRunner: return "runner";
    case Scope::kRun: return "run";
  }
  return "?";
}

Status authorize(const Principal& p, Access access, bool run_token_allowed) {
  if (access == Access::kPublic) return Status::ok();
  if (p.scope == Scope::kRun) {
    if (run_token_allowed) return Status::ok();
    return forbidden("a run token may only act for its own flow run; this route needs a " +
                     std::string(access == Access::kAdmin  ? "admin"
                                 : access == Access::kUser ? "user"
                                                           : "runner") +
                     " token");
  }
  Scope need = access == Access::kAdmin ? Scope::kAdmin
               : access == Access::kUser ? Scope::kUser
                                         : Scope::kRunner;
  if (static_cast<int>(p.scope) >= static_cast<int>(need)) return Status::ok();
  return forbidden(std::string("this route needs a token with scope '") + scope_name(need) +
                   "' or above; the token has scope '" + scope_name(p.scope) + "'");
}

std::optional<std::string_view> bearer_secret(std::string_view h) {
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  constexpr std::string_view kScheme = "bearer";
  if (h.size() <= kScheme.size() + 1) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != kScheme[i]) return std::nullopt;
  }
  if (h[kScheme.size()] != ' ') return std::nullopt;
  h.remove_prefix(kScheme.size() + 1);
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  if (h.empty() || h.size() > 512) return std::nullopt;
  return h;
}

Authenticator::Authenticator(Clock& clock, AuthOptions options) : clock_(clock), options_(options) {}

Status Authenticator::check(const Entry& e) const {
  auto now = clock_.now();
  if (e.principal.expires && *e.principal.expires <= now) return unauthenticated("the token has expired");
  if (e.run_ended && *e.run_ended + options_.run_token_grace <= now)
    return unauthenticated("the run token's flow run has ended");
  return Status::ok();
}

Result<Principal> Authenticator::authenticate(std::string_view authorization, store::Store& store) {
  if (authorization.empty()) return unauthenticated("missing Authorization: Bearer <token> header");
  auto secret = bearer_secret(authorization);
  if (!secret) return unauthenticated("malformed Authorization header; expected 'Bearer <token>'");
  std::string hash = sha256_hex(*secret);
  auto steady = clock_.steady_now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end()) {
      if (steady - it->second.fetched < options_.cache_ttl) {
        if (auto st = check(it->second); !st) return st;
        return it->second.principal;
      }
      cache_.erase(it);
    }
  }
  auto token = store.find_token_by_hash(hash);
  if (!token) {
    if (token.status().code() == StatusCode::kNotFound) return unauthenticated("unknown token");
    return token.status();
  }
  if (token->revoked_at) return unauthenticated("the token has been revoked");
  auto scope = parse_scope(token->scope);
  if (!scope) return unauthenticated("the token has an unknown scope '" + token->scope + "'");
  Entry e;
  e.principal.token_id = token->id;
  e.principal.name = token->name;
  e.principal.scope = *scope;
  e.principal.expires = token->expires;
  e.fetched = steady;
  if (*scope == Scope::kRun) {
    if (!token->flow_run_id) return unauthenticated("the run token is not bound to a flow run");
    e.principal.flow_run_id = *token->flow_run_id;
    auto run = store.get_flow_run(*token->flow_run_id);
    if (!run) {
      if (run.status().code() == StatusCode::kNotFound)
        return unauthenticated("the run token's flow run no longer exists");
      return run.status();
    }
    if (run->child)
      e.principal.child = ChildScope{run->child->parent_run_id, run->child->task, run->child->parent_attempt,
                                     run->child->start, run->child->end};
    State st = run->state;
    if (is_final(st)) {
      e.run_ended = run->end_time ? *run->end_time : run->state_changed_at;
    } else if (st == State::kScheduled || st == State::kPending || st == State::kRetrying) {
      return unauthenticated(std::string("the run token's flow run is not claimed (it is ") + state_name(st) +
                             "); the next claim issues a new token");
    } else if (run->submitted_at && token->created + std::chrono::seconds(1) < *run->submitted_at) {
      return unauthenticated("the run token was superseded by a later claim of its flow run");
    }
  }
  if (auto st = check(e); !st) return st;
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= options_.max_cache_entries) cache_.clear();
  auto principal = e.principal;
  cache_[hash] = std::move(e);
  return principal;
}

void Authenticator::invalidate_token(const std::string& token_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.principal.token_id == token_id)
      it = cache_.erase(it);
    else
      ++it;
  }
}

void Authenticator::invalidate_run(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.principal.scope == Scope::kRun && it->second.principal.flow_run_id == run_id)
      it = cache_.erase(it);
    else
      ++it;
  }
}

}  // namespace culvert::server
