#include "core/cron.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <array>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include <vector>

namespace culvert {

using namespace std::chrono_literals;

// ---- TimeZone ----

Result<TimeZone> TimeZone::find(std::string_view iana_name) {
  if (iana_name.empty()) return invalid_argument("time zone is empty (expected an IANA name such as \"Europe/Berlin\")");
  try {
    const date::time_zone* z = date::locate_zone(iana_name);
    return TimeZone(z, std::string(iana_name));
  } catch (const std::exception&) {
    // "UTC" is in every database: when it is missing too, the database is.
    bool have_database = true;
    try {
      (void)date::locate_zone("UTC");
    } catch (const std::exception&) {
      have_database = false;
    }
    if (!have_database)
      return invalid_argument("cannot look up time zone '" + std::string(iana_name) +
                              "': this machine has no time-zone database (/usr/share/zoneinfo; Debian's "
                              "package tzdata)");
    return invalid_argument("unknown time zone '" + std::string(iana_name) +
                            "' (expected an IANA name such as \"Europe/Berlin\" or \"UTC\")");
  }
}

TimeZone TimeZone::utc() {
  // "UTC" is in every tz database; locate_zone throwing here is a broken installation.
  return TimeZone(date::locate_zone("UTC"), "UTC");
}

// ---- parsing ----

namespace {

struct FieldDef {
  const char* name;
  int min;
  int max;
  const std::array<const char*, 13>* names;  // names[i] is value (i + names_base)
  int names_base;
};

const std::array<const char*, 13> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                                 "AUG", "SEP", "OCT", "NOV", "DEC", nullptr};
const std::array<const char*, 13> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
                                               nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

const FieldDef kFields[5] = {
    {"minute", 0, 59, nullptr, 0},
    {"hour", 0, 23, nullptr, 0},
    {"day-of-month", 1, 31, nullptr, 0},
    {"month", 1, 12, &kMonthNames, 1},
    {"day-of-week", 0, 7, &kDayNames, 0},
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Status field_error(const FieldDef& f, std::string_view field_text, const std::string& why) {
  return invalid_argument("cron " + std::string(f.name) + " field '" + std::string(field_text) +
                          "': " + why);
}

// A number or (for month and day-of-week) a three-letter name.
Result<int> parse_value(const FieldDef& f, std::string_view field_text, std::string_view v) {
  if (v.empty()) return field_error(f, field_text, "empty value");
  if (std::isdigit(static_cast<unsigned char>(v[0]))) {
    int n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size())
      return field_error(f, field_text, "'" + std::string(v) + "' is not a number");
    if (n < f.min || n > f.max)
      return field_error(f, field_text, "value " + std::string(v) + " is out of range " +
                                            std::to_string(f.min) + "-" + std::to_string(f.max));
    return n;
  }
  if (f.names != nullptr) {
    std::string u = upper(v);
    for (size_t i = 0; i < f.names->size() && (*f.names)[i] != nullptr; ++i)
      if (u == (*f.names)[i]) return static_cast<int>(i) + f.names_base;
    return field_error(f, field_text, "unknown name '" + std::string(v) + "'");
  }
  return field_error(f, field_text, "'" + std::string(v) + "' is not a number");
}

// Sets the bits of one field; returns whether the field starts with '*'.
Result<bool> parse_field(const FieldDef& f, std::string_view text, std::vector<bool>& bits) {
  bits.assign(f.max + 1, false);
  if (text.empty()) return field_error(f, text, "empty field");
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    if (item.empty()) return field_error(f, text, "empty list element");
    std::string_view range = item;
    int step = 1;
    bool has_step = false;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      range = item.substr(0, slash);
      std::string_view s = item.substr(slash + 1);
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
      if (s.empty() || ec != std::errc() || p != s.data() + s.size())
        return field_error(f, text, "step '" + std::string(s) + "' is not a number");
      if (step < 1) return field_error(f, text, "step must be at least 1");
      if (step > f.max - f.min + 1)
        return field_error(f, text, "step " + std::to_string(step) + " is larger than the range " +
                                        std::to_string(f.min) + "-" + std::to_string(f.max));
      has_step = true;
    }
    int lo = 0, hi = 0;
    if (range == "*") {
      lo = f.min;
      hi = f.max;
      if (f.max == 7) hi = 6;  // day-of-week: '*' is 0-6 (7 is Sunday again)
    } else if (size_t dash = range.find('-'); dash != std::string_view::npos && dash > 0) {
      auto a = parse_value(f, text, range.substr(0, dash));
      if (!a) return a.status();
      auto b = parse_value(f, text, range.substr(dash + 1));
      if (!b) return b.status();
      lo = *a;
      hi = *b;
      if (lo > hi)
        return field_error(f, text, "range " + std::string(range) + " runs backwards (" +
                                        std::to_string(lo) + " > " + std::to_string(hi) + ")");
    } else {
      auto a = parse_value(f, text, range);
      if (!a) return a.status();
      lo = *a;
      hi = has_step ? f.max : *a;  // "5/15" means 5-max/15
    }
    for (int v = lo; v <= hi; v += step) bits[v] = true;
    pos = comma + 1;
    if (comma == text.size()) break;
  }
  return text[0] == '*';
}

std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

class CronParser {
 public:
  static Result<CronExpr> parse(std::string_view text);
};

