#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "server/auth.hpp"
#include "store/store.hpp"
#include "store/testing.hpp"

namespace culvert::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(AuthTest, BearerHeader) {
  EXPECT_EQ(bearer_secret("Bearer abc"), "abc");
  EXPECT_EQ(bearer_secret("bearer  abc "), "abc");
  EXPECT_EQ(bearer_secret("BEARER abc"), "abc");
  EXPECT_FALSE(bearer_secret("Basic abc").has_value());
  EXPECT_FALSE(bearer_secret("Bearer").has_value());
  EXPECT_FALSE(bearer_secret("Bearer ").has_value());
  EXPECT_FALSE(bearer_secret("Bearerabc").has_value());
  EXPECT_FALSE(bearer_secret("").has_value());
}

TEST(AuthTest, ScopeMatrix) {
  struct Case {
    Scope scope;
    Access access;
    bool run_route;
    bool allowed;
  };
  const Case cases[] = {
      {Scope::kAdmin, Access::kAdmin, false, true},   {Scope::kUser, Access::kAdmin, false, false},
      {Scope::kRunner, Access::kAdmin, false, false}, {Scope::kAdmin, Access::kUser, false, true},
      {Scope::kUser, Access::kUser, false, true},     {Scope::kRunner, Access::kUser, false, false},
      {Scope::kAdmin, Access::kRunner, false, true},  {Scope::kUser, Access::kRunner, false, true},
      {Scope::kRunner, Access::kRunner, false, true}, {Scope::kRun, Access::kRunner, false, false},
      {Scope::kRun, Access::kRunner, true, true},     {Scope::kRun, Access::kUser, false, false},
      {Scope::kRun, Access::kPublic, false, true},
  };
  for (const auto& c : cases) {
    Principal p;
    p.scope = c.scope;
    auto st = authorize(p, c.access, c.run_route);
    EXPECT_EQ(st.is_ok(), c.allowed) << scope_name(c.scope) << " on access " << static_cast<int>(c.access);
    if (!st.is_ok()) {
      EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
    }
  }
  Principal run;
  run.scope = Scope::kRun;
  run.flow_run_id = "r1";
  EXPECT_TRUE(run.may_access_run("r1"));
  EXPECT_FALSE(run.may_access_run("r2"));
  Principal runner;
  EXPECT_TRUE(runner.may_access_run("anything"));
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::TestDatabase::create("sqlite");
    ASSERT_TRUE(db.is_ok());
    db_ = std::make_unique<store::TestDatabase>(std::move(db).value());
    store::StoreOptions o;
    o.clock = &clock_;
    store_ = std::move(store::open_store(db_->url(), o)).value();
    other_ = std::move(store::open_store(db_->url(), o)).value();  // "another replica"
  }
  std::pair<std::string, std::string> token(const std::string& scope, std::optional<SysTime> expires = {}) {
    std::string secret = new_api_token();
    store::NewToken t;
    t.name = "t";
    t.scope = scope;
    t.hash = sha256_hex(secret);
    t.expires = expires;
    auto r = store_->create_token(t);
    EXPECT_TRUE(r.is_ok());
    return {secret, r->id};
  }
  ManualClock clock_;
  std::unique_ptr<store::TestDatabase> db_;
  std::unique_ptr<store::Store> store_, other_;
};

TEST_F(AuthenticatorTest, ResolvesScopesAndRejectsUnknownTokens) {
  Authenticator auth(clock_, {});
  auto [secret, id] = token("user");
  auto p = auth.authenticate("Bearer " + secret, *store_);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->scope, Scope::kUser);
  EXPECT_EQ(p->token_id, id);
  EXPECT_EQ(auth.authenticate("Bearer nope", *store_).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.authenticate("", *store_).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.authenticate("Basic x", *store_).status().code(), StatusCode::kUnauthenticated);
}

TEST_F(AuthenticatorTest, ExpiryIsCheckedOnEveryRequest) {
  Authenticator auth(clock_, {});
  auto [secret, id] = token("runner", clock_.now() + seconds(10));
  ASSERT_TRUE(auth.authenticate("Bearer " + secret, *store_).is_ok());
  clock_.advance(seconds(11));  // still cached, but expired
  auto p = auth.authenticate("Bearer " + secret, *store_);
  EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(p.status().message(), ::testing::HasSubstr("expired"));
}

TEST_F(AuthenticatorTest, RevocationElsewhereIsHonouredWithinTheCacheTtl) {
  AuthOptions o;
  o.cache_ttl = milliseconds(2000);
  Authenticator auth(clock_, o);
  auto [secret, id] = token("runner");
  ASSERT_TRUE(auth.authenticate("Bearer " + secret, *store_).is_ok());
  ASSERT_TRUE(other_->revoke_token(id, clock_.now()).is_ok());
  // Within the TTL the cached answer may still be used...
  clock_.advance(milliseconds(1999));
  EXPECT_TRUE(auth.authenticate("Bearer " + secret, *store_).is_ok());
  // ...but never after it.
  clock_.advance(milliseconds(2));
  EXPECT_EQ(auth.authenticate("Bearer " + secret, *store_).status().code(), StatusCode::kUnauthenticated);
}

TEST_F(AuthenticatorTest, LocalRevocationIsImmediate) {
  Authenticator auth(clock_, {});
  auto [secret, id] = token("user");
  ASSERT_TRUE(auth.authenticate("Bearer " + secret, *store_).is_ok());
  ASSERT_TRUE(store_->revoke_token(id, clock_.now()).is_ok());
  auth.invalidate_token(id);
  EXPECT_FALSE(auth.authenticate("Bearer " + secret, *store_).is_ok());
}

}  // namespace
}  // namespace culvert::server
