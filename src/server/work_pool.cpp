#include "server/work_pool.hpp"

#include <spdlog/spdlog.h>

#include <exception>

namespace culvert::server {

WorkPool::WorkPool(int threads) {
  if (threads < 1) threads = 1;
  size_ = threads;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { loop(i); });
}

WorkPool::~WorkPool() { stop(); }

bool WorkPool::post(std::function<void(int)> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

size_t WorkPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

void WorkPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkPool::loop(int worker) {
  for (;;) {
    std::function<void(int)> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job(worker);
    } catch (const std::exception& e) {
      spdlog::error("work pool: job threw: {}", e.what());
    }
  }
}

}  // namespace culvert::server
