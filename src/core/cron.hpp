// Cron expressions (5 fields, `@daily`-style aliases) and their fire times in an IANA
// time zone (see docs/SCHEDULES.md for the exact grammar and the daylight-saving rules).
//
//   auto expr = CronExpr::parse("0 6 * * MON-FRI");       // Result<CronExpr>
//   auto zone = TimeZone::find("Europe/Berlin");          // Result<TimeZone>
//   std::optional<SysTime> t = expr->next_after(now, *zone);
//
// CronExpr is an immutable value (five bit sets); all functions are pure and
// thread-safe. TimeZone is a non-owning handle to a zone of the operating system's tz
// database, which lives for the whole process.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

namespace date {
class time_zone;
}

namespace culvert {

// A zone of the OS tz database ("UTC", "Europe/Berlin", "America/New_York").
class TimeZone {
 public:
  // kInvalidArgument naming the zone when the database does not know it.
  static Result<TimeZone> find(std::string_view iana_name);
  static TimeZone utc();

  const std::string& name() const { return name_; }
  const date::time_zone* zone() const { return zone_; }

 private:
  TimeZone(const date::time_zone* zone, std::string name) : zone_(zone), name_(std::move(name)) {}
  const date::time_zone* zone_;  // not owned; static storage of the tz database
  std::string name_;
};

class CronExpr {
 public:
  // Parses "minute hour day-of-month month day-of-week" or an alias (@yearly, @annually,
  // @monthly, @weekly, @daily, @midnight, @hourly). Errors are kInvalidArgument and
  // name the field and the offending text.
  static Result<CronExpr> parse(std::string_view text);

  // The first fire time strictly after `after`, in `zone`. A local time that does not
  // exist (spring forward) is skipped; a local time that occurs twice (fall back)
  // fires once, at its first occurrence. nullopt when there is none within 30 years.
  std::optional<SysTime> next_after(SysTime after, const TimeZone& zone) const;

  // The latest fire time strictly before `before` and strictly after `not_before`;
  // nullopt when there is none in that interval.
  std::optional<SysTime> prev_before(SysTime before, SysTime not_before,
                                     const TimeZone& zone) const;

  // Field tests on a local calendar time (month 1-12, weekday 0-6 with 0 = Sunday).
  bool matches_day(int day_of_month, int month, int weekday) const;
  bool matches_time(int hour, int minute) const { return hours_[hour] && minutes_[minute]; }

  // The expression as written (trimmed).
  const std::string& text() const { return text_; }

 private:
  CronExpr() = default;
  friend class CronParser;

  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_; // 0..6, Sunday = 0 (7 is folded into 0)
  bool days_star_ = false;      // the day-of-month field starts with '*'
  bool weekdays_star_ = false;  // the day-of-week field starts with '*'
  std::string text_;
};

}  // namespace culvert
