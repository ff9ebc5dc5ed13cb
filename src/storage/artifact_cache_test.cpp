// Where `culvert execute` caches artifacts when HOME is missing or not writable.
#include "storage/artifact_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace culvert::storage {
namespace {

namespace fs = std::filesystem;

ArtifactCacheEnv env_of(std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

struct TempDir {
  TempDir() {
    char t[] = "/tmp/culvert-cache-test-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

TEST(ArtifactCacheDir, TheSettingWinsThenHomeThenTmp) {
  TempDir t;
  EXPECT_EQ(*artifact_cache_dir(env_of({{"CULVERT_ARTIFACT_CACHE", "/x/y"}, {"HOME", t.path.string()}})), "/x/y");
  auto home = artifact_cache_dir(env_of({{"HOME", t.path.string()}, {"TMPDIR", "/nonexistent"}}));
  ASSERT_TRUE(home) << home.status().message();
  EXPECT_EQ(*home, (t.path / ".culvert" / "artifacts").string());
  EXPECT_TRUE(fs::is_directory(*home));
}

// A HOME that cannot hold the cache (here a regular file, which even root cannot make
// a folder in; in a container, a read-only or missing HOME) falls back to TMPDIR.
TEST(ArtifactCacheDir, AnUnwritableHomeFallsBackToAPrivateFolderInTmp) {
  TempDir t;
  fs::path file_home = t.path / "home-is-a-file";
  { std::ofstream(file_home) << "x"; }
  fs::path tmp = t.path / "tmp";
  fs::create_directories(tmp);
  auto dir = artifact_cache_dir(env_of({{"HOME", file_home.string()}, {"TMPDIR", tmp.string()}}));
  ASSERT_TRUE(dir) << dir.status().message();
  fs::path user = tmp / ("culvert-" + std::to_string(::geteuid()));
  EXPECT_EQ(*dir, (user / "artifacts").string());
  struct stat st {};
  ASSERT_EQ(::stat(user.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // No HOME at all: the same.
  EXPECT_EQ(*artifact_cache_dir(env_of({{"TMPDIR", tmp.string()}})), (user / "artifacts").string());
}

TEST(ArtifactCacheDir, NothingWritableNamesEveryPlaceTried) {
  TempDir t;
  fs::path file = t.path / "f";
  { std::ofstream(file) << "x"; }
  auto dir = artifact_cache_dir(env_of({{"HOME", file.string()}, {"TMPDIR", file.string()}}));
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.status().message().find(file.string() + "/.culvert/artifacts"), std::string::npos)
      << dir.status().message();
  EXPECT_NE(dir.status().message().find("CULVERT_ARTIFACT_CACHE"), std::string::npos) << dir.status().message();
}

}  // namespace
}  // namespace culvert::storage
