// AWS error answers, whatever the protocol: JSON ({"__type": "...#Code", "message": ...},
// ECS, CloudWatch Logs) and XML (<Error><Code>..</Code><Message>..</Message></Error>, also
// wrapped in <ErrorResponse> or <Response><Errors>: S3, EC2, IAM, and some front ends of
// JSON services). Parsed into one AwsError, classified once (retry or not, which Status),
// and shown to the user with the AWS code.
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <culvert/status.hpp>

namespace culvert::aws {

struct AwsError {
  long http_status = 0;  // 0: no answer (the endpoint could not be reached)
  std::string code;      // "ThrottlingException", "ClientException", ... ("" when the body had none)
  std::string message;   // the service's own words
};

// The error in an answer with status `http_status` and body `body`. `error_type_header`
// is the x-amzn-ErrorType header (used when the body names no code). Bodies are read up
// to 64 KiB; an unparseable body leaves code empty and keeps its first 200 characters as
// the message.
AwsError parse_aws_error(long http_status, std::string_view body, std::string_view error_type_header = {});

// Whether the same request may succeed if sent again: throttling (ThrottlingException,
// RequestLimitExceeded, 429, ...), any 5xx, no answer at all, and ECS's
// "Too many concurrent attempts to create a new revision" (a ClientException). Never
// another 4xx: it would be refused again.
bool is_retryable(const AwsError& error);

// The Status for `error` of the call `what` ("ecs RunTask"): Unauthenticated (bad or
// expired credentials, bad signature), PermissionDenied (AccessDenied*), NotFound
// (*NotFound*), Unavailable (retryable), else InvalidArgument. Its message reads
// "<what> failed: HTTP <status> <Code>: <message>".
Status aws_error_status(std::string_view what, const AwsError& error);

// "com.amazonaws.ecs#ClusterNotFoundException" -> "ClusterNotFoundException".
std::string aws_error_code(std::string_view type);

}  // namespace culvert::aws
