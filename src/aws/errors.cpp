#include "aws/errors.hpp"

#include <array>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

namespace culvert::aws {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

std::string str_of(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

// The first <Error> element anywhere (S3: the root; EC2: Response/Errors/Error; IAM,
// STS: ErrorResponse/Error), or the root itself when it has a <Code> child.
pugi::xml_node find_error(const pugi::xml_document& doc) {
  pugi::xml_node root = doc.document_element();
  if (!root) return {};
  if (root.child("Code")) return root;
  pugi::xml_node found = root.find_node([](const pugi::xml_node& n) {
    return std::string_view(n.name()) == "Error" && n.child("Code");
  });
  return found;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

}  // namespace

std::string aws_error_code(std::string_view type) {
  auto hash = type.rfind('#');
  if (hash != std::string_view::npos) type = type.substr(hash + 1);
  auto colon = type.find(':');  // "Code:http://internal.amazon.com/..." in some services
  return trimmed(std::string(type.substr(0, colon)));
}

AwsError parse_aws_error(long http_status, std::string_view body, std::string_view error_type_header) {
  AwsError e;
  e.http_status = http_status;
  if (body.size() > kMaxErrorBody) body = body.substr(0, kMaxErrorBody);
  std::string_view start = body.substr(std::min(body.find_first_not_of(" \t\r\n"), body.size()));
  if (start.starts_with("{")) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object()) {
      e.code = aws_error_code(str_of(j, {"__type", "code", "Code"}));
      e.message = str_of(j, {"message", "Message", "errorMessage"});
    }
  } else if (start.starts_with("<")) {
    pugi::xml_document doc;
    if (doc.load_buffer(body.data(), body.size())) {
      if (pugi::xml_node err = find_error(doc)) {
        e.code = aws_error_code(err.child_value("Code"));
        e.message = trimmed(err.child_value("Message"));
      }
    }
  }
  if (e.code.empty() && !error_type_header.empty()) e.code = aws_error_code(error_type_header);
  if (e.code.empty() && e.message.empty() && !start.empty()) {
    std::string text(start.substr(0, 200));
    for (char& c : text)
      if (c == '\n' || c == '\r') c = ' ';
    e.message = trimmed(std::move(text));
  }
  return e;
}

bool is_retryable(const AwsError& e) {
  if (e.http_status == 0 || e.http_status >= 500 || e.http_status == 429) return true;
  static constexpr std::array<std::string_view, 12> kThrottling = {
      "ThrottlingException",     "Throttling",           "ThrottledException",
      "RequestLimitExceeded",    "TooManyRequestsException", "RequestThrottled",
      "RequestThrottledException", "SlowDown",           "ProvisionedThroughputExceededException",
      "RequestLimitExceededException", "BandwidthLimitExceeded", "PriorRequestNotComplete"};
  for (auto code : kThrottling)
    if (e.code == code) return true;
  // ECS refuses concurrent RegisterTaskDefinition calls of one family with a plain
  // ClientException; the same call succeeds a moment later.
  if (e.message.find("Too many concurrent attempts to create a new revision") != std::string::npos) return true;
  return false;
}

Status aws_error_status(std::string_view what, const AwsError& e) {
  std::string text = std::string(what) + " failed: ";
  text += e.http_status == 0 ? std::string("no answer") : "HTTP " + std::to_string(e.http_status);
  if (!e.code.empty()) text += " " + e.code;
  if (!e.message.empty()) text += ": " + e.message;
  const std::string& c = e.code;
  if (is_retryable(e)) return unavailable(text);
  if (c == "UnrecognizedClientException" || c == "InvalidSignatureException" || c == "SignatureDoesNotMatch" ||
      c == "ExpiredTokenException" || c == "ExpiredToken" || c == "IncompleteSignature" ||
      c == "MissingAuthenticationToken" || c == "InvalidClientTokenId" || c == "AuthFailure" ||
      c == "InvalidAccessKeyId" || c == "MissingAuthenticationTokenException" || e.http_status == 401)
    return Status(StatusCode::kUnauthenticated, text);
  if (c.find("AccessDenied") != std::string::npos || c == "UnauthorizedOperation" || e.http_status == 403)
    return Status(StatusCode::kPermissionDenied, text);
  if (c.find("NotFound") != std::string::npos || c.starts_with("NoSuch") || e.http_status == 404)
    return not_found(text);
  return invalid_argument(text);
}

}  // namespace culvert::aws
