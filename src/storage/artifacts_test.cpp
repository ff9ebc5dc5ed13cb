#include "storage/artifacts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "core/crypto.hpp"
#include "storage/file_store.hpp"

namespace culvert::storage {
namespace {
namespace fs = std::filesystem;

// Forwards to a FileStore and counts transfers.
class CountingStore final : public ObjectStore {
 public:
  Result<std::string> get(const std::string& uri) override { return inner.get(uri); }
  Status put(const std::string& uri, std::string_view d) override { return inner.put(uri, d); }
  Result<bool> exists(const std::string& uri) override { return inner.exists(uri); }
  Status put_file(const std::string& uri, const std::string& p) override {
    ++puts;
    return inner.put_file(uri, p);
  }
  Status get_file(const std::string& uri, const std::string& p) override {
    ++gets;
    return inner.get_file(uri, p);
  }
  Status remove(const std::string& uri) override { return inner.remove(uri); }
  FileStore inner;
  int puts = 0, gets = 0;
};

class ArtifactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("culvert-art-" + new_uuid());
    fs::create_directories(dir_ / "src");
    local_ = (dir_ / "src" / "flow").string();
    std::ofstream(local_, std::ios::binary) << "#!/bin/sh\necho hi\n";
    base_ = "file://" + (dir_ / "storage").string();
    cache_ = (dir_ / "cache").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string local_, base_, cache_;
};

TEST_F(ArtifactsTest, UploadIsContentAddressedAndSkippedWhenPresent) {
  CountingStore store;
  auto ref = upload_artifact(store, base_, "etl", local_);
  ASSERT_TRUE(ref) << ref.status().to_string();
  EXPECT_EQ(ref->sha256, sha256_hex("#!/bin/sh\necho hi\n"));
  EXPECT_EQ(ref->uri, base_ + "/etl/" + ref->sha256);
  EXPECT_EQ(store.puts, 1);
  auto again = upload_artifact(store, base_ + "/", "etl", local_);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->uri, ref->uri);
  EXPECT_EQ(store.puts, 1);  // already there
  // The URI-only overload opens the store itself.
  auto via_uri = upload_artifact(base_, "etl", local_);
  ASSERT_TRUE(via_uri);
  EXPECT_EQ(via_uri->uri, ref->uri);
}

