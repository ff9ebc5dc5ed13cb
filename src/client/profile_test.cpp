#include "client/profile.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace culvert::client {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "culvert-profile-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Profile, MissingFileIsEmpty) {
  TempDir d;
  auto c = load_profile_config(d.path() / "nope" / "config.toml");
  ASSERT_TRUE(c.is_ok());
  EXPECT_TRUE(c->profiles.empty());
  EXPECT_EQ(c->active_profile, "");
}

TEST(Profile, WritesTheSharedFormatWithPrivateModes) {
  TempDir d;
  fs::path file = d.path() / ".culvert" / "config.toml";
  ASSERT_TRUE(set_profile_value(file, "default", "api_token", "cvt_admin").is_ok());
  ASSERT_TRUE(set_profile_value(file, "default", "api_url", "http://127.0.0.1:4200").is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(file.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(slurp(file),
            "active_profile = \"default\"\n\n[profiles.default]\napi_token = \"cvt_admin\"\n"
            "api_url = \"http://127.0.0.1:4200\"\n");
  auto c = load_profile_config(file);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->active_profile, "default");
  EXPECT_EQ(c->profiles["default"].api_token, "cvt_admin");
  EXPECT_EQ(c->profiles["default"].api_url, "http://127.0.0.1:4200");
}

TEST(Profile, ReadsAHandWrittenFileAndKeepsUnknownKeys) {
  TempDir d;
  fs::path file = d.path() / "config.toml";
  {
    std::ofstream out(file);
    out << "# mine\nactive_profile = \"prod\"\ncolor = true\n\n"
           "[profiles.default]\napi_url = \"http://localhost:4200\"\n\n"
           "[profiles.prod]\napi_url = \"https://culvert.example.com\"\napi_token = \"cvt_p\"\nnote = \"x\"\n";
  }
  auto c = load_profile_config(file);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->active_profile, "prod");
  EXPECT_EQ(c->profiles.size(), 2u);
  EXPECT_EQ(c->profiles["prod"].api_token, "cvt_p");
  ASSERT_TRUE(set_profile_value(file, "staging", "api_url", "http://s:1", /*make_active=*/true).is_ok());
  std::string text = slurp(file);
  EXPECT_NE(text.find("color = true"), std::string::npos);
  EXPECT_NE(text.find("note = \"x\""), std::string::npos) << text;
  c = load_profile_config(file);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->active_profile, "staging");
  EXPECT_EQ(c->profiles["staging"].api_url, "http://s:1");
  EXPECT_EQ(c->profiles["prod"].api_url, "https://culvert.example.com");
  ASSERT_TRUE(set_active_profile(file, "prod").is_ok());
  EXPECT_EQ(load_profile_config(file)->active_profile, "prod");
}

TEST(Profile, MalformedFileNamesFileAndLine) {
  TempDir d;
  fs::path file = d.path() / "config.toml";
  {
    std::ofstream out(file);
    out << "active_profile = \"a\"\n[profiles.a\n";
  }
  auto c = load_profile_config(file);
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(file.string() + ":2:"), std::string::npos) << c.status().message();
  EXPECT_FALSE(set_profile_value(file, "a", "api_url", "x").is_ok());  // never clobbers a broken file
}

TEST(Profile, DefaultPath) {
  auto p = default_config_path(env_of({{"HOME", "/home/u"}}));
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->string(), "/home/u/.culvert/config.toml");
  EXPECT_FALSE(default_config_path(env_of({})).is_ok());
}

TEST(Settings, Precedence) {
  ProfileConfig cfg;
  cfg.active_profile = "work";
  cfg.profiles["work"] = {"http://work:1", "cvt_work"};
  cfg.profiles["home"] = {"http://home:2", "cvt_home"};
  cfg.profiles["default"] = {"", "cvt_default"};

  struct Case {
    SettingFlags flags;
    std::map<std::string, std::string> env;
    std::string profile, url, token, url_source;
  };
  const Case cases[] = {
      {{}, {}, "work", "http://work:1", "cvt_work", "profile work"},
      {{}, {{"CULVERT_PROFILE", "home"}}, "home", "http://home:2", "cvt_home", "profile home"},
      {{.profile = "home"}, {{"CULVERT_PROFILE", "work"}}, "home", "http://home:2", "cvt_home", "profile home"},
      {{}, {{"CULVERT_API_URL", "http://env:3"}}, "work", "http://env:3", "cvt_work", "env CULVERT_API_URL"},
      {{.api_url = "http://flag:4"}, {{"CULVERT_API_URL", "http://env:3"}}, "work", "http://flag:4", "cvt_work",
       "flag --api-url"},
      {{}, {{"CULVERT_API_TOKEN", "cvt_env"}}, "work", "http://work:1", "cvt_env", "profile work"},
      {{.api_token = "cvt_flag"}, {{"CULVERT_API_TOKEN", "cvt_env"}}, "work", "http://work:1", "cvt_flag",
       "profile work"},
      {{.profile = "default"}, {}, "default", kDefaultApiUrl, "cvt_default", "default"},
      {{.profile = "nosuch"}, {}, "nosuch", kDefaultApiUrl, "", "default"},
      {{}, {{"CULVERT_API_URL", ""}}, "work", "http://work:1", "cvt_work", "profile work"},  // empty = unset
  };
  for (const auto& c : cases) {
    auto s = resolve_settings(c.flags, env_of(c.env), cfg);
    EXPECT_EQ(s.profile, c.profile);
    EXPECT_EQ(s.api_url, c.url);
    EXPECT_EQ(s.api_token, c.token);
    EXPECT_EQ(s.api_url_source, c.url_source);
  }
  auto empty = resolve_settings({}, env_of({}), ProfileConfig{});
  EXPECT_EQ(empty.profile, "default");
  EXPECT_EQ(empty.api_url, "http://127.0.0.1:4200");
  EXPECT_EQ(empty.api_token, "");
}

}  // namespace
}  // namespace culvert::client
