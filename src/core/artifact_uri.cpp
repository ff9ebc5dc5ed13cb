#include "core/artifact_uri.hpp"

#include <algorithm>
#include <cctype>
#include <string>

namespace culvert {
namespace {

// "." or ".." once "%2e"/"%2E" are read as dots.
bool is_dot_segment(std::string_view seg) {
  std::string decoded;
  for (size_t i = 0; i < seg.size() && decoded.size() <= 2; ++i) {
    if (seg[i] == '%' && i + 2 < seg.size() && seg[i + 1] == '2' && (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
      decoded += '.';
      i += 2;
    } else {
      decoded += seg[i];
    }
  }
  return decoded == "." || decoded == "..";
}

Status check_segments(std::string_view path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (is_dot_segment(path.substr(start, end - start)))
      return unprocessable("must not contain a '.' or '..' path segment");
    start = end + 1;
  }
  return Status::ok();
}

bool valid_bucket_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

}  // namespace

Status check_artifact_uri(std::string_view uri) {
  if (uri.empty()) return unprocessable("is required (file:///ABSOLUTE/PATH or s3://BUCKET/KEY)");
  if (uri.size() > kMaxArtifactUriLength)
    return unprocessable("is longer than " + std::to_string(kMaxArtifactUriLength) + " bytes");
  if (std::any_of(uri.begin(), uri.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
      }))
    return unprocessable("must not contain NUL or other control characters");
  if (uri.find('\\') != std::string_view::npos) return unprocessable("must not contain a backslash");
  constexpr std::string_view kFile = "file://";
  constexpr std::string_view kS3 = "s3://";
  if (uri.starts_with(kFile)) {
    std::string_view path = uri.substr(kFile.size());
    if (!path.starts_with('/') || path.size() < 2)
      return unprocessable("must be file:// with an absolute path (file:///ABSOLUTE/PATH)");
    return check_segments(path);
  }
  if (uri.starts_with(kS3)) {
    std::string_view rest = uri.substr(kS3.size());
    size_t slash = rest.find('/');
    std::string_view bucket = rest.substr(0, slash);
    if (bucket.size() < 3 || bucket.size() > 63 || !std::all_of(bucket.begin(), bucket.end(), valid_bucket_char))
      return unprocessable("must name an S3 bucket of 3-63 characters a-z 0-9 . - (s3://BUCKET/KEY)");
    if (slash == std::string_view::npos || slash + 1 == rest.size())
      return unprocessable("must name an object key after the bucket (s3://BUCKET/KEY)");
    return check_segments(rest.substr(slash + 1));
  }
  return unprocessable("must be a file:///ABSOLUTE/PATH or s3://BUCKET/KEY URI");
}

}  // namespace culvert
