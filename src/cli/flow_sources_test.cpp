// The flow-source table of `culvert flow register` and the artifact-runner table of
// `culvert execute`: every kind has its entry, paths find their source, and the binary
// source takes whatever no other source recognises.
#include <gtest/gtest.h>

#include <set>

#include "cli/artifact_runners.hpp"
#include "cli/flow_sources.hpp"
#include "core/artifact_uri.hpp"

namespace culvert::cli {
namespace {

TEST(FlowSources, EveryKindIsOneTheServerKnowsAndBinaryIsLast) {
  std::set<std::string> kinds;
  for (const auto& s : flow_sources()) {
    EXPECT_TRUE(is_artifact_kind(s.kind)) << s.kind;
    EXPECT_TRUE(kinds.insert(s.kind).second) << "two sources of kind " << s.kind;
    EXPECT_FALSE(s.description.empty()) << s.kind;
  }
  ASSERT_FALSE(flow_sources().empty());
  EXPECT_EQ(flow_sources().back().kind, "binary");
}

TEST(FlowSources, YamlFilesAreYamlFlows) {
  EXPECT_EQ(flow_source_for({.path = "nightly.yaml", .flags = {}}).kind, "yaml");
  EXPECT_EQ(flow_source_for({.path = "/srv/flows/nightly.yml", .flags = {}}).kind, "yaml");
  ASSERT_NE(find_artifact_runner("yaml"), nullptr);
}

TEST(FlowSources, APathNoOtherSourceRecognisesIsAFlowBinary) {
  EXPECT_EQ(flow_source_for({.path = "./etl", .flags = {}}).kind, "binary");
  EXPECT_EQ(flow_source_for({.path = "/opt/flows/etl-1.2", .flags = {}}).kind, "binary");
}

TEST(CaptureStdout, ReadsWhatACommandPrintsUpToItsBoundAndSaysHowItEnded) {
  auto ok = capture_stdout({"sh", "-c", "printf 'a\\nb'"}, 100);
  ASSERT_TRUE(ok) << ok.status().to_string();
  EXPECT_TRUE(ok->succeeded);
  EXPECT_FALSE(ok->too_long);
  EXPECT_EQ(ok->out, "a\nb");

  auto failed = capture_stdout({"sh", "-c", "echo partial; exit 3"}, 100);
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ(failed->out, "partial\n");

  // Far more than the bound, forever: read up to it, then killed (the call returns).
  auto flood = capture_stdout({"sh", "-c", "while :; do echo xxxxxxxxxxxxxxxx; done"}, 1000);
  ASSERT_TRUE(flood);
  EXPECT_TRUE(flood->too_long);
  EXPECT_FALSE(flood->succeeded);
  EXPECT_LE(flood->out.size(), 1000u);

  auto missing = capture_stdout({"/nonexistent/culvert-no-such-program"}, 100);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->succeeded);
  EXPECT_TRUE(missing->out.empty());
}

TEST(ArtifactRunners, EveryKindIsOneTheServerKnowsAndBinaryIsThere) {
  std::set<std::string> kinds;
  for (const auto& r : artifact_runners()) {
    EXPECT_TRUE(is_artifact_kind(r.kind)) << r.kind;
    EXPECT_TRUE(kinds.insert(r.kind).second) << "two runners of kind " << r.kind;
  }
  ASSERT_NE(find_artifact_runner("binary"), nullptr);
  EXPECT_EQ(find_artifact_runner("binary")->kind, "binary");
  EXPECT_EQ(find_artifact_runner("no-such-kind"), nullptr);
}

}  // namespace
}  // namespace culvert::cli
