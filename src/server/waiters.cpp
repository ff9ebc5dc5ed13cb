#include "server/waiters.hpp"

#include "core/labels.hpp"

namespace culvert::server {

Waiters::Waiters(Clock& clock, Millis recheck_interval)
    : clock_(clock), recheck_interval_(recheck_interval) {}

uint64_t Waiters::claim_generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return claim_gen_;
}

uint64_t Waiters::log_generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_gen_;
}

uint64_t Waiters::children_generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return children_gen_;
}

void Waiters::park(Waiter w, uint64_t seen) {
  Fire now;
  bool timed_out = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t gen = w.kind == Kind::kClaim ? claim_gen_ : w.kind == Kind::kLogs ? log_gen_ : children_gen_;
    if (closed_) {
      now = std::move(w.fire);
      timed_out = true;
    } else if (gen != seen) {
      now = std::move(w.fire);
    } else {
      w.recheck = clock_.steady_now() + recheck_interval_;
      waiters_.emplace(next_id_++, std::move(w));
    }
  }
  if (now) now(timed_out);
}

void Waiters::park_claim(std::vector<std::string> labels, SteadyTime deadline, uint64_t seen, Fire fire) {
  park(Waiter{Kind::kClaim, std::move(labels), {}, deadline, {}, std::move(fire)}, seen);
}

void Waiters::park_logs(std::string run_id, SteadyTime deadline, uint64_t seen, Fire fire) {
  park(Waiter{Kind::kLogs, {}, std::move(run_id), deadline, {}, std::move(fire)}, seen);
}

void Waiters::park_children(std::string run_id, SteadyTime deadline, uint64_t seen, Fire fire) {
  park(Waiter{Kind::kChildren, {}, std::move(run_id), deadline, {}, std::move(fire)}, seen);
}

void Waiters::notify_runs(const std::vector<std::string>& run_labels) {
  std::vector<Fire> fires;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++claim_gen_;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.kind == Kind::kClaim && labels_cover(it->second.labels, run_labels)) {
        fires.push_back(std::move(it->second.fire));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : fires) f(false);
}

void Waiters::notify_due_at(SysTime t) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!next_due_ || t < *next_due_) next_due_ = t;
}

void Waiters::notify_logs(const std::string& run_id) {
  std::vector<Fire> fires;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++log_gen_;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.kind == Kind::kLogs && it->second.run_id == run_id) {
        fires.push_back(std::move(it->second.fire));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : fires) f(false);
}

void Waiters::notify_children(const std::string& run_id) {
  std::vector<Fire> fires;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++children_gen_;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.kind == Kind::kChildren && it->second.run_id == run_id) {
        fires.push_back(std::move(it->second.fire));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : fires) f(false);
}

void Waiters::tick() {
  std::vector<std::pair<Fire, bool>> fires;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto steady = clock_.steady_now();
    bool due_passed = false;
    if (next_due_ && *next_due_ <= clock_.now()) {
      due_passed = true;
      next_due_.reset();
      ++claim_gen_;
    }
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      auto& w = it->second;
      bool timed_out = w.deadline <= steady;
      if (timed_out || w.recheck <= steady || (due_passed && w.kind == Kind::kClaim)) {
        fires.emplace_back(std::move(w.fire), timed_out);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [f, t] : fires) f(t);
}

void Waiters::fire_all() {
  std::vector<Fire> fires;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (auto& [id, w] : waiters_) fires.push_back(std::move(w.fire));
    waiters_.clear();
  }
  for (auto& f : fires) f(true);
}

size_t Waiters::parked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

}  // namespace culvert::server
