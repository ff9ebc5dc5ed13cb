// Cooperative cancellation.
//
// A CancellationSource is owned by whoever may cancel a run (culvert::main on SIGINT,
// the runtime when the server says the run was cancelled, a test). The engine hands
// each task attempt a CancellationToken that reports true once the source is cancelled
// or once the attempt's deadline (its timeout) has passed on the run's Clock.
// Both are thread-safe. A token must not outlive its source (the engine gives the
// attempts it may abandon tokens over flags it keeps alive itself).
#pragma once

#include <atomic>
#include <chrono>

#include <culvert/clock.hpp>

namespace culvert {

class CancellationSource {
 public:
  CancellationSource() = default;
  CancellationSource(const CancellationSource&) = delete;
  CancellationSource& operator=(const CancellationSource&) = delete;

  // Requests cancellation; idempotent. Safe to call from any thread (not from a signal
  // handler: culvert::main forwards signals through a pipe).
  void cancel() { flag_.store(true, std::memory_order_release); }
  bool cancelled() const { return flag_.load(std::memory_order_acquire); }
  const std::atomic<bool>* flag() const { return &flag_; }

 private:
  std::atomic<bool> flag_{false};
};

class CancellationToken {
 public:
  // A token that never fires.
  CancellationToken() = default;
  // `expired`, when given, is set by the engine once the attempt is given up (its
  // deadline and grace have passed); from then on the token reports a timeout without
  // reading the clock.
  CancellationToken(const std::atomic<bool>* flag, const Clock* clock, SteadyTime deadline,
                    const std::atomic<bool>* expired = nullptr)
      : flag_(flag), expired_(expired), clock_(clock), deadline_(deadline) {}

  // True once the run was cancelled or the deadline has passed.
  bool cancelled() const { return run_cancelled() || timed_out(); }
  // True when the run itself was cancelled (not merely timed out).
  bool run_cancelled() const { return flag_ != nullptr && flag_->load(std::memory_order_relaxed); }
  // True when the deadline has passed.
  bool timed_out() const {
    if (expired_ != nullptr && expired_->load(std::memory_order_acquire)) return true;
    return clock_ != nullptr && deadline_ != SteadyTime::max() && clock_->steady_now() >= deadline_;
  }
  SteadyTime deadline() const { return deadline_; }

 private:
  const std::atomic<bool>* flag_ = nullptr;
  const std::atomic<bool>* expired_ = nullptr;
  const Clock* clock_ = nullptr;
  SteadyTime deadline_ = SteadyTime::max();
};

}  // namespace culvert
