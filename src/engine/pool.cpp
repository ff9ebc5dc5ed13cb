#include "engine/pool.hpp"

namespace culvert::detail {

namespace {
// The pool and worker index of the calling thread (null outside any pool).
thread_local const Pool* tls_pool = nullptr;
thread_local int tls_index = -1;
}  // namespace

Pool::Pool(int workers) {
  if (workers < 1) workers = 1;
  for (int i = 0; i < workers; ++i) queues_.push_back(std::make_unique<Queue>());
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { worker_loop(i); });
}

Pool::~Pool() {
  {
    std::lock_guard lk(sleep_mu_);
    stop_ = true;
  }
  sleep_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Pool::push(void* item) {
  int q = (tls_pool == this) ? tls_index
                             : static_cast<int>(next_.fetch_add(1, std::memory_order_relaxed) % queues_.size());
  {
    std::lock_guard lk(queues_[q]->mu);
    queues_[q]->items.push_back(item);
  }
  queued_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard lk(sleep_mu_);
    sleep_cv_.notify_one();
  }
}

void* Pool::pop_local(int index) {
  Queue& q = *queues_[index];
  std::lock_guard lk(q.mu);
  if (q.items.empty()) return nullptr;
  void* item = q.items.back();
  q.items.pop_back();
  return item;
}

void* Pool::steal(int index) {
  const int n = static_cast<int>(queues_.size());
  for (int k = 1; k < n; ++k) {
    Queue& q = *queues_[(index + k) % n];
    std::lock_guard lk(q.mu);
    if (q.items.empty()) continue;
    void* item = q.items.front();
    q.items.pop_front();
    return item;
  }
  return nullptr;
}

void Pool::worker_loop(int index) {
  tls_pool = this;
  tls_index = index;
  for (;;) {
    void* item = pop_local(index);
    if (item == nullptr) item = steal(index);
    if (item != nullptr) {
      queued_.fetch_sub(1, std::memory_order_relaxed);
      handler_.load(std::memory_order_acquire)->run_item(item);
      continue;
    }
    std::unique_lock lk(sleep_mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    sleep_cv_.wait(lk, [&] { return stop_ || queued_.load(std::memory_order_seq_cst) > 0; });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    if (stop_) return;
  }
}

}  // namespace culvert::detail
