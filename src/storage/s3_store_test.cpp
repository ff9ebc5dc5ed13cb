// S3 store behaviour against an in-process fake S3 (127.0.0.1, ephemeral port): request
// shape and signing, error mapping, bounded retries on simulated time, multipart abort.
// The real S3-compatible service is exercised in s3_e2e_test.cpp.
#include "storage/s3_store.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "core/crypto.hpp"
#include "aws/sigv4.hpp"
#include "test_http_server.hpp"

namespace culvert::storage {
namespace {
using culvert::testing::TestHttpServer;
using culvert::testing::TestRequest;
using culvert::testing::TestResponse;

std::string xml_error(const std::string& code, const std::string& msg, const std::string& extra = "") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" + msg +
         "</Message>" + extra + "<RequestId>1</RequestId></Error>";
}

struct Fixture {
  ManualClock clock;
  SeededRandom random{7};
  std::unique_ptr<S3Store> store(const std::string& endpoint, int attempts = 4) {
    S3Config cfg;
    cfg.endpoint = endpoint;
    cfg.region = "eu-west-1";
    cfg.credentials = std::make_unique<aws::StaticCredentialsProvider>(
        aws::Credentials{"AKIDTEST", "secret", "", {}});
    cfg.clock = &clock;
    cfg.random = &random;
    cfg.max_attempts = attempts;
    cfg.multipart_threshold = 64;
    cfg.part_size = 32;
    return std::make_unique<S3Store>(std::move(cfg));
  }
};

TEST(S3Uri, Parses) {
  auto l = parse_s3_uri("s3://my-bucket/a/b c");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->bucket, "my-bucket");
  EXPECT_EQ(l->key, "a/b c");
  EXPECT_EQ(parse_s3_uri("s3://bucket")->key, "");
  EXPECT_EQ(parse_s3_uri("s3://Bad_Bucket!/k").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_s3_uri("s3://ab/k").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_s3_uri("file:///x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_object_store("s3://b!/x").status().code(), StatusCode::kInvalidArgument);
  StorageOptions o;
  o.s3_endpoint = "localhost:4568";
  EXPECT_EQ(open_object_store("s3://bucket/x", o).status().code(), StatusCode::kInvalidArgument);
}

TEST(S3Target, PathStyleForEndpointsVirtualHostedOnAws) {
  auto t = s3_target("http://127.0.0.1:4568/", "us-east-1", {"bucket", "a b/c"});
  EXPECT_EQ(t.scheme, "http");
  EXPECT_EQ(t.host, "127.0.0.1:4568");
  EXPECT_EQ(t.path, "/bucket/a%20b/c");
  t = s3_target("https://minio.example.com:443/s3", "us-east-1", {"bucket", "k"});
  EXPECT_EQ(t.host, "minio.example.com");
  EXPECT_EQ(t.path, "/s3/bucket/k");
  t = s3_target("", "eu-west-1", {"my-bucket", "flows/etl/x"});
  EXPECT_EQ(t.scheme, "https");
  EXPECT_EQ(t.host, "my-bucket.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t.path, "/flows/etl/x");
  t = s3_target("", "eu-west-1", {"my.dotted.bucket", "k"});
  EXPECT_EQ(t.host, "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t.path, "/my.dotted.bucket/k");
}

TEST(S3Store, PutIsPathStyleAndSignedOverWhatIsSent) {
  Fixture f;
  TestHttpServer server([](const TestRequest&) { return TestResponse{200, ""}; });
  auto s = f.store(server.url());
  ASSERT_TRUE(s->put("s3://bucket/dir/a b+c.bin", "payload").is_ok());
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const TestRequest& r = reqs[0];
  EXPECT_EQ(r.method, "PUT");
  EXPECT_EQ(r.target, "/bucket/dir/a%20b%2Bc.bin");
  EXPECT_EQ(r.body, "payload");
  EXPECT_EQ(r.headers.at("x-amz-content-sha256"), sha256_hex("payload"));
  EXPECT_EQ(r.headers.at("x-amz-date"), "20260101T000000Z");
  // Re-sign what the server received: the signature must match.
  aws::SigningRequest sr{.method = "PUT", .host = "127.0.0.1:" + std::to_string(server.port()),
                         .path = r.target, .headers = {{"Content-Type", r.headers.at("content-type")}},
                         .payload_sha256 = sha256_hex("payload")};
  auto expected = aws::sign_v4(sr, {"AKIDTEST", "secret", "", {}}, {.region = "eu-west-1", .service = "s3"},
                               f.clock.now());
  EXPECT_EQ(r.headers.at("authorization"), expected.authorization);
}

TEST(S3Store, ErrorsAreMappedToClearStatuses) {
  Fixture f;
  std::string answer_code;
  TestHttpServer server([&](const TestRequest&) {
    if (answer_code == "NoSuchBucket")
      return TestResponse{404, xml_error("NoSuchBucket", "The specified bucket does not exist",
                                         "<BucketName>nobucket</BucketName>")};
    if (answer_code == "NoSuchKey") return TestResponse{404, xml_error("NoSuchKey", "no key")};
    if (answer_code == "InvalidAccessKeyId") return TestResponse{403, xml_error("InvalidAccessKeyId", "x")};
    if (answer_code == "SignatureDoesNotMatch") return TestResponse{403, xml_error("SignatureDoesNotMatch", "x")};
    if (answer_code == "AccessDenied") return TestResponse{403, xml_error("AccessDenied", "Access Denied")};
    return TestResponse{400, xml_error("InvalidRequest", "odd")};
  });
  auto s = f.store(server.url());
  answer_code = "NoSuchBucket";
  auto r = s->get("s3://nobucket/k");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("bucket 'nobucket' does not exist"), std::string::npos) << r.status().message();
  EXPECT_EQ(s->remove("s3://nobucket/k").code(), StatusCode::kNotFound);
  answer_code = "NoSuchKey";
  EXPECT_EQ(s->get("s3://bucket/k").status().message(), "no object at s3://bucket/k");
  EXPECT_TRUE(s->remove("s3://bucket/k").is_ok());  // deleting a missing object is fine
  answer_code = "InvalidAccessKeyId";
  auto st = s->put("s3://bucket/k", "x");
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(st.message().find("AKIDTEST"), std::string::npos);
  answer_code = "SignatureDoesNotMatch";
  st = s->put("s3://bucket/k", "x");
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(st.message().find("secret access key"), std::string::npos);
  answer_code = "AccessDenied";
  EXPECT_EQ(s->exists("s3://bucket/k").status().code(), StatusCode::kPermissionDenied);
  answer_code = "other";
  st = s->put("s3://bucket/k", "x");
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("HTTP 400 InvalidRequest: odd"), std::string::npos);
  EXPECT_EQ(server.requests().size(), 8u);  // none of these is retried
}

TEST(S3Store, RetriesThrottlingAndServerErrorsWithBackoff) {
  Fixture f;
  std::atomic<int> n{0};
  TestHttpServer server([&](const TestRequest&) {
    int i = n++;
    if (i == 0) return TestResponse{503, xml_error("SlowDown", "Please reduce your request rate.")};
    if (i == 1) return TestResponse{500, xml_error("InternalError", "oops")};
    return TestResponse{200, "body"};
  });
  auto s = f.store(server.url());
  auto t0 = f.clock.now();
  auto r = s->get("s3://bucket/k");
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(*r, "body");
  EXPECT_EQ(n.load(), 3);
  // Two waits: 100 ms and 200 ms, each scaled into [0.5, 1).
  auto waited = f.clock.now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(150));
  EXPECT_LT(waited, std::chrono::milliseconds(300));
}

TEST(S3Store, RetriesAreBounded) {
  Fixture f;
  TestHttpServer server([&](const TestRequest&) { return TestResponse{500, xml_error("InternalError", "down")}; });
  auto s = f.store(server.url(), 3);
  auto st = s->put("s3://bucket/k", "x");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("after 3 attempts"), std::string::npos) << st.message();
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(S3Store, UnreachableEndpointIsUnavailableNamingIt) {
  Fixture f;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // bound, never listening: refuses
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string endpoint = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  auto s = f.store(endpoint, 2);
  auto r = s->get("s3://bucket/k");
  ::close(fd);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("S3 endpoint " + endpoint + " is unreachable"), std::string::npos)
      << r.status().message();
}

