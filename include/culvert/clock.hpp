// Time behind an interface, so that retries, timeouts, heartbeats and schedules are
// tested with simulated time (STYLE: no wall clock in core logic).
//
// SystemClock reads the real clocks. ManualClock is a simulated clock: time moves only
// when a test calls advance() or when someone sleeps on it (sleep_for advances the
// clock instantly, so code that waits out a retry delay runs in no real time).
// Both are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace culvert {

using SysTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time: timestamps, schedules, heartbeat deadlines stored in a database.
  virtual SysTime now() const = 0;
  // Monotonic time: durations and timeouts inside one process.
  virtual SteadyTime steady_now() const = 0;
  // Blocks the caller for `d` of this clock's time.
  virtual void sleep_for(std::chrono::nanoseconds d) = 0;
};

class SystemClock final : public Clock {
 public:
  SysTime now() const override { return std::chrono::system_clock::now(); }
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
  void sleep_for(std::chrono::nanoseconds d) override;
};

// The process-wide real clock (stateless, never destroyed).
Clock& system_clock();

class ManualClock final : public Clock {
 public:
  // Starts at `start` (default: 2026-01-01T00:00:00Z) for wall time and at an
  // arbitrary epoch for steady time.
  explicit ManualClock(SysTime start = SysTime(std::chrono::seconds(1767225600)));
  SysTime now() const override;
  SteadyTime steady_now() const override;
  // Advances the clock by `d` and returns at once.
  void sleep_for(std::chrono::nanoseconds d) override;
  void advance(std::chrono::nanoseconds d);
  void set(SysTime t);

 private:
  mutable std::mutex mu_;
  std::chrono::nanoseconds offset_{0};
  SysTime start_;
};

}  // namespace culvert
