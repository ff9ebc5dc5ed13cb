// RFC 3339 timestamps in UTC ("2026-11-28T05:41:33.123Z") and duration strings
// ("30d", "10s", "5m", "1h30m"). Thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <culvert/clock.hpp>

namespace culvert {

// Millisecond precision, always UTC with a trailing 'Z'.
std::string format_rfc3339(SysTime t);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fff...](Z|±HH:MM)" and a space instead of 'T', for years
// 1900..2200 (SysTime counts nanoseconds); anything else is nullopt.
std::optional<SysTime> parse_rfc3339(std::string_view s);
// Milliseconds since the Unix epoch.
int64_t to_unix_ms(SysTime t);
SysTime from_unix_ms(int64_t ms);
// "500ms", "10s", "5m", "2h", "30d", "1h30m"; a bare number is seconds. At most 100 years.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view s);

}  // namespace culvert