Result<CronExpr> CronParser::parse(std::string_view raw) {
  auto fields = split_ws(raw);
  if (fields.empty()) return invalid_argument("cron expression is empty");
  std::string trimmed;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) trimmed += ' ';
    trimmed += fields[i];
  }
  std::string expanded;
  if (fields.size() == 1 && fields[0][0] == '@') {
    std::string a = upper(fields[0]);
    if (a == "@YEARLY" || a == "@ANNUALLY") expanded = "0 0 1 1 *";
    else if (a == "@MONTHLY") expanded = "0 0 1 * *";
    else if (a == "@WEEKLY") expanded = "0 0 * * 0";
    else if (a == "@DAILY" || a == "@MIDNIGHT") expanded = "0 0 * * *";
    else if (a == "@HOURLY") expanded = "0 * * * *";
    else
      return invalid_argument("unknown cron alias '" + std::string(fields[0]) +
                              "' (known: @yearly @annually @monthly @weekly @daily @midnight @hourly)");
    fields = split_ws(expanded);
  }
  if (fields.size() != 5)
    return invalid_argument("cron expression '" + trimmed +
                            "' must have 5 fields (minute hour day-of-month month day-of-week), got " +
                            std::to_string(fields.size()));
  CronExpr e;
  e.text_ = trimmed;
  std::vector<bool> bits;
  for (int i = 0; i < 5; ++i) {
    auto star = parse_field(kFields[i], fields[i], bits);
    if (!star) return star.status();
    for (size_t v = 0; v < bits.size(); ++v) {
      if (!bits[v]) continue;
      switch (i) {
        case 0: e.minutes_.set(v); break;
        case 1: e.hours_.set(v); break;
        case 2: e.days_.set(v); break;
        case 3: e.months_.set(v); break;
        case 4: e.weekdays_.set(v % 7); break;
      }
    }
    if (i == 2) e.days_star_ = *star;
    if (i == 4) e.weekdays_star_ = *star;
  }
  // With day-of-week unrestricted, the day-of-month must exist in some selected month.
  if (e.weekdays_star_) {
    static constexpr int kMaxDays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!e.months_[m]) continue;
      for (int d = 1; d <= kMaxDays[m]; ++d)
        if (e.days_[d] && e.weekdays_.any()) possible = true;
    }
    if (!possible)
      return invalid_argument("cron expression '" + trimmed +
                              "' never fires: day-of-month field '" + std::string(fields[2]) +
                              "' names no day that exists in month field '" +
                              std::string(fields[3]) + "'");
  }
  return e;
}

Result<CronExpr> CronExpr::parse(std::string_view text) { return CronParser::parse(text); }

bool CronExpr::matches_day(int day_of_month, int month, int weekday) const {
  if (!months_[month]) return false;
  if (days_star_ || weekdays_star_) return days_[day_of_month] && weekdays_[weekday];
  return days_[day_of_month] || weekdays_[weekday];  // both restricted: either matches
}

// ---- fire times ----

namespace {

template <size_t N>
int next_bit(const std::bitset<N>& b, int from) {
  for (int i = from; i < static_cast<int>(N); ++i)
    if (b[i]) return i;
  return -1;
}

}  // namespace

std::optional<SysTime> CronExpr::next_after(SysTime after, const TimeZone& zone) const {
  const date::time_zone* tz = zone.zone();
  auto after_s = std::chrono::floor<std::chrono::seconds>(after);
  date::local_seconds start = std::chrono::floor<std::chrono::minutes>(tz->to_local(after_s)) + 1min;
  date::local_days day = std::chrono::floor<date::days>(start);
  auto tod = date::make_time(start - day);
  int h = static_cast<int>(tod.hours().count());
  int m = static_cast<int>(tod.minutes().count());
  date::year_month_day ymd{day};
  const int limit_year = static_cast<int>(ymd.year()) + 30;

  auto next_day = [&] {
    ymd = date::year_month_day{date::sys_days(ymd) + date::days(1)};
    h = 0;
    m = 0;
  };
  while (static_cast<int>(ymd.year()) <= limit_year) {
    unsigned month = static_cast<unsigned>(ymd.month());
    if (!months_[month]) {
      auto first = ymd.year() / ymd.month() / 1;
      ymd = date::year_month_day{date::sys_days(first + date::months(1))};
      h = 0;
      m = 0;
      continue;
    }
    int wd = static_cast<int>(date::weekday{date::sys_days(ymd)}.c_encoding());
    if (!matches_day(static_cast<int>(static_cast<unsigned>(ymd.day())), static_cast<int>(month), wd)) {
      next_day();
      continue;
    }
    int nh = next_bit(hours_, h);
    if (nh < 0) {
      next_day();
      continue;
    }
    if (nh != h) {
      h = nh;
      m = 0;
    }
    int nm = next_bit(minutes_, m);
    if (nm < 0) {
      m = 0;
      if (++h == 24) next_day();
      continue;
    }
    m = nm;
    date::local_seconds local = date::local_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(m);
    auto info = tz->get_info(local);
    if (info.result != date::local_info::nonexistent) {
      // unique, or ambiguous: `first` is the earlier occurrence.
      SysTime t{std::chrono::duration_cast<SysTime::duration>(
          (local - info.first.offset).time_since_epoch())};
      if (t > after) return t;
    }
    if (++m == 60) {
      m = 0;
      if (++h == 24) next_day();
    }
  }
  return std::nullopt;
}

std::optional<SysTime> CronExpr::prev_before(SysTime before, SysTime not_before,
                                             const TimeZone& zone) const {
  using std::chrono::hours;
  static constexpr std::chrono::hours kWindows[] = {hours(1), hours(24), hours(24 * 32),
                                                    hours(24 * 366), hours(24 * 366 * 8),
                                                    hours(24 * 366 * 31)};
  for (auto w : kWindows) {
    SysTime lo = before - w;
    bool last_window = lo <= not_before;
    if (last_window) lo = not_before;
    auto t = next_after(lo, zone);
    if (t && *t < before) {
      SysTime last = *t;
      while ((t = next_after(last, zone)) && *t < before) last = *t;
      return last;
    }
    if (last_window) break;
  }
  return std::nullopt;
}

}  // namespace culvert
