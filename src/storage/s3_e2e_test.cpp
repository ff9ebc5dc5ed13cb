// End-to-end: the S3 store and artifacts against a real S3-compatible server (s3rver,
// started by the CTest fixture in scripts/testenv/s3rver.sh), checked from the other
// side with the aws CLI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/crypto.hpp"
#include "storage/artifacts.hpp"
#include "storage/s3_store.hpp"

namespace culvert::storage {
namespace {
namespace fs = std::filesystem;

constexpr const char* kBucket = "culvert-e2e";

std::string endpoint() {
  const char* dir = std::getenv("CULVERT_S3RVER_DIR");
  if (!dir) return "";
  std::ifstream in(std::string(dir) + "/port");
  std::string port;
  in >> port;
  return port.empty() ? "" : "http://127.0.0.1:" + port;
}

struct Cmd {
  int exit_code;
  std::string out;
};
Cmd run(const std::string& cmd) {
  Cmd r{-1, ""};
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class S3E2E : public ::testing::Test {
 protected:
  void SetUp() override {
    ep_ = endpoint();
    ASSERT_FALSE(ep_.empty()) << "s3rver fixture not running (CULVERT_S3RVER_DIR/port)";
    opts_.s3_endpoint = ep_;
    auto s = open_object_store(std::string("s3://") + kBucket, opts_);
    ASSERT_TRUE(s) << s.status().to_string();
    store_ = std::move(*s);
    dir_ = fs::temp_directory_path() / ("culvert-s3e2e-" + new_uuid());
    fs::create_directories(dir_);
    prefix_ = std::string("s3://") + kBucket + "/run-" + new_uuid();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string aws(const std::string& args) {
    return "/usr/bin/aws --endpoint-url " + ep_ + " " + args;
  }
  std::string ep_;
  StorageOptions opts_;
  std::unique_ptr<ObjectStore> store_;
  fs::path dir_;
  std::string prefix_;
};

TEST_F(S3E2E, PutGetExistsRemove) {
  std::string uri = prefix_ + "/dir/a b+c.txt";
  EXPECT_EQ(store_->exists(uri).value(), false);
  EXPECT_EQ(store_->get(uri).status().code(), StatusCode::kNotFound);
  std::string data("binary\0data\xff", 12);
  ASSERT_TRUE(store_->put(uri, data).is_ok());
  EXPECT_EQ(store_->exists(uri).value(), true);
  auto got = store_->get(uri);
  ASSERT_TRUE(got) << got.status().to_string();
  EXPECT_EQ(*got, data);
  ASSERT_TRUE(store_->put(uri, "replaced").is_ok());
  EXPECT_EQ(store_->get(uri).value(), "replaced");
  ASSERT_TRUE(store_->remove(uri).is_ok());
  EXPECT_EQ(store_->exists(uri).value(), false);
  EXPECT_TRUE(store_->remove(uri).is_ok());
}

TEST_F(S3E2E, LargeFileGoesMultipartAndComesBackIntact) {
  std::string local = (dir_ / "big.bin").string();
  {
    std::ofstream out(local, std::ios::binary);
    SeededRandom rnd(42);
    std::string block(1 << 20, '\0');
    for (int mb = 0; mb < 20; ++mb) {  // 20 MiB: three parts of 8, 8 and 4 MiB
      for (size_t i = 0; i < block.size(); i += 8) {
        uint64_t v = rnd.next_u64();
        std::memcpy(&block[i], &v, 8);
      }
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
  std::string uri = prefix_ + "/big.bin";
  ASSERT_TRUE(store_->put_file(uri, local).is_ok());
  std::string back = (dir_ / "back.bin").string();
  ASSERT_TRUE(store_->get_file(uri, back).is_ok());
  EXPECT_EQ(fs::file_size(back), 20u << 20);
  EXPECT_EQ(sha256_file(back).value(), sha256_file(local).value());
  // It went up in three parts (s3rver logs each request) ...
  std::string key = uri.substr(std::string("s3://").size() + std::string(kBucket).size() + 1);
  std::string log = read_file(std::string(std::getenv("CULVERT_S3RVER_DIR")) + "/log");
  for (int part = 1; part <= 3; ++part)
    EXPECT_NE(log.find(key + "?partNumber=" + std::to_string(part) + "&uploadId="), std::string::npos) << part;
  EXPECT_EQ(log.find(key + "?partNumber=4&"), std::string::npos);
  // ... and the aws CLI sees one whole object.
  auto head = run(aws("s3api head-object --bucket " + std::string(kBucket) + " --key " + key));
  ASSERT_EQ(head.exit_code, 0) << head.out;
  EXPECT_NE(head.out.find("\"ContentLength\": 20971520"), std::string::npos) << head.out;
}

TEST_F(S3E2E, MissingBucketIsNotFoundNamingTheBucket) {
  std::string uri = "s3://no-such-bucket-" + new_uuid().substr(0, 8) + "/k";
  auto r = store_->get(uri);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("bucket '" + uri.substr(5, uri.size() - 7) + "' does not exist"),
            std::string::npos)
      << r.status().message();
  auto p = store_->put(uri, "x");
  EXPECT_EQ(p.code(), StatusCode::kNotFound);
  EXPECT_NE(p.message().find("does not exist"), std::string::npos) << p.message();
}

TEST_F(S3E2E, UnreachableEndpointIsUnavailableNamingIt) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // bound, never listening: refuses
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  StorageOptions o;
  o.s3_endpoint = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  auto s = open_object_store("s3://culvert-e2e", o);
  ASSERT_TRUE(s);
  auto st = (*s)->put("s3://culvert-e2e/k", "x");
  ::close(fd);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find(o.s3_endpoint), std::string::npos) << st.message();
}

TEST_F(S3E2E, AwsCliReadsWhatCulvertWroteAndBack) {
  std::string key = prefix_.substr(std::string("s3://").size()) + "/from-culvert.txt";
  ASSERT_TRUE(store_->put("s3://" + key, "written by culvert\n").is_ok());
  auto ls = run(aws("s3 ls " + prefix_ + "/"));
  ASSERT_EQ(ls.exit_code, 0) << ls.out;
  EXPECT_NE(ls.out.find("from-culvert.txt"), std::string::npos) << ls.out;
  auto cat = run(aws("s3 cp s3://" + key + " -"));
  ASSERT_EQ(cat.exit_code, 0) << cat.out;
  EXPECT_EQ(cat.out, "written by culvert\n");

  std::string local = (dir_ / "by-aws.txt").string();
  std::ofstream(local) << "written by the aws CLI\n";
  auto cp = run(aws("s3 cp " + local + " " + prefix_ + "/from-aws.txt"));
  ASSERT_EQ(cp.exit_code, 0) << cp.out;
  auto got = store_->get(prefix_ + "/from-aws.txt");
  ASSERT_TRUE(got) << got.status().to_string();
  EXPECT_EQ(*got, "written by the aws CLI\n");
}

TEST_F(S3E2E, ArtifactsUploadOnceAndFetchVerified) {
  std::string local = (dir_ / "flow").string();
  std::ofstream(local) << "#!/bin/sh\necho artifact\n";
  auto ref = upload_artifact(prefix_, "etl", local, opts_);
  ASSERT_TRUE(ref) << ref.status().to_string();
  EXPECT_EQ(ref->uri, prefix_ + "/etl/" + ref->sha256);
  auto again = upload_artifact(prefix_, "etl", local, opts_);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->uri, ref->uri);
  std::string cache = (dir_ / "cache").string();
  auto path = fetch_artifact(ref->uri, ref->sha256, cache, opts_);
  ASSERT_TRUE(path) << path.status().to_string();
  auto out = run(*path);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.out, "artifact\n");
  // Tampered in storage: the fetch fails and leaves no file behind.
  ASSERT_TRUE(store_->put(ref->uri, "#!/bin/sh\necho evil\n").is_ok());
  fs::remove(*path);
  auto bad = fetch_artifact(ref->uri, ref->sha256, cache, opts_);
  EXPECT_EQ(bad.status().code(), StatusCode::kUnprocessable);
  EXPECT_TRUE(fs::is_empty(cache));
}

}  // namespace
}  // namespace culvert::storage
