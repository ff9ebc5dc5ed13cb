#include "core/timefmt.hpp"

#include <date/date.h>

#include <cctype>
#include <cstdio>

namespace culvert {

int64_t to_unix_ms(SysTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SysTime from_unix_ms(int64_t ms) {
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::milliseconds(ms)));
}

std::string format_rfc3339(SysTime t) {
  // Written digit by digit: this is on the path of every task-run state and log line
  // (date::format goes through an ostream and a locale, ~1 us per call).
  auto ms = std::chrono::floor<std::chrono::milliseconds>(t);
  auto day = std::chrono::floor<date::days>(ms);
  date::year_month_day ymd{day};
  int year = static_cast<int>(ymd.year());
  if (year < 0 || year > 9999) return date::format("%FT%TZ", ms);
  int64_t in_day = (ms - day).count();  // 0 .. 86'399'999
  char buf[24];
  auto put = [&buf](size_t pos, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i, v /= 10) buf[pos + static_cast<size_t>(i)] = static_cast<char>('0' + v % 10);
  };
  put(0, year, 4);
  buf[4] = '-';
  put(5, static_cast<unsigned>(ymd.month()), 2);
  buf[7] = '-';
  put(8, static_cast<unsigned>(ymd.day()), 2);
  buf[10] = 'T';
  put(11, in_day / 3'600'000, 2);
  buf[13] = ':';
  put(14, in_day / 60'000 % 60, 2);
  buf[16] = ':';
  put(17, in_day / 1000 % 60, 2);
  buf[19] = '.';
  put(20, in_day % 1000, 3);
  buf[23] = 'Z';
  return std::string(buf, sizeof buf);
}

namespace {

// Reads exactly `n` digits at s[pos]; -1 when any is not a digit.
int digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::optional<SysTime> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM), checked character by character: the
  // parser never sees anything but digits where digits belong.
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') return std::nullopt;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  int hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (year < 1900 || year > 2200 || month < 1 || day < 1 || hour < 0 || hour > 23 || minute < 0 ||
      minute > 59 || second < 0 || second > 60)
    return std::nullopt;
  date::year_month_day ymd{date::year(year), date::month(static_cast<unsigned>(month)),
                           date::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t scale = 100000;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (scale > 0) micros += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
    // UTC
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    int oh = digits(s, pos + 1, 2), om = digits(s, pos + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return std::nullopt;
    offset_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  using namespace std::chrono;
  auto t = date::sys_days(ymd) + hours(hour) + minutes(minute) + seconds(second) + microseconds(micros) -
           minutes(offset_minutes);
  return time_point_cast<SysTime::duration>(t);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  constexpr int64_t kMaxMs = int64_t{100} * 366 * 24 * 3600 * 1000;  // 100 years
  if (s.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    int64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      n = n * 10 + (s[i] - '0');
      if (n > kMaxMs) return std::nullopt;
      ++i;
    }
    size_t j = i;
    while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
    std::string_view unit = s.substr(i, j - i);
    i = j;
    int64_t unit_ms;
    if (unit.empty()) {
      if (any || i != s.size()) return std::nullopt;
      unit_ms = 1000;
    } else if (unit == "ms") {
      unit_ms = 1;
    } else if (unit == "s") {
      unit_ms = 1000;
    } else if (unit == "m") {
      unit_ms = 60 * 1000;
    } else if (unit == "h") {
      unit_ms = 3600 * 1000;
    } else if (unit == "d") {
      unit_ms = 24 * 3600 * 1000;
    } else if (unit == "w") {
      unit_ms = 7 * 24 * 3600 * 1000;
    } else {
      return std::nullopt;
    }
    if (n > (kMaxMs - total) / unit_ms) return std::nullopt;  // no overflow, at most 100 years
    total += n * unit_ms;
    any = true;
  }
  return std::chrono::milliseconds(total);
}

}  // namespace culvert
