// The python flow sources and artifact runners: which paths they take, and a flow
// file that does not describe itself is a usage error naming the command.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/artifact_runners.hpp"
#include "cli/flow_sources.hpp"

namespace culvert::cli {
namespace {

TEST(PythonFlowSources, APyFileIsPythonAndWithPackageAPythonPackage) {
  EXPECT_EQ(flow_source_for({.path = "etl.py", .flags = {}}).kind, "python");
  EXPECT_EQ(flow_source_for({.path = "/src/flows/etl.py", .flags = {{"package", "/src"}}}).kind, "python-package");
  EXPECT_EQ(flow_source_for({.path = "etl.pyc", .flags = {}}).kind, "binary");
  EXPECT_EQ(flow_source_for({.path = ".py", .flags = {}}).kind, "binary");
  ASSERT_NE(find_artifact_runner("python"), nullptr);
  ASSERT_NE(find_artifact_runner("python-package"), nullptr);
}

TEST(PythonFlowSources, AFileThatDoesNotDescribeItselfIsRefused) {
  namespace fs = std::filesystem;
  fs::path f = fs::temp_directory_path() / ("culvert-notaflow-" + std::to_string(::getpid()) + ".py");
  std::ofstream(f) << "import sys\nsys.exit(3)\n";
  const FlowSource& s = flow_source_for({.path = f.string(), .flags = {}});
  auto r = s.prepare({.path = f.string(), .flags = {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(f.string() + " describe' failed"), std::string::npos) << r.status().message();
  fs::remove(f);
}

}  // namespace
}  // namespace culvert::cli
