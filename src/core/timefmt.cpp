#include "core/timefmt.hpp"

#include <date/date.h>

#include <cctype>
#include <cstdio>
#include <sstream>

namespace culvert {

int64_t to_unix_ms(SysTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SysTime from_unix_ms(int64_t ms) {
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::milliseconds(ms)));
}

std::string format_rfc3339(SysTime t) {
  auto ms = std::chrono::floor<std::chrono::milliseconds>(t);
  return date::format("%FT%TZ", ms);
}

std::optional<SysTime> parse_rfc3339(std::string_view s) {
  // date::parse handles %FT%T with fractional seconds; the offset is parsed by hand.
  if (s.size() < 19) return std::nullopt;
  std::string text(s);
  if (text[10] == ' ' || text[10] == 't') text[10] = 'T';
  size_t tz = text.size();
  int offset_minutes = 0;
  if (text.back() == 'Z' || text.back() == 'z') {
    tz = text.size() - 1;
  } else if (text.size() >= 25 && (text[text.size() - 6] == '+' || text[text.size() - 6] == '-') &&
             text[text.size() - 3] == ':') {
    tz = text.size() - 6;
    int hh = 0, mm = 0;
    if (std::sscanf(text.c_str() + tz + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    offset_minutes = (hh * 60 + mm) * (text[tz] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  std::istringstream in(text.substr(0, tz));
  date::sys_time<std::chrono::microseconds> tp;
  in >> date::parse("%FT%T", tp);
  if (in.fail()) return std::nullopt;
  if (in.peek() != std::char_traits<char>::eof()) return std::nullopt;
  return std::chrono::time_point_cast<SysTime::duration>(tp - std::chrono::minutes(offset_minutes));
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::chrono::milliseconds total{0};
  size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    long long n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      n = n * 10 + (s[i] - '0');
      if (n > 1'000'000'000'000LL) return std::nullopt;
      ++i;
    }
    std::string_view unit;
    size_t j = i;
    while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
    unit = s.substr(i, j - i);
    i = j;
    using namespace std::chrono;
    if (unit.empty()) {
      if (any || i != s.size()) return std::nullopt;
      total += seconds(n);
    } else if (unit == "ms") {
      total += milliseconds(n);
    } else if (unit == "s") {
      total += seconds(n);
    } else if (unit == "m") {
      total += minutes(n);
    } else if (unit == "h") {
      total += hours(n);
    } else if (unit == "d") {
      total += hours(24 * n);
    } else if (unit == "w") {
      total += hours(24 * 7 * n);
    } else {
      return std::nullopt;
    }
    any = true;
  }
  return total;
}

}  // namespace culvert
