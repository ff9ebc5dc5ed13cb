#include <culvert/codec.hpp>

#include <gtest/gtest.h>

#include <culvert/json.hpp>

namespace culvert {
namespace {

template <typename T>
T roundtrip(const T& v) {
  std::string s = Codec<T>::encode(v);
  T out{};
  EXPECT_TRUE(Codec<T>::decode(s, out)) << s;
  return out;
}

TEST(Codec, Scalars) {
  EXPECT_EQ(roundtrip(42), 42);
  EXPECT_EQ(roundtrip(-7LL), -7LL);
  EXPECT_EQ(roundtrip(0.1), 0.1);
  EXPECT_EQ(roundtrip(true), true);
  EXPECT_EQ(roundtrip(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(Codec<int>::encode(12), "12");
  int bad = 0;
  EXPECT_FALSE(Codec<int>::decode("12x", bad));
  EXPECT_FALSE(Codec<int>::decode("", bad));
}

TEST(Codec, Containers) {
  std::vector<std::string> v{"", "x:y", "3:abc"};
  EXPECT_EQ(roundtrip(v), v);
  std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
  EXPECT_EQ(roundtrip(m), m);
  std::vector<unsigned char> bytes{0, 255, 10};
  EXPECT_EQ(roundtrip(bytes), bytes);
  std::vector<int> out;
  EXPECT_FALSE(Codec<std::vector<int>>::decode("5:12", out));  // truncated item
  EXPECT_FALSE(Codec<std::vector<int>>::decode("x", out));
}

TEST(Codec, Json) {
  nlohmann::json j = {{"a", 1}, {"b", {1, 2}}};
  EXPECT_EQ(roundtrip(j), j);
  nlohmann::json out;
  EXPECT_FALSE(Codec<nlohmann::json>::decode("{bad", out));
}

struct NoCodec {};
static_assert(HasCodec<int> && HasCodec<std::vector<std::map<std::string, double>>>);
static_assert(!HasCodec<NoCodec> && !HasCodec<std::vector<NoCodec>>);

}  // namespace
}  // namespace culvert
