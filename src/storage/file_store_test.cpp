#include "storage/file_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/crypto.hpp"

namespace culvert {
namespace {

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("culvert-fs-" + new_uuid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string uri(const std::string& key) { return "file://" + (dir_ / key).string(); }
  std::filesystem::path dir_;
};

TEST_F(FileStoreTest, PutGetExistsRemove) {
  auto store = open_object_store(uri("x"));
  ASSERT_TRUE(store) << store.status().to_string();
  EXPECT_EQ((*store)->exists(uri("a/b/c")).value(), false);
  EXPECT_EQ((*store)->get(uri("a/b/c")).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE((*store)->put(uri("a/b/c"), std::string("hello\0world", 11)).is_ok());
  EXPECT_EQ((*store)->exists(uri("a/b/c")).value(), true);
  EXPECT_EQ((*store)->get(uri("a/b/c")).value(), std::string("hello\0world", 11));
  ASSERT_TRUE((*store)->remove(uri("a/b/c")).is_ok());
  EXPECT_EQ((*store)->exists(uri("a/b/c")).value(), false);
}

TEST_F(FileStoreTest, Files) {
  storage::FileStore store;
  std::string local = (dir_ / "local.bin").string();
  ASSERT_TRUE(store.put(uri("src"), "payload").is_ok());
  ASSERT_TRUE(store.get_file(uri("src"), local).is_ok());
  ASSERT_TRUE(store.put_file(uri("copy/of/it"), local).is_ok());
  EXPECT_EQ(store.get(uri("copy/of/it")).value(), "payload");
  EXPECT_EQ(store.put_file(uri("y"), (dir_ / "missing").string()).code(), StatusCode::kNotFound);
}

TEST(OpenObjectStore, RejectsBadUris) {
  EXPECT_EQ(open_object_store("ftp://x/y").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_object_store("file://relative/path").status().code(), StatusCode::kInvalidArgument);
  storage::FileStore store;
  EXPECT_EQ(store.get("file:///tmp/../etc/passwd").status().code(), StatusCode::kInvalidArgument);
}

TEST(JoinUri, OneSlash) {
  EXPECT_EQ(join_uri("s3://b/prefix/", "/flows/x"), "s3://b/prefix/flows/x");
  EXPECT_EQ(join_uri("file:///tmp", "a"), "file:///tmp/a");
}

}  // namespace
}  // namespace culvert
