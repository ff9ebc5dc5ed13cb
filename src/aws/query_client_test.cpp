#include "aws/query_client.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>

namespace culvert::aws {
namespace {

// Answers from a queue and records what was sent.
class QueueTransport final : public HttpTransport {
 public:
  void push(long status, std::string body) { answers_.push_back({status, {}, std::move(body)}); }
  Result<HttpResponse> send(const HttpRequest& r) override {
    std::lock_guard lock(mu_);
    sent.push_back(r);
    bodies.emplace_back(r.body);
    if (answers_.empty()) return HttpResponse{500, {}, ""};
    HttpResponse a = answers_.front();
    answers_.pop_front();
    return a;
  }
  std::vector<HttpRequest> sent;
  std::vector<std::string> bodies;

 private:
  std::mutex mu_;
  std::deque<HttpResponse> answers_;
};

struct Fixture {
  ManualClock clock;
  SeededRandom random{5};
  QueueTransport transport;
  AwsQueryClient client() {
    QueryServiceConfig cfg;
    cfg.region = "eu-west-1";
    cfg.credentials = std::make_unique<StaticCredentialsProvider>(Credentials{"AKID", "secret", "", {}});
    cfg.clock = &clock;
    cfg.random = &random;
    cfg.transport = &transport;
    return AwsQueryClient(std::move(cfg));
  }
};

std::string header(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

const char* kVpcs = R"(<?xml version="1.0" encoding="UTF-8"?>
<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>1</requestId>
<vpcSet><item><vpcId>vpc-0abc</vpcId><state>available</state><isDefault>true</isDefault></item></vpcSet></DescribeVpcsResponse>)";
const char* kSubnets = R"(<DescribeSubnetsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><subnetSet>
<item><subnetId>subnet-manual</subnetId><defaultForAz>false</defaultForAz></item>
<item><subnetId>subnet-a</subnetId><defaultForAz>true</defaultForAz></item></subnetSet></DescribeSubnetsResponse>)";

TEST(AwsQueryClient, PostsASignedFormToEc2) {
  Fixture f;
  f.transport.push(200, kVpcs);
  auto c = f.client();
  auto r = c.call("DescribeVpcs", {{"Filter.1.Name", "is-default"}, {"Filter.1.Value.1", "true"}});
  ASSERT_TRUE(r) << r.status().to_string();
  const HttpRequest& sent = f.transport.sent.at(0);
  EXPECT_EQ(sent.url, "https://ec2.eu-west-1.amazonaws.com/");
  EXPECT_EQ(header(sent, "Content-Type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(f.transport.bodies.at(0), "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=is-default&Filter.1.Value.1=true");
  EXPECT_NE(header(sent, "Authorization").find("/eu-west-1/ec2/aws4_request"), std::string::npos);
  EXPECT_EQ(form_encode({{"a b", "x/y=z&"}}), "a%20b=x%2Fy%3Dz%26");
}

TEST(AwsQueryClient, FindsTheDefaultVpcsSubnetsDefaultForAzFirst) {
  Fixture f;
  f.transport.push(200, kVpcs);
  f.transport.push(200, kSubnets);
  auto c = f.client();
  std::string vpc;
  auto subnets = default_vpc_subnets(c, &vpc);
  ASSERT_TRUE(subnets) << subnets.status().to_string();
  EXPECT_EQ(vpc, "vpc-0abc");
  EXPECT_EQ(*subnets, (std::vector<std::string>{"subnet-a", "subnet-manual"}));
  EXPECT_EQ(f.transport.bodies.at(1), "Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0abc");
}

TEST(AwsQueryClient, NoDefaultVpcAndXmlErrors) {
  Fixture f;
  f.transport.push(200, R"(<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><vpcSet/></DescribeVpcsResponse>)");
  auto c = f.client();
  auto none = default_vpc_subnets(c);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(none.status().message(), "the region has no default VPC");

  f.transport.push(403, "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized "
                        "to perform this operation.</Message></Error></Errors><RequestID>x</RequestID></Response>");
  auto denied = default_vpc_subnets(c);
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.status().message(),
            "ec2 DescribeVpcs failed: HTTP 403 UnauthorizedOperation: You are not authorized to perform this operation.");

  size_t before = f.transport.sent.size();
  f.transport.push(503, "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                        "</Message></Error></Errors></Response>");
  f.transport.push(200, kVpcs);
  f.transport.push(200, kSubnets);
  EXPECT_TRUE(default_vpc_subnets(c));
  EXPECT_EQ(f.transport.sent.size() - before, 3u);  // the throttled call was retried

  f.transport.push(200, "not xml");
  auto garbled = default_vpc_subnets(c);
  ASSERT_FALSE(garbled);
  EXPECT_EQ(garbled.status().message(), "ec2 DescribeVpcs: the answer is not XML");
}

}  // namespace
}  // namespace culvert::aws
