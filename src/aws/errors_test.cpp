#include "aws/errors.hpp"

#include <gtest/gtest.h>

namespace culvert::aws {
namespace {

struct ErrorCase {
  const char* name;
  long status;
  const char* body;
  const char* header;
  const char* code;
  const char* message;
  bool retryable;
  StatusCode status_code;
};

// What AWS (and moto) answer, and what Culvert makes of it.
const ErrorCase kCases[] = {
    {"json_client_exception", 400, R"({"__type":"com.amazonaws.ecs#ClientException","message":"Unable to describe task definition."})",
     "", "ClientException", "Unable to describe task definition.", false, StatusCode::kInvalidArgument},
    {"json_throttling", 400, R"({"__type":"ThrottlingException","message":"Rate exceeded"})", "",
     "ThrottlingException", "Rate exceeded", true, StatusCode::kUnavailable},
    {"json_concurrent_revision", 400,
     R"({"__type":"ClientException","message":"Too many concurrent attempts to create a new revision of the specified family."})",
     "", "ClientException", "Too many concurrent attempts to create a new revision of the specified family.", true,
     StatusCode::kUnavailable},
    {"json_server_exception", 500, R"({"__type":"ServerException","message":"Service unavailable"})", "",
     "ServerException", "Service unavailable", true, StatusCode::kUnavailable},
    {"json_bad_gateway_no_body", 502, "", "", "", "", true, StatusCode::kUnavailable},
    {"json_unrecognized_client", 400, R"({"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."})",
     "", "UnrecognizedClientException", "The security token included in the request is invalid.", false,
     StatusCode::kUnauthenticated},
    {"json_access_denied", 400, R"({"__type":"AccessDeniedException","Message":"User is not authorized"})", "",
     "AccessDeniedException", "User is not authorized", false, StatusCode::kPermissionDenied},
    {"json_cluster_not_found", 400, R"({"__type":"ClusterNotFoundException","message":"Cluster not found."})", "",
     "ClusterNotFoundException", "Cluster not found.", false, StatusCode::kNotFound},
    {"json_code_in_header", 400, R"({"message":"bad"})", "InvalidParameterException:http://internal.amazon.com/",
     "InvalidParameterException", "bad", false, StatusCode::kInvalidArgument},
    {"json_too_many_requests_429", 429, R"({"message":"slow down"})", "", "", "slow down", true,
     StatusCode::kUnavailable},
    {"xml_moto_signature", 403,
     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
     "<Message>The request signature we calculated does not match the signature you provided.</Message></Error>"
     "<RequestId>7a62c49f</RequestId></ErrorResponse>",
     "", "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.",
     false, StatusCode::kUnauthenticated},
    {"xml_ec2_auth_failure", 401,
     "<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided "
     "access credentials</Message></Error></Errors><RequestID>abc</RequestID></Response>",
     "", "AuthFailure", "AWS was not able to validate the provided access credentials", false,
     StatusCode::kUnauthenticated},
    {"xml_ec2_throttled", 503,
     "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
     "</Error></Errors></Response>",
     "", "RequestLimitExceeded", "Request limit exceeded.", true, StatusCode::kUnavailable},
    {"xml_s3_no_such_bucket", 404,
     "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>", "",
     "NoSuchBucket", "The specified bucket does not exist", false, StatusCode::kNotFound},
    {"xml_access_denied", 403,
     "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not allowed</Message></Error></ErrorResponse>", "",
     "AccessDenied", "not allowed", false, StatusCode::kPermissionDenied},
    {"xml_malformed", 400, "<Error><Code>Broken", "", "", "<Error><Code>Broken", false, StatusCode::kInvalidArgument},
    {"plain_text", 400, "Bad Request\n", "", "", "Bad Request", false, StatusCode::kInvalidArgument},
    {"no_answer", 0, "", "", "", "", true, StatusCode::kUnavailable},
};

class AwsErrorTable : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(AwsErrorTable, ParsesClassifiesAndNames) {
  const ErrorCase& c = GetParam();
  AwsError e = parse_aws_error(c.status, c.body, c.header);
  EXPECT_EQ(e.code, c.code);
  EXPECT_EQ(e.message, c.message);
  EXPECT_EQ(is_retryable(e), c.retryable);
  Status st = aws_error_status("ecs RunTask", e);
  EXPECT_EQ(st.code(), c.status_code) << st.to_string();
  EXPECT_TRUE(st.message().starts_with("ecs RunTask failed: ")) << st.message();
  if (*c.code) {
    EXPECT_NE(st.message().find(c.code), std::string::npos) << st.message();
  }
  if (*c.message) {
    EXPECT_NE(st.message().find(c.message), std::string::npos) << st.message();
  }
}

INSTANTIATE_TEST_SUITE_P(Answers, AwsErrorTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(AwsError, MessageShowsStatusAndCode) {
  Status st = aws_error_status("ecs DescribeTasks", parse_aws_error(400, R"({"__type":"ClientException","message":"x"})"));
  EXPECT_EQ(st.message(), "ecs DescribeTasks failed: HTTP 400 ClientException: x");
  AwsError none{.http_status = 0, .code = "", .message = "cannot reach http://127.0.0.1:9: Couldn't connect"};
  EXPECT_EQ(aws_error_status("ecs RunTask", none).message(),
            "ecs RunTask failed: no answer: cannot reach http://127.0.0.1:9: Couldn't connect");
}

TEST(AwsError, BoundsTheBodyItReads) {
  std::string huge = R"({"__type":"ClientException","message":")" + std::string(200000, 'x') + "\"}";
  AwsError e = parse_aws_error(400, huge);  // cut at 64 KiB: no longer JSON, kept short
  EXPECT_EQ(e.code, "");
  EXPECT_EQ(e.message.size(), 200u);
}

TEST(AwsError, CodeFromType) {
  EXPECT_EQ(aws_error_code("com.amazon.coral.service#ExpiredTokenException"), "ExpiredTokenException");
  EXPECT_EQ(aws_error_code("ValidationException:http://internal.amazon.com/"), "ValidationException");
  EXPECT_EQ(aws_error_code(""), "");
}

}  // namespace
}  // namespace culvert::aws
