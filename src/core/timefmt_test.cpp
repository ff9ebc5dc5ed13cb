#include "core/timefmt.hpp"

#include <gtest/gtest.h>

#include <date/date.h>

namespace culvert {
namespace {

TEST(TimeFormat, RoundTrip) {
  SysTime t = from_unix_ms(1764308493123);
  std::string s = format_rfc3339(t);
  EXPECT_EQ(s, "2025-11-28T05:41:33.123Z");
  auto back = parse_rfc3339(s);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(to_unix_ms(*back), 1764308493123);
}

// The hand-written formatter agrees with date::format over pre-epoch times, leap days,
// the ends of days and years, and far-off years.
TEST(TimeFormat, AgreesWithDateFormat) {
  const int64_t samples[] = {0, -1, 1, 86'399'999, 86'400'000, -2'208'988'800'000, 951'782'400'000,
                             951'868'799'999, 1'709'164'800'123, 4'102'444'799'999, 7'258'118'400'000};
  // (SysTime counts nanoseconds: it spans about 1678 to 2262.)
  for (int64_t ms : samples) {
    SysTime t = from_unix_ms(ms);
    EXPECT_EQ(format_rfc3339(t), date::format("%FT%TZ", std::chrono::floor<std::chrono::milliseconds>(t))) << ms;
  }
  for (int64_t ms = -5'000'000'000'000; ms < 5'000'000'000'000; ms += 7'777'777'777) {
    SysTime t = from_unix_ms(ms);
    ASSERT_EQ(format_rfc3339(t), date::format("%FT%TZ", std::chrono::floor<std::chrono::milliseconds>(t))) << ms;
  }
}

TEST(TimeFormat, Offsets) {
  auto a = parse_rfc3339("2026-03-29T03:30:00+02:00");
  auto b = parse_rfc3339("2026-03-29T01:30:00Z");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_TRUE(parse_rfc3339("2026-03-29 01:30:00Z").has_value());
  EXPECT_FALSE(parse_rfc3339("2026-03-29").has_value());
  EXPECT_FALSE(parse_rfc3339("yesterday at noon").has_value());
  EXPECT_FALSE(parse_rfc3339("2026-13-29T01:30:00Z").has_value());
  // Found by fuzzing the server's JSON handlers: malformed or far-away times.
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00=:00Z").has_value());
  EXPECT_FALSE(parse_rfc3339("2026-02-30T00:00:00Z").has_value());
  EXPECT_FALSE(parse_rfc3339("9999-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(parse_rfc3339("0001-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00.Z").has_value());
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00+2:00").has_value());
  auto frac = parse_rfc3339("2026-01-01T00:00:00.123456789Z");
  ASSERT_TRUE(frac.has_value());
  EXPECT_EQ(to_unix_ms(*frac) % 1000, 123);
}

TEST(TimeFormat, Durations) {
  using namespace std::chrono;
  EXPECT_EQ(parse_duration("30d"), duration_cast<milliseconds>(hours(24 * 30)));
  EXPECT_EQ(parse_duration("1h30m"), duration_cast<milliseconds>(minutes(90)));
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("10"), milliseconds(10000));
  EXPECT_FALSE(parse_duration("").has_value());
  EXPECT_FALSE(parse_duration("10x").has_value());
  EXPECT_FALSE(parse_duration("-5s").has_value());
  EXPECT_FALSE(parse_duration("999999999999d").has_value());
  EXPECT_FALSE(parse_duration("99999999999w99999999999w").has_value());
}

}  // namespace
}  // namespace culvert
