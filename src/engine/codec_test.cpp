#include <culvert/codec.hpp>

#include <gtest/gtest.h>

#include <culvert/json.hpp>

namespace shop {
// A user type with nlohmann's to_json/from_json: <culvert/json.hpp> gives it a codec.
struct Order {
  std::string id;
  int items = 0;
  bool operator==(const Order&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, id, items)

// Hand-written functions, found the same way.
struct Money {
  long cents = 0;
  bool operator==(const Money&) const = default;
};
void to_json(nlohmann::json& j, const Money& m) { j = {{"cents", m.cents}}; }
void from_json(const nlohmann::json& j, Money& m) { m.cents = j.at("cents").get<long>(); }
}  // namespace shop

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

TEST(Codec, TypesWithNlohmannFunctionsAreStoredAsJson) {
  shop::Order o{"a-1", 3};
  EXPECT_EQ(Codec<shop::Order>::encode(o), R"({"id":"a-1","items":3})");
  EXPECT_EQ(roundtrip(o), o);
  EXPECT_EQ(roundtrip(shop::Money{1250}), shop::Money{1250});
  std::vector<shop::Order> orders{{"a", 1}, {"b", 2}};
  EXPECT_EQ(roundtrip(orders), orders);
  std::map<std::string, shop::Money> m{{"x", {1}}};
  EXPECT_EQ(roundtrip(m), m);
  // Bytes that are not JSON, or that from_json refuses (it throws), are malformed.
  shop::Order out;
  EXPECT_FALSE(Codec<shop::Order>::decode("{bad", out));
  EXPECT_FALSE(Codec<shop::Order>::decode(R"({"id":"a"})", out));          // no items
  EXPECT_FALSE(Codec<shop::Order>::decode(R"({"id":7,"items":1})", out));  // id not a string
  shop::Money money;
  EXPECT_FALSE(Codec<shop::Money>::decode("[]", money));
}

struct NoCodec {};
static_assert(HasCodec<int> && HasCodec<std::vector<std::map<std::string, double>>>);
static_assert(!HasCodec<NoCodec> && !HasCodec<std::vector<NoCodec>>);
static_assert(HasCodec<shop::Order> && HasCodec<shop::Money> && HasCodec<std::vector<shop::Order>>);
// The built-in codecs keep theirs (an int is "7", not JSON text chosen by ADL).
static_assert(std::is_same_v<decltype(Codec<int>::encode(1)), std::string>);

}  // namespace
}  // namespace culvert
