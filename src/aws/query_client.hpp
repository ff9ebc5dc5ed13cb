// A client for AWS services spoken in the query protocol with XML answers (EC2):
// POST / with Content-Type: application/x-www-form-urlencoded and the body
// Action=<Action>&Version=<api_version>&<params>, signed with SigV4 (always, also for
// calls that work unsigned: moto and some front ends route unsigned EC2 requests
// elsewhere). Retries and errors as the JSON client (errors.hpp, signed_post).
//
// Owns its credentials provider. Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "aws/credentials.hpp"
#include "aws/errors.hpp"
#include "aws/http.hpp"
#include "core/crypto.hpp"

namespace culvert::aws {

struct QueryServiceConfig {
  std::string service = "ec2";           // signing name
  std::string api_version = "2016-11-15";
  std::string region;                    // REQUIRES: not empty
  // Default: https://<service>.<region>.amazonaws.com
  std::string endpoint;
  // REQUIRES: not null.
  std::unique_ptr<CredentialsProvider> credentials;
  int max_attempts = 4;
  Millis base_backoff{100};
  Millis max_backoff{5000};
  long timeout_ms = 30000;
  // Not owned; must outlive the client. Default: the system clock / a CSPRNG / libcurl.
  Clock* clock = nullptr;
  Random* random = nullptr;
  HttpTransport* transport = nullptr;
};

using QueryParams = std::vector<std::pair<std::string, std::string>>;

class AwsQueryClient {
 public:
  explicit AwsQueryClient(QueryServiceConfig config);
  // Calls `action` with `params` (e.g. {"Filter.1.Name", "is-default"}); the XML answer.
  // Errors as AwsJsonClient::call.
  Result<std::string> call(std::string_view action, const QueryParams& params, AwsError* error = nullptr);

 private:
  QueryServiceConfig cfg_;
  std::string endpoint_;
  SecureRandom secure_random_;
  std::mutex random_mu_;
};

// "Action=DescribeVpcs&Version=...&Filter.1.Name=is-default": each name and value
// percent-encoded (RFC 3986 unreserved characters kept).
std::string form_encode(const QueryParams& params);

// EC2: the subnets of the region's default VPC (DescribeVpcs is-default=true, then
// DescribeSubnets vpc-id=...), those that are the default for their zone first. NotFound
// when the region has no default VPC or it has no subnets; `vpc_id` receives the VPC.
Result<std::vector<std::string>> default_vpc_subnets(AwsQueryClient& ec2, std::string* vpc_id = nullptr);

}  // namespace culvert::aws