TEST_F(ArtifactsTest, FetchDownloadsVerifiesCachesAndMakesExecutable) {
  CountingStore store;
  auto ref = upload_artifact(store, base_, "etl", local_).value();
  auto path = fetch_artifact(store, ref.uri, ref.sha256, cache_);
  ASSERT_TRUE(path) << path.status().to_string();
  EXPECT_EQ(*path, (fs::path(cache_) / ref.sha256).string());
  EXPECT_EQ(sha256_file(*path).value(), ref.sha256);
  struct stat st{};
  ASSERT_EQ(::stat(path->c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  EXPECT_EQ(store.gets, 1);
  ASSERT_TRUE(fetch_artifact(store, ref.uri, ref.sha256, cache_));
  EXPECT_EQ(store.gets, 1);  // served from the cache
  // A corrupted cache entry is replaced.
  std::ofstream(*path, std::ios::binary | std::ios::trunc) << "tampered";
  ASSERT_TRUE(fetch_artifact(store, ref.uri, ref.sha256, cache_));
  EXPECT_EQ(store.gets, 2);
  EXPECT_EQ(sha256_file(*path).value(), ref.sha256);
  // So is one changed in place with the same size (its stamp no longer matches).
  std::string same_size(fs::file_size(*path), 'x');
  std::ofstream(*path, std::ios::binary | std::ios::trunc) << same_size;
  ASSERT_TRUE(fetch_artifact(store, ref.uri, ref.sha256, cache_));
  EXPECT_EQ(store.gets, 3);
  EXPECT_EQ(sha256_file(*path).value(), ref.sha256);
  // A verified entry is served without another download.
  ASSERT_TRUE(fetch_artifact(store, ref.uri, ref.sha256, cache_));
  EXPECT_EQ(store.gets, 3);
}

// An in-place edit that also rewrites the stamp beside the file (whoever can edit the
// one can edit the other) is served by the stamp-trusting lookups, but never opened for
// execution: open_verified_artifact hashes what it opens, and an identity it recorded
// earlier no longer matches once the file was written.
TEST_F(ArtifactsTest, AForgedCacheEntryAndStampAreNotOpenedForExecution) {
  CountingStore store;
  auto ref = upload_artifact(store, base_, "etl", local_).value();
  auto path = fetch_artifact(store, ref.uri, ref.sha256, cache_).value();
  auto v = open_verified_artifact(ref.sha256, cache_);
  ASSERT_TRUE(v);
  std::string content;
  char buf[4096];
  for (ssize_t n; (n = ::read(v->fd, buf, sizeof(buf))) > 0;) content.append(buf, static_cast<size_t>(n));
  ::close(v->fd);
  EXPECT_EQ(sha256_hex(content), ref.sha256);
  // The recorded identity skips the hash while the file is unchanged.
  auto again = open_verified_artifact(ref.sha256, cache_, v->identity);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->identity, v->identity);
  ::close(again->fd);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << "FORGED";
  }
  // The forger puts the mtime back and writes a stamp matching the edited file.
  struct timespec times[2] = {{0, UTIME_OMIT}, {v->identity.mtime_ns / 1000000000, v->identity.mtime_ns % 1000000000}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  std::ofstream(path + ".verified", std::ios::trunc)
      << st.st_size << " " << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " " << st.st_ino << "\n";
  EXPECT_TRUE(cached_artifact(ref.sha256, cache_));  // the stamp fools the stamp check
  EXPECT_FALSE(open_verified_artifact(ref.sha256, cache_));
  // Whether or not the identity recorded earlier was stable (the edit may fall in the
  // same clock tick), it never vouches for the edited file: a stable one differs now
  // (ctime moved on), an unstable one would not have been kept by a caller.
  if (v->stable) EXPECT_FALSE(open_verified_artifact(ref.sha256, cache_, v->identity));
  EXPECT_FALSE(open_verified_artifact("not-a-hash", cache_));
  EXPECT_FALSE(open_verified_artifact(std::string(64, 'a'), cache_));
  // Forgotten, it is fetched and verified again.
  forget_cached_artifact(ref.sha256, cache_);
  ASSERT_TRUE(fetch_artifact(store, ref.uri, ref.sha256, cache_));
  v = open_verified_artifact(ref.sha256, cache_);
  ASSERT_TRUE(v);
  ::close(v->fd);
}

TEST_F(ArtifactsTest, HashMismatchIsAnErrorAndLeavesNothing) {
  CountingStore store;
  auto ref = upload_artifact(store, base_, "etl", local_).value();
  ASSERT_TRUE(store.put(ref.uri, "swapped content").is_ok());  // storage changed under us
  auto r = fetch_artifact(store, ref.uri, ref.sha256, cache_);
  EXPECT_EQ(r.status().code(), StatusCode::kUnprocessable);
  EXPECT_NE(r.status().message().find("does not match the registered hash " + ref.sha256), std::string::npos);
  // The hash of what was read is not revealed (it would tell whoever registered the
  // URI the SHA-256 of any file the agent can read).
  EXPECT_EQ(r.status().message().find(sha256_hex("swapped content")), std::string::npos);
  EXPECT_NE(r.status().message().find(ref.uri), std::string::npos);
  EXPECT_TRUE(fs::is_empty(cache_));
}

TEST_F(ArtifactsTest, ConcurrentFetchesShareOneCache) {
  auto ref = upload_artifact(base_, "etl", local_).value();
  std::vector<std::thread> threads;
  std::vector<Result<std::string>> results(4, Result<std::string>(internal_error("not run")));
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      FileStore store;  // one store per fetcher, as separate agents would have
      results[i] = fetch_artifact(store, ref.uri, ref.sha256, cache_);
    });
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(*r, (fs::path(cache_) / ref.sha256).string());
  }
  EXPECT_EQ(sha256_file(*results[0]).value(), ref.sha256);
  std::set<std::string> entries;
  for (auto& e : fs::directory_iterator(cache_)) entries.insert(e.path().filename().string());
  // The artifact and its verification stamp; no temporary files left behind.
  EXPECT_EQ(entries, (std::set<std::string>{ref.sha256, ref.sha256 + ".verified"}));
}

TEST_F(ArtifactsTest, BadInputs) {
  CountingStore store;
  EXPECT_EQ(upload_artifact(store, base_, "a/b", local_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(upload_artifact(store, base_, "..", local_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(upload_artifact(store, base_, "", local_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(upload_artifact(store, base_, "etl", local_ + ".missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(fetch_artifact(store, base_ + "/etl/x", "ABC", cache_).status().code(), StatusCode::kInvalidArgument);
  auto missing = fetch_artifact(store, base_ + "/etl/" + std::string(64, 'a'), std::string(64, 'a'), cache_);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(cache_));
}

}  // namespace
}  // namespace culvert::storage
