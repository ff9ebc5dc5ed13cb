#include "core/json_parse.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace culvert {
namespace {

std::string nested_arrays(size_t n) { return std::string(n, '[') + std::string(n, ']'); }

TEST(JsonParse, NestingDepthCountsArraysAndObjectsNotStrings) {
  EXPECT_EQ(json_nesting_depth("1", 64), 0u);
  EXPECT_EQ(json_nesting_depth("{}", 64), 1u);
  EXPECT_EQ(json_nesting_depth(R"({"a":[{"b":[]}],"c":{}})", 64), 4u);
  EXPECT_EQ(json_nesting_depth(R"({"a":"[[[[{{{{"})", 64), 1u);
  EXPECT_EQ(json_nesting_depth(R"(["\"[[[", [1]])", 64), 2u);
  EXPECT_EQ(json_nesting_depth(R"(["\\", [[1]]])", 64), 3u);
  EXPECT_EQ(json_nesting_depth(nested_arrays(100000), 64), 65u);  // stops at the limit
}

TEST(JsonParse, DeepTextIsRefusedNamingTheLimit) {
  auto ok = parse_json_bounded(nested_arrays(64));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->dump().size(), 128u);
  auto deep = parse_json_bounded(nested_arrays(65));
  ASSERT_FALSE(deep.is_ok());
  EXPECT_EQ(deep.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(deep.status().message(), ::testing::HasSubstr("limit of 64 levels"));
  // The probe's body: 100,000 nested arrays inside an object member.
  std::string probe = R"({"run_config":{"run_task_kwargs":)" + nested_arrays(100000) + "}}";
  EXPECT_FALSE(parse_json_bounded(probe).is_ok());
  EXPECT_TRUE(parse_json_bounded(probe, 200000).is_ok());  // the parser itself copes
  EXPECT_TRUE(parse_json_bounded(nested_arrays(10), 10).is_ok());
  EXPECT_FALSE(parse_json_bounded(nested_arrays(11), 10).is_ok());
}

TEST(JsonParse, InvalidTextIsAnError) {
  EXPECT_FALSE(parse_json_bounded("{").is_ok());
  EXPECT_FALSE(parse_json_bounded("").is_ok());
  EXPECT_FALSE(parse_json_bounded(R"({"a":"unterminated)").is_ok());
  EXPECT_TRUE(parse_json_bounded(R"({"a":"x"})").is_ok());
}

}  // namespace
}  // namespace culvert
