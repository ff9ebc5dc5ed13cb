#include "core/artifact_uri.hpp"

#include <gtest/gtest.h>

#include <string>

namespace culvert {
namespace {

TEST(ArtifactUri, AcceptsAbsoluteFileAndS3) {
  for (std::string uri : {"file:///flows/etl", "file:///a", "s3://my-bucket/flows/etl/sha",
                          "s3://bucket.with.dots/k", "file:///dir/..x/y", "file:///a/b.c/...", "file:///a//b"}) {
    EXPECT_TRUE(check_artifact_uri(uri).is_ok()) << uri << ": " << check_artifact_uri(uri).message();
  }
}

TEST(ArtifactUri, RefusesWhatTheProbeSent) {
  struct Case {
    std::string uri;
    std::string says;
  };
  const Case cases[] = {
      {"", "is required"},
      {"http://evil.example/flow", "file:///ABSOLUTE/PATH or s3://BUCKET/KEY"},
      {"https://x/y", "file:///ABSOLUTE/PATH or s3://BUCKET/KEY"},
      {"flows/etl", "file:///ABSOLUTE/PATH or s3://BUCKET/KEY"},
      {"/flows/etl", "file:///ABSOLUTE/PATH or s3://BUCKET/KEY"},
      {"file://flows/etl", "absolute path"},
      {"file://host/etc/passwd", "absolute path"},
      {"file:///", "absolute path"},
      {std::string("file:///flows/etl\0/../../etc/shadow", 34), "NUL"},
      {"file:///flows/etl\n", "control"},
      {"file:///flows/\x7f", "control"},
      {"file:///flows/../etc/passwd", "'..' path segment"},
      {"file:///flows/..", "'..' path segment"},
      {"file:///flows/./etl", "'.' or '..'"},
      {"file:///flows/%2e%2E/etc", "'..' path segment"},
      {"file:///flows\\..\\x", "backslash"},
      {"s3://bucket/../other", "'..' path segment"},
      {"s3://Bucket/key", "S3 bucket"},
      {"s3://ab/key", "S3 bucket"},
      {"s3://bucket", "object key"},
      {"s3://bucket/", "object key"},
      {"file:///" + std::string(3000, 'a'), "longer than 2048 bytes"},
  };
  for (const auto& c : cases) {
    Status st = check_artifact_uri(c.uri);
    EXPECT_EQ(st.code(), StatusCode::kUnprocessable) << c.uri;
    EXPECT_NE(st.message().find(c.says), std::string::npos) << c.uri << ": " << st.message();
  }
}

}  // namespace
}  // namespace culvert
