// AWS credentials and region from the standard chain (docs/STORAGE.md): environment variables,
// the shared credentials/config files, the ECS container credentials endpoint, and EC2
// instance metadata (IMDSv2). Used by S3 storage and by the ECS agent alike.
//
// Every provider reads the process environment through an EnvLookup, so tests pass a
// map instead of mutating the environment. The network providers take their endpoint
// from the environment (AWS_CONTAINER_CREDENTIALS_FULL_URI,
// AWS_EC2_METADATA_SERVICE_ENDPOINT) or from their options; the link-local defaults are
// only reached in production.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "aws/sigv4.hpp"

namespace culvert::aws {

// Reads an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
// The real process environment.
EnvLookup process_env();

// A source of credentials. get() returns NotFound when this source is not configured
// (the chain then tries the next one), another error when it is configured but fails.
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  virtual Result<Credentials> get() = 0;
  // Short name for messages: "environment", "profile", "ecs", "imds", "chain".
  virtual std::string name() const = 0;
};

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. Thread-safe.
class EnvCredentialsProvider final : public CredentialsProvider {
 public:
  explicit EnvCredentialsProvider(EnvLookup env) : env_(std::move(env)) {}
  Result<Credentials> get() override;
  std::string name() const override { return "environment"; }

 private:
  EnvLookup env_;
};

// Where the shared files are: $AWS_SHARED_CREDENTIALS_FILE / $AWS_CONFIG_FILE, else
// ~/.aws/credentials and ~/.aws/config; the profile is `profile`, else $AWS_PROFILE,
// else "default".
struct ProfileLocation {
  std::string credentials_file;
  std::string config_file;
  std::string profile;
};
ProfileLocation profile_location(const EnvLookup& env, std::string_view profile = {});

// Keys from the profile's section of the credentials file ([name]) or, failing that,
// of the config file ([profile name], [default]). Thread-safe.
class ProfileCredentialsProvider final : public CredentialsProvider {
 public:
  explicit ProfileCredentialsProvider(EnvLookup env, std::string profile = {})
      : env_(std::move(env)), profile_(std::move(profile)) {}
  Result<Credentials> get() override;
  std::string name() const override { return "profile"; }

 private:
  EnvLookup env_;
  std::string profile_;
};

// ECS task role credentials: GET $AWS_CONTAINER_CREDENTIALS_FULL_URI (with
// $AWS_CONTAINER_AUTHORIZATION_TOKEN as Authorization), or relative_base +
// $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI. NotFound when neither variable is set.
// Thread-safe.
class EcsCredentialsProvider final : public CredentialsProvider {
 public:
  // Default: the ECS agent's address.
  explicit EcsCredentialsProvider(EnvLookup env, std::string relative_base = "http://169.254.170.2")
      : env_(std::move(env)), relative_base_(std::move(relative_base)) {}
  Result<Credentials> get() override;
  std::string name() const override { return "ecs"; }

 private:
  EnvLookup env_;
  std::string relative_base_;
};

// EC2 instance profile credentials over IMDSv2: PUT /latest/api/token, then GET
// /latest/meta-data/iam/security-credentials/ (the role) and .../<role>. The endpoint is
// $AWS_EC2_METADATA_SERVICE_ENDPOINT, else `default_endpoint`. Disabled (NotFound) when
// $AWS_EC2_METADATA_DISABLED is "true"; an unreachable endpoint is NotFound too (not on
// EC2). Thread-safe.
class ImdsCredentialsProvider final : public CredentialsProvider {
 public:
  explicit ImdsCredentialsProvider(EnvLookup env,
                                   std::string default_endpoint = "http://169.254.169.254")
      : env_(std::move(env)), default_endpoint_(std::move(default_endpoint)) {}
  Result<Credentials> get() override;
  std::string name() const override { return "imds"; }

 private:
  EnvLookup env_;
  std::string default_endpoint_;
};

// Tries providers in order and caches the first success until 5 minutes before its
// expiration (forever for keys without one). A provider's NotFound moves on to the
// next; any other error stops the chain. When none has credentials: Unauthenticated,
// listing what was tried. Owns its providers; thread-safe (one refresh at a time).
class ChainCredentialsProvider final : public CredentialsProvider {
 public:
  ChainCredentialsProvider(std::vector<std::unique_ptr<CredentialsProvider>> providers,
                           Clock& clock = system_clock());
  Result<Credentials> get() override;
  std::string name() const override { return "chain"; }

 private:
  std::vector<std::unique_ptr<CredentialsProvider>> providers_;
  Clock& clock_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
};

// The standard chain: environment, profile, ECS, IMDS.
std::unique_ptr<CredentialsProvider> default_credentials_chain(EnvLookup env = process_env(),
                                                               std::string profile = {},
                                                               Clock& clock = system_clock());

// A fixed set of credentials (tests, or keys given on a command line). Thread-safe.
class StaticCredentialsProvider final : public CredentialsProvider {
 public:
  explicit StaticCredentialsProvider(Credentials c) : c_(std::move(c)) {}
  Result<Credentials> get() override { return c_; }
  std::string name() const override { return "static"; }

 private:
  Credentials c_;
};

// The region: `explicit_region`, else $AWS_REGION, $AWS_DEFAULT_REGION, the profile's
// `region` in the config file, else "us-east-1".
std::string resolve_region(const EnvLookup& env, std::string_view explicit_region = {},
                           std::string_view profile = {});

// Parses the credentials JSON served by the ECS and EC2 endpoints
// ({"AccessKeyId","SecretAccessKey","Token","Expiration"}). `source` names the endpoint.
Result<Credentials> parse_credentials_json(std::string_view json, std::string_view source);

}  // namespace culvert::aws