TEST(S3Store, MultipartUploadAndAbortOnFailure) {
  Fixture f;
  bool fail_part_two = false;
  std::string completed;
  TestHttpServer server([&](const TestRequest& r) {
    if (r.method == "POST" && r.target.ends_with("?uploads="))
      return TestResponse{200, "<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>big</Key>"
                               "<UploadId>UP1</UploadId></InitiateMultipartUploadResult>"};
    if (r.method == "PUT" && r.target.find("partNumber=") != std::string::npos) {
      if (fail_part_two && r.target.find("partNumber=2&") != std::string::npos)
        return TestResponse{400, xml_error("InvalidPart", "bad part")};
      std::string etag = "\"" + sha256_hex(r.body).substr(0, 32) + "\"";
      return TestResponse{200, "", {{"ETag", etag}}};
    }
    if (r.method == "POST" && r.target.ends_with("?uploadId=UP1")) {
      completed = r.body;
      return TestResponse{200, "<CompleteMultipartUploadResult><ETag>\"x-3\"</ETag></CompleteMultipartUploadResult>"};
    }
    if (r.method == "DELETE") return TestResponse{204, ""};
    return TestResponse{400, xml_error("Unexpected", r.method + " " + r.target)};
  });
  auto s = f.store(server.url());
  auto path = std::filesystem::temp_directory_path() / ("culvert-mp-" + new_uuid());
  std::string data(80, 'x');  // 3 parts of 32, 32, 16 bytes
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  std::ofstream(path, std::ios::binary) << data;

  ASSERT_TRUE(s->put_file("s3://bucket/big", path.string()).is_ok());
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[1].body, data.substr(0, 32));
  EXPECT_EQ(reqs[2].body, data.substr(32, 32));
  EXPECT_EQ(reqs[3].body, data.substr(64));
  EXPECT_EQ(reqs[1].headers.at("x-amz-content-sha256"), sha256_hex(data.substr(0, 32)));
  EXPECT_NE(completed.find("<PartNumber>3</PartNumber>"), std::string::npos);

  fail_part_two = true;
  auto st = s->put_file("s3://bucket/big", path.string());
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("InvalidPart"), std::string::npos);
  reqs = server.requests();
  EXPECT_EQ(reqs.back().method, "DELETE");
  EXPECT_TRUE(reqs.back().target.ends_with("?uploadId=UP1"));
  std::filesystem::remove(path);
}

TEST(S3Store, GetFileWritesOnlyOnSuccess) {
  Fixture f;
  TestHttpServer server([](const TestRequest& r) {
    if (r.target == "/bucket/ok") return TestResponse{200, "file body"};
    return TestResponse{404, xml_error("NoSuchKey", "no")};
  });
  auto s = f.store(server.url());
  auto dir = std::filesystem::temp_directory_path() / ("culvert-gf-" + new_uuid());
  std::string dest = (dir / "sub" / "out").string();
  ASSERT_TRUE(s->get_file("s3://bucket/ok", dest).is_ok());
  std::ifstream in(dest);
  std::string got((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(got, "file body");
  std::string dest2 = (dir / "missing").string();
  EXPECT_EQ(s->get_file("s3://bucket/nope", dest2).code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dest2));
  size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::recursive_directory_iterator(dir)) ++n;
  EXPECT_EQ(n, 2u);  // sub/ and sub/out: no leftover temporary files
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace culvert::storage
