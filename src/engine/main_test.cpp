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
  // The registry is process-wide: a fresh name per repetition of this test.
  static int round = 0;
  const std::string name = "test-cmd-" + std::to_string(round++);
  ASSERT_TRUE(register_subcommand(name, "a test subcommand",
                                  [&](const Flow& f, const std::vector<std::string>& args) {
                                    flow_name = f.name();
                                    seen = args;
                                    return 7;
                                  }));
  EXPECT_FALSE(register_subcommand(name, "again", [](const Flow&, const std::vector<std::string>&) { return 0; }));
  EXPECT_FALSE(register_subcommand("run", "builtin", [](const Flow&, const std::vector<std::string>&) { return 0; }));
  Flow flow("f");
  flow.task("t", [] {});
  EXPECT_EQ(call_main(flow, {name, "--project", "P"}), 7);
  EXPECT_EQ(flow_name, "f");
  EXPECT_EQ(seen, (std::vector<std::string>{"--project", "P"}));
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"help"}), 0);
  std::string help = testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find(name), std::string::npos);
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

// Running a flow never looks up its cron schedule's time zone (an image without the
// time-zone database must execute it); describing the flow does. A zone no database
// knows stands in for a machine without the database.
TEST(Main, RunningNeedsNoTimeZoneDatabaseButDescribeChecksTheZone) {
  Flow flow("zoned");
  flow.schedule(Cron("0 6 * * *", "Nowhere/Atlantis"));
  flow.task("t", [] {});
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"run", "--output", "json"}), 0);
  auto j = nlohmann::json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(j["state"], "Success");
  EXPECT_TRUE(static_cast<bool>(Executor(1).run(flow)));
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"graph", "--dot"}), 0);
  (void)testing::internal::GetCapturedStdout();
  testing::internal::CaptureStderr();
  EXPECT_EQ(call_main(flow, {"describe"}), 2);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("unknown time zone 'Nowhere/Atlantis'"), std::string::npos);
  EXPECT_FALSE(flow.validate().is_ok());
}

// --output takes table|json as the CLI does; text is kept as the older name of table.
TEST(Main, RunOutputIsTableOrJson) {
  Flow flow("o");
  flow.task("t", [] {});
  for (const char* format : {"table", "text"}) {
    testing::internal::CaptureStdout();
    EXPECT_EQ(call_main(flow, {"run", "--output", format}), 0) << format;
    std::string out = testing::internal::GetCapturedStdout();
    EXPECT_NE(out.find("Success"), std::string::npos) << format << ": " << out;
    EXPECT_TRUE(nlohmann::json::parse(out, nullptr, false).is_discarded()) << format << ": " << out;
  }
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"run", "-o", "json"}), 0);
  EXPECT_EQ(nlohmann::json::parse(testing::internal::GetCapturedStdout())["state"], "Success");
  testing::internal::CaptureStderr();
  EXPECT_EQ(call_main(flow, {"run", "--output", "yaml"}), 2);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("--output expects table or json, got 'yaml'"),
            std::string::npos);
  testing::internal::CaptureStdout();
  EXPECT_EQ(call_main(flow, {"describe", "--output", "json"}), 0);
  EXPECT_EQ(nlohmann::json::parse(testing::internal::GetCapturedStdout())["name"], "o");
  testing::internal::CaptureStderr();
  EXPECT_EQ(call_main(flow, {"describe", "--output", "table"}), 2);
  testing::internal::GetCapturedStderr();
}

// Every subcommand answers --help (and -h) with its usage on stdout, exit 0, without
// running anything — even for a flow that would not validate.
TEST(Main, EverySubcommandAcceptsHelp) {
  static int round = 0;
  const std::string added = "help-cmd-" + std::to_string(round++);
  bool called = false;
  ASSERT_TRUE(register_subcommand(
      added, "an added subcommand",
      [&](const Flow&, const std::vector<std::string>&) {
        called = true;
        return 0;
      },
      "usage: {prog} " + added + " --thing X\nDoes a thing.\n"));
  Flow flow("h");
  flow.task("t", [] {});
  flow.task("t", [] {});  // invalid: help still answers
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"run", "--help"}, "usage: flowbin run [--param NAME=VALUE]"},
      {{"run", "--param", "x=1", "-h"}, "--output FORMAT"},
      {{"describe", "--help"}, "usage: flowbin describe"},
      {{"graph", "--help"}, "usage: flowbin graph --dot"},
      {{added, "--help"}, "usage: flowbin " + added + " --thing X\nDoes a thing."},
      {{"--help"}, "commands:"},
  };
  for (const auto& c : cases) {
    testing::internal::CaptureStdout();
    EXPECT_EQ(call_main(flow, c.args), 0) << c.args[0];
    std::string out = testing::internal::GetCapturedStdout();
    EXPECT_NE(out.find(c.expected), std::string::npos) << c.args[0] << ": " << out;
  }
  EXPECT_FALSE(called);
  testing::internal::CaptureStderr();
  EXPECT_EQ(call_main(flow, {"nope", "--help"}), 2);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("unknown command 'nope'"), std::string::npos);
}

}  // namespace
}  // namespace culvert
