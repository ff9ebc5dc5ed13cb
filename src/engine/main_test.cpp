#include <culvert/culvert.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace culvert {
namespace {

int call_main(const Flow& flow, std::vector<std::string> args) {
  std::vector<char*> argv;
  std::string prog = "flowbin";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  return culvert::main(flow, static_cast<int>(argv.size()), argv.data());
}

TEST(Main, RegisteredSubcommandIsDispatched) {
  std::vector<std::string> seen;
  std::string flow_name;
  ASSERT_TRUE(register_subcommand("test-cmd", "a test subcommand",
                                  [&](const Flow& f, const std::vector<std::string>& args) {
                                    flow_name = f.name();
                                    seen = args;
                                    return 7;
                                  }));
  EXPECT_FALSE(register_subcommand("test-cmd", "again", [](const Flow&, const std::vector<std::string>&) { return 0; }));
  EXPECT_FALSE(register_subcommand("run", "builtin", [](const Flow&, const std::vector<std::string>&) { return 0; }));
  Flow flow("f");
  flow.task("t", [] {});
  EXPECT_EQ(call_main(flow, {"test-cmd", "--project", "P"}), 7);
  EXPECT_EQ(flow_name, "f");
  EXPECT_EQ(seen, (std::vector<std::string>{"--project", "P"}));
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"help"}), 0);
  std::string help = testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find("test-cmd"), std::string::npos);
  EXPECT_NE(help.find("a test subcommand"), std::string::npos);
}

TEST(Main, RunDescribeGraphAndUsageErrors) {
  Flow flow("m");
  auto p = flow.parameter<int>("x", 1);
  flow.task("t", [](int v) { if (v < 0) throw std::runtime_error("negative"); }, p);
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"run", "--output", "json", "--param", "x=2"}), 0);
  auto j = nlohmann::json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(j["state"], "Success");
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"run", "--output=json", "--param=x=-1", "--workers=2"}), 1);
  j = nlohmann::json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(j["state"], "Failed");
  EXPECT_EQ(j["task_runs"][0]["message"], "negative");
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"describe"}), 0);
  EXPECT_EQ(nlohmann::json::parse(testing::internal::GetCapturedStdout())["name"], "m");
  testing::internal::CaptureStderr();
  EXPECT_EQ(call_main(flow, {}), 2);
  EXPECT_EQ(call_main(flow, {"nope"}), 2);
  EXPECT_EQ(call_main(flow, {"run", "--param", "x"}), 2);
  EXPECT_EQ(call_main(flow, {"run", "--param", "x=1", "--param", "x=2"}), 2);
  EXPECT_EQ(call_main(flow, {"run", "--workers"}), 2);
  EXPECT_EQ(call_main(flow, {"graph", "--png"}), 2);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("unknown command 'nope'"), std::string::npos);
  EXPECT_NE(err.find("parameter 'x' is given twice"), std::string::npos);
}

TEST(Main, InvalidFlowExitsTwo) {
  Flow flow("bad");
  flow.task("t", [] {});
  flow.task("t", [] {});
  testing::internal::CaptureStderr();
  EXPECT_EQ(call_main(flow, {"describe"}), 2);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("two tasks are named 't'"), std::string::npos);
}

}  // namespace
}  // namespace culvert
