// libFuzzer entry point for the cron parser and the fire-time search.
//   clang++ build: the `cron_fuzz` target (-fsanitize=fuzzer,address,undefined);
//   run: build/src/core/cron_fuzz src/core/testdata/cron_fuzz_corpus
// Any build: cron_fuzz_corpus_test replays the seed corpus through this function.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/cron.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace culvert;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto expr = CronExpr::parse(text);
  if (!expr) {
    if (expr.status().message().empty()) std::abort();  // every error explains itself
    return 0;
  }
  // The normalised text parses again to the same schedule.
  auto again = CronExpr::parse(expr->text());
  if (!again || again->text() != expr->text()) std::abort();
  static const TimeZone zones[] = {TimeZone::utc(), *TimeZone::find("Europe/Berlin"),
                                   *TimeZone::find("America/New_York")};
  const SysTime start(std::chrono::seconds(1774740000));  // 2026-03-28T23:20:00Z
  const TimeZone& zone = zones[size % 3];
  SysTime t = start;
  for (int i = 0; i < 4; ++i) {
    auto next = expr->next_after(t, zone);
    if (!next) break;
    if (*next <= t) std::abort();  // strictly increasing
    if (again->next_after(t, zone) != next) std::abort();
    t = *next;
  }
  return 0;
}
