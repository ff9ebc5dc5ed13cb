// next_after() walks the calendar by field (month, day, hour, minute). The alternative it
// is measured against is the obvious one: test every minute until one matches.
//   build/bench/schedule/schedule_bench
#include <benchmark/benchmark.h>

#include <date/tz.h>

#include "core/cron.hpp"
#include "core/schedule.hpp"
#include "core/timefmt.hpp"

namespace {

using namespace culvert;

const char* kExprs[] = {"*/15 * * * *", "0 6 * * MON-FRI", "0 0 1 * *", "0 0 29 2 *"};

SysTime start() { return *parse_rfc3339("2026-03-01T00:00:00Z"); }

void BM_NextAfter(benchmark::State& state) {
  auto e = CronExpr::parse(kExprs[state.range(0)]);
  auto z = TimeZone::find("Europe/Berlin");
  SysTime t = start();
  for (auto _ : state) {
    auto n = e->next_after(t, *z);
    benchmark::DoNotOptimize(n);
    t = n ? *n : start();
    if (t > *parse_rfc3339("2100-01-01T00:00:00Z")) t = start();
  }
  state.SetLabel(kExprs[state.range(0)]);
}
BENCHMARK(BM_NextAfter)->DenseRange(0, 3);

// Minute-by-minute scan with the same matching rules and the same tz conversions.
void BM_MinuteScan(benchmark::State& state) {
  auto e = CronExpr::parse(kExprs[state.range(0)]);
  auto z = TimeZone::find("Europe/Berlin");
  SysTime t = start();
  for (auto _ : state) {
    SysTime c = std::chrono::floor<std::chrono::minutes>(t) + std::chrono::minutes(1);
    while (true) {
      auto local = z->zone()->to_local(std::chrono::floor<std::chrono::seconds>(c));
      auto day = std::chrono::floor<date::days>(local);
      date::year_month_day ymd{day};
      date::hh_mm_ss hms{local - day};
      int wd = static_cast<int>(date::weekday{day}.c_encoding());
      if (e->matches_day(static_cast<int>(static_cast<unsigned>(ymd.day())),
                         static_cast<int>(static_cast<unsigned>(ymd.month())), wd) &&
          e->matches_time(static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count())))
        break;
      c += std::chrono::minutes(1);
    }
    benchmark::DoNotOptimize(c);
    t = c;
    if (t > *parse_rfc3339("2040-01-01T00:00:00Z")) t = start();
  }
  state.SetLabel(kExprs[state.range(0)]);
}
BENCHMARK(BM_MinuteScan)->DenseRange(0, 3);

// One scheduler pass for one flow in steady state (an hourly schedule, 1 h horizon).
void BM_PlanRuns(benchmark::State& state) {
  auto s = Schedule::cron("0 * * * *", "Europe/Berlin");
  SysTime now = start();
  std::optional<SysTime> cursor;
  for (auto _ : state) {
    auto p = plan_runs(*s, cursor, now);
    benchmark::DoNotOptimize(p);
    cursor = p.cursor;
    now += std::chrono::seconds(10);
  }
}
BENCHMARK(BM_PlanRuns);

}  // namespace

BENCHMARK_MAIN();
