#include <culvert/clock.hpp>

#include <thread>

namespace culvert {

void SystemClock::sleep_for(std::chrono::nanoseconds d) {
  if (d.count() > 0) std::this_thread::sleep_for(d);
}

Clock& system_clock() {
  static SystemClock* clock = new SystemClock();  // intentionally leaked: usable during exit
  return *clock;
}

ManualClock::ManualClock(SysTime start) : start_(start) {}

SysTime ManualClock::now() const {
  std::lock_guard lock(mu_);
  return start_ + std::chrono::duration_cast<SysTime::duration>(offset_);
}

SteadyTime ManualClock::steady_now() const {
  std::lock_guard lock(mu_);
  return SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(offset_)) + std::chrono::hours(1);
}

void ManualClock::sleep_for(std::chrono::nanoseconds d) { advance(d); }

void ManualClock::advance(std::chrono::nanoseconds d) {
  if (d.count() <= 0) return;
  std::lock_guard lock(mu_);
  offset_ += d;
}

void ManualClock::set(SysTime t) {
  std::lock_guard lock(mu_);
  offset_ = std::chrono::duration_cast<std::chrono::nanoseconds>(t - start_);
}

}  // namespace culvert
