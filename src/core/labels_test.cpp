#include "core/labels.hpp"

#include <gtest/gtest.h>

namespace culvert {
namespace {

TEST(Labels, SubsetRule) {
  EXPECT_TRUE(labels_cover({"a", "b"}, {}));
  EXPECT_TRUE(labels_cover({}, {}));
  EXPECT_TRUE(labels_cover({"a", "b"}, {"b"}));
  EXPECT_TRUE(labels_cover({"a", "b"}, {"b", "a"}));
  EXPECT_FALSE(labels_cover({"a"}, {"a", "b"}));
  EXPECT_FALSE(labels_cover({}, {"a"}));
  EXPECT_FALSE(labels_cover({"A"}, {"a"}));  // exact comparison
}

TEST(Labels, Missing) {
  EXPECT_EQ(missing_labels({"a"}, {"a", "b", "c", "b"}), (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(missing_labels({"a", "b"}, {"a"}).empty());
}

TEST(Labels, Normalize) {
  EXPECT_EQ(normalize_labels({"b", "a", "b"}), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace culvert
