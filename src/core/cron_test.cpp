#include "core/cron.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/timefmt.hpp"

namespace culvert {
namespace {

std::vector<std::vector<std::string>> read_table(const std::string& name) {
  std::ifstream in(std::string(CULVERT_SOURCE_DIR) + "/src/core/testdata/" + name);
  EXPECT_TRUE(in.good()) << "cannot open " << name;
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string col;
    while (std::getline(ss, col, '\t')) cols.push_back(col);
    rows.push_back(cols);
  }
  return rows;
}

SysTime at(const std::string& s) {
  auto t = parse_rfc3339(s);
  EXPECT_TRUE(t.has_value()) << s;
  return t.value_or(SysTime{});
}

TEST(Cron, KnownNextFireTimes) {
  auto rows = read_table("cron_cases.tsv");
  ASSERT_GT(rows.size(), 50u);
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 4u) << "malformed row starting " << (r.empty() ? "" : r[0]);
    SCOPED_TRACE(r[0] + " | " + r[1] + " | after " + r[2]);
    auto expr = CronExpr::parse(r[0]);
    ASSERT_TRUE(expr.is_ok()) << expr.status().to_string();
    auto zone = TimeZone::find(r[1]);
    ASSERT_TRUE(zone.is_ok()) << zone.status().to_string();
    auto next = expr->next_after(at(r[2]), *zone);
    if (r[3] == "none") {
      EXPECT_FALSE(next.has_value());
    } else {
      ASSERT_TRUE(next.has_value());
      EXPECT_EQ(format_rfc3339(*next), format_rfc3339(at(r[3])));
    }
  }
}

TEST(Cron, ParserErrorsNameTheField) {
  auto rows = read_table("cron_errors.tsv");
  ASSERT_GT(rows.size(), 20u);
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 2u) << "malformed row starting " << (r.empty() ? "" : r[0]);
    auto expr = CronExpr::parse(r[0]);
    ASSERT_FALSE(expr.is_ok()) << "'" << r[0] << "' parsed";
    EXPECT_EQ(expr.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(expr.status().message().find(r[1]), std::string::npos)
        << "'" << r[0] << "': " << expr.status().message();
  }
  EXPECT_FALSE(CronExpr::parse("").is_ok());
  EXPECT_FALSE(CronExpr::parse("   ").is_ok());
}

TEST(Cron, WhitespaceAndText) {
  auto e = CronExpr::parse("  0   6 *\t* *  ");
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->text(), "0 6 * * *");
}

TEST(Cron, UnknownZone) {
  auto z = TimeZone::find("Mars/Olympus_Mons");
  ASSERT_FALSE(z.is_ok());
  EXPECT_NE(z.status().message().find("Mars/Olympus_Mons"), std::string::npos);
  EXPECT_FALSE(TimeZone::find("").is_ok());
  EXPECT_EQ(TimeZone::utc().name(), "UTC");
}

// Walking a whole year of an every-15-minutes schedule across both Berlin transitions:
// each local wall time fires exactly once, nonexistent ones never.
TEST(Cron, BerlinYearWalkFiresEachLocalTimeOnce) {
  auto e = CronExpr::parse("*/15 * * * *");
  auto z = TimeZone::find("Europe/Berlin");
  ASSERT_TRUE(e.is_ok() && z.is_ok());
  SysTime t = at("2026-01-01T00:00:00+01:00") - std::chrono::seconds(1);
  SysTime end = at("2027-01-01T00:00:00+01:00");
  int count = 0;
  SysTime prev{};
  while (true) {
    auto n = e->next_after(t, *z);
    ASSERT_TRUE(n.has_value());
    if (*n >= end) break;
    if (count > 0) {
      auto gap = *n - prev;
      // normal 15 min; the spring gap is still 15 min of real time (01:45 CET -> 03:00
      // CEST); the fall-back repeat leaves a gap of 1h15m (02:45 CEST -> 03:00 CET).
      EXPECT_TRUE(gap == std::chrono::minutes(15) || gap == std::chrono::minutes(75))
          << format_rfc3339(*n);
    }
    prev = *n;
    t = *n;
    ++count;
  }
  // 365 days * 96 slots, minus the 4 nonexistent slots of 29 March; the 4 repeated slots
  // of 25 October fire once.
  EXPECT_EQ(count, 365 * 96 - 4);
}

TEST(Cron, PrevBefore) {
  auto e = CronExpr::parse("0 6 * * *");
  auto z = TimeZone::find("Europe/Berlin");
  ASSERT_TRUE(e.is_ok() && z.is_ok());
  auto p = e->prev_before(at("2026-03-30T00:00:00Z"), at("2026-01-01T00:00:00Z"), *z);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(format_rfc3339(*p), "2026-03-29T04:00:00.000Z");
  // exclusive bounds
  p = e->prev_before(at("2026-03-29T04:00:00Z"), at("2026-01-01T00:00:00Z"), *z);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(format_rfc3339(*p), "2026-03-28T05:00:00.000Z");
  EXPECT_FALSE(e->prev_before(at("2026-03-29T04:00:00Z"), at("2026-03-28T05:00:00Z"), *z));
  auto y = CronExpr::parse("@yearly");
  ASSERT_TRUE(y.is_ok());
  p = y->prev_before(at("2026-06-01T00:00:00Z"), at("2000-01-01T00:00:00Z"), TimeZone::utc());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(format_rfc3339(*p), "2026-01-01T00:00:00.000Z");
  p = y->prev_before(at("2026-06-01T00:00:00Z"), at("1990-01-01T00:00:00Z"), TimeZone::utc());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(format_rfc3339(*p), "2026-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace culvert
