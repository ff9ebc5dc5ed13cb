#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <toml++/toml.h>

#include "server/metrics.hpp"
#include "server/profile.hpp"

namespace culvert::server {
namespace {

std::string temp_dir() {
  std::string t = (std::filesystem::temp_directory_path() / "culvert-profile-XXXXXX").string();
  EXPECT_NE(mkdtemp(t.data()), nullptr);
  return t;
}

TEST(ProfileTest, WritesANewProfileWithMode0600) {
  auto dir = temp_dir();
  std::string path = dir + "/.culvert/config.toml";
  ASSERT_TRUE(save_profile(path, "default", "http://127.0.0.1:4200", "cvt_x").is_ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto t = toml::parse_file(path);
  EXPECT_EQ(t["active_profile"].value_or(std::string()), "default");
  EXPECT_EQ(t["profiles"]["default"]["api_url"].value_or(std::string()), "http://127.0.0.1:4200");
  EXPECT_EQ(t["profiles"]["default"]["api_token"].value_or(std::string()), "cvt_x");
  std::filesystem::remove_all(dir);
}

TEST(ProfileTest, KeepsOtherProfilesAndKeys) {
  auto dir = temp_dir();
  std::string path = dir + "/config.toml";
  {
    std::ofstream out(path);
    out << "active_profile = \"prod\"\n[profiles.prod]\napi_url = \"https://prod\"\napi_token = \"p\"\n"
           "[profiles.default]\ns3_endpoint = \"http://s3\"\n";
  }
  ASSERT_TRUE(save_profile(path, "default", "http://127.0.0.1:1", "cvt_y").is_ok());
  auto t = toml::parse_file(path);
  EXPECT_EQ(t["active_profile"].value_or(std::string()), "prod");
  EXPECT_EQ(t["profiles"]["prod"]["api_token"].value_or(std::string()), "p");
  EXPECT_EQ(t["profiles"]["default"]["s3_endpoint"].value_or(std::string()), "http://s3");
  EXPECT_EQ(t["profiles"]["default"]["api_token"].value_or(std::string()), "cvt_y");
  std::filesystem::remove_all(dir);
}

TEST(ProfileTest, RefusesToOverwriteAnUnparsableFile) {
  auto dir = temp_dir();
  std::string path = dir + "/config.toml";
  { std::ofstream(path) << "this is = = not toml"; }
  EXPECT_FALSE(save_profile(path, "default", "u", "t").is_ok());
  std::filesystem::remove_all(dir);
}

TEST(MetricsTest, RendersPrometheusText) {
  Metrics m({{"GET", "/api/health"}, {"POST", "/api/v1/logs"}});
  m.observe_request(0, 200, 0.0007);
  m.observe_request(0, 200, 0.3);
  m.observe_request(1, 422, 0.002);
  m.observe_request(99, 404, 0.0001);  // unmatched
  m.add_claimed_runs(3);
  Metrics::Gauges g;
  g.runs_by_state = {{"Running", 2}};
  g.agents_healthy = 1;
  auto text = m.render(g);
  EXPECT_NE(text.find("culvert_flow_runs{state=\"Running\"} 2"), std::string::npos);
  EXPECT_NE(text.find("culvert_claimed_runs_total 3"), std::string::npos);
  EXPECT_NE(text.find("culvert_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/health\",le=\"0.001\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("culvert_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/health\",le=\"+Inf\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("culvert_http_requests_total{method=\"POST\",route=\"/api/v1/logs\",code=\"4xx\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("route=\"unmatched\""), std::string::npos);
  EXPECT_NE(text.find("# TYPE culvert_http_request_duration_seconds histogram"), std::string::npos);
}

}  // namespace
}  // namespace culvert::server
