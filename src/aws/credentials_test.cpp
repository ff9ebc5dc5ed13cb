#include "aws/credentials.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "core/crypto.hpp"
#include "test_http_server.hpp"

namespace culvert::aws {
namespace {
using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A port on 127.0.0.1 that refuses connections: bound, never listening.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class TempDir {
 public:
  TempDir() : path_(std::filesystem::temp_directory_path() / ("culvert-aws-" + new_uuid())) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content) const {
    auto p = (path_ / name).string();
    std::ofstream(p) << content;
    return p;
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

const char* kCredsJson =
    R"({"AccessKeyId":"ASIAROLE","SecretAccessKey":"rolesecret","Token":"roletoken","Expiration":"2026-01-01T06:00:00Z"})";

TEST(EnvCredentials, ReadsKeysAndToken) {
  EnvCredentialsProvider p(env_of({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                                   {"AWS_SESSION_TOKEN", "TOK"}}));
  auto c = p.get();
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->access_key_id, "AK");
  EXPECT_EQ(c->secret_access_key, "SK");
  EXPECT_EQ(c->session_token, "TOK");
  EXPECT_EQ(EnvCredentialsProvider(env_of({})).get().status().code(), StatusCode::kNotFound);
  auto half = EnvCredentialsProvider(env_of({{"AWS_ACCESS_KEY_ID", "AK"}})).get();
  EXPECT_EQ(half.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(half.status().message().find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
}

TEST(ProfileCredentials, CredentialsFileConfigFileAndRegion) {
  TempDir d;
  std::string creds = d.file("credentials",
                             "[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = DEFSECRET\n"
                             "# comment\n[dev]\naws_access_key_id=DEVKEY\naws_secret_access_key= DEVSECRET \n"
                             "aws_session_token = DEVTOKEN\n");
  std::string config = d.file("config",
                              "[default]\nregion = us-west-1\n[profile dev]\nregion = eu-west-3\n"
                              "[profile onlyconfig]\naws_access_key_id = CFGKEY\naws_secret_access_key = CFGSECRET\n");
  std::map<std::string, std::string> vars{{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config}};

  auto def = ProfileCredentialsProvider(env_of(vars)).get();
  ASSERT_TRUE(def) << def.status().to_string();
  EXPECT_EQ(def->access_key_id, "DEFKEY");
  EXPECT_EQ(resolve_region(env_of(vars)), "us-west-1");

  vars["AWS_PROFILE"] = "dev";
  auto dev = ProfileCredentialsProvider(env_of(vars)).get();
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->access_key_id, "DEVKEY");
  EXPECT_EQ(dev->secret_access_key, "DEVSECRET");
  EXPECT_EQ(dev->session_token, "DEVTOKEN");
  EXPECT_EQ(resolve_region(env_of(vars)), "eu-west-3");
  EXPECT_EQ(resolve_region(env_of(vars), "ap-south-1"), "ap-south-1");
  vars["AWS_DEFAULT_REGION"] = "ca-central-1";
  EXPECT_EQ(resolve_region(env_of(vars)), "ca-central-1");
  vars["AWS_REGION"] = "sa-east-1";
  EXPECT_EQ(resolve_region(env_of(vars)), "sa-east-1");

  auto cfg = ProfileCredentialsProvider(env_of(vars), "onlyconfig").get();
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->access_key_id, "CFGKEY");

  auto missing = ProfileCredentialsProvider(env_of(vars), "nope").get();
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos);
  // Files under $HOME/.aws by default.
  EXPECT_EQ(profile_location(env_of({{"HOME", "/home/u"}})).credentials_file, "/home/u/.aws/credentials");
  EXPECT_EQ(resolve_region(env_of({{"HOME", d.path()}})), "us-east-1");
}

TEST(EcsCredentials, FullUriWithAuthorizationToken) {
  TestHttpServer server([](const TestRequest& r) {
    if (r.target != "/creds" || r.headers.count("authorization") == 0 ||
        r.headers.at("authorization") != "Bearer xyz")
      return TestResponse{401, "no"};
    return TestResponse{200, kCredsJson};
  });
  EcsCredentialsProvider p(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"},
                                   {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer xyz"}}));
  auto c = p.get();
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  EXPECT_EQ(c->session_token, "roletoken");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_EQ(*c->expiration, SysTime(std::chrono::seconds(1767225600 + 6 * 3600)));
}

TEST(EcsCredentials, RelativeUriAgainstTheAgentAddress) {
  TestHttpServer server([](const TestRequest& r) {
    return r.target == "/v2/credentials/abc" ? TestResponse{200, kCredsJson} : TestResponse{404, ""};
  });
  EcsCredentialsProvider p(env_of({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"}}),
                           server.url());
  auto c = p.get();
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->secret_access_key, "rolesecret");
  EXPECT_EQ(EcsCredentialsProvider(env_of({})).get().status().code(), StatusCode::kNotFound);
}

TEST(EcsCredentials, ErrorsAreClear) {
  TestHttpServer server([](const TestRequest&) { return TestResponse{500, "boom"}; });
  auto c = EcsCredentialsProvider(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/x"}})).get();
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(c.status().message().find("HTTP 500"), std::string::npos);
  auto remote = EcsCredentialsProvider(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds"}})).get();
  EXPECT_EQ(remote.status().code(), StatusCode::kInvalidArgument);
  TestHttpServer bad([](const TestRequest&) { return TestResponse{200, "not json"}; });
  auto j = EcsCredentialsProvider(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", bad.url()}})).get();
  EXPECT_EQ(j.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(j.status().message().find("not JSON"), std::string::npos);
}

TEST(ImdsCredentials, TokenThenRoleThenCredentials) {
  TestHttpServer server([](const TestRequest& r) {
    if (r.method == "PUT" && r.target == "/latest/api/token") {
      if (!r.headers.count("x-aws-ec2-metadata-token-ttl-seconds")) return TestResponse{400, ""};
      return TestResponse{200, "TOKEN123"};
    }
    if (!r.headers.count("x-aws-ec2-metadata-token") || r.headers.at("x-aws-ec2-metadata-token") != "TOKEN123")
      return TestResponse{401, ""};
    if (r.target == "/latest/meta-data/iam/security-credentials/") return TestResponse{200, "my-role\n"};
    if (r.target == "/latest/meta-data/iam/security-credentials/my-role")
      return TestResponse{200, std::string(R"({"Code":"Success","Type":"AWS-HMAC",)") + (kCredsJson + 1)};
    return TestResponse{404, ""};
  });
  ImdsCredentialsProvider p(env_of({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url() + "/"}}));
  auto c = p.get();
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "PUT");
}

TEST(ImdsCredentials, DisabledOrUnreachableIsNotFound) {
  ImdsCredentialsProvider off(env_of({{"AWS_EC2_METADATA_DISABLED", "true"}}));
  EXPECT_EQ(off.get().status().code(), StatusCode::kNotFound);
  ClosedPort closed;
  ImdsCredentialsProvider none(env_of({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", closed.url()}}));
  auto c = none.get();
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find(closed.url()), std::string::npos);
}

class CountingProvider final : public CredentialsProvider {
 public:
  CountingProvider(Clock& clock, Result<Credentials> answer, int* calls)
      : clock_(clock), answer_(std::move(answer)), calls_(calls) {}
  Result<Credentials> get() override {
    ++*calls_;
    if (answer_ && answer_->expiration) {
      Credentials c = *answer_;
      c.expiration = clock_.now() + std::chrono::hours(1);
      c.access_key_id += std::to_string(*calls_);
      return c;
    }
    return answer_;
  }
  std::string name() const override { return "counting"; }

 private:
  Clock& clock_;
  Result<Credentials> answer_;
  int* calls_;
};

TEST(ChainCredentials, FirstConfiguredWinsAndIsCachedUntilNearExpiry) {
  ManualClock clock;
  int missing_calls = 0, role_calls = 0;
  std::vector<std::unique_ptr<CredentialsProvider>> ps;
  ps.push_back(std::make_unique<CountingProvider>(clock, not_found("not here"), &missing_calls));
  ps.push_back(std::make_unique<CountingProvider>(clock, Credentials{"K", "S", "T", clock.now()}, &role_calls));
  ChainCredentialsProvider chain(std::move(ps), clock);
  EXPECT_EQ(chain.get()->access_key_id, "K1");
  clock.advance(std::chrono::minutes(50));
  EXPECT_EQ(chain.get()->access_key_id, "K1");  // cached
  EXPECT_EQ(role_calls, 1);
  clock.advance(std::chrono::minutes(6));  // within 5 minutes of expiry
  EXPECT_EQ(chain.get()->access_key_id, "K2");
  EXPECT_EQ(role_calls, 2);
  EXPECT_EQ(missing_calls, 2);
}

TEST(ChainCredentials, ErrorsStopTheChainAndNothingIsUnauthenticated) {
  ManualClock clock;
  int a = 0, b = 0;
  std::vector<std::unique_ptr<CredentialsProvider>> ps;
  ps.push_back(std::make_unique<CountingProvider>(clock, unavailable("endpoint down"), &a));
  ps.push_back(std::make_unique<CountingProvider>(clock, Credentials{"K", "S", "", {}}, &b));
  ChainCredentialsProvider chain(std::move(ps), clock);
  auto r = chain.get();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(b, 0);

  auto empty = default_credentials_chain(env_of({{"HOME", "/nonexistent"}, {"AWS_EC2_METADATA_DISABLED", "true"}}),
                                         {}, clock)->get();
  EXPECT_EQ(empty.status().code(), StatusCode::kUnauthenticated);
  for (const char* name : {"environment", "profile", "ecs", "imds"})
    EXPECT_NE(empty.status().message().find(name), std::string::npos) << empty.status().message();
}

}  // namespace
}  // namespace culvert::aws
