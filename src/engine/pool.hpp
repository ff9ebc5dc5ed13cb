// A work-stealing thread pool for task runs.
//
// Each worker owns a deque: it pushes and pops its own work at the back (LIFO, warm
// caches) and steals from the front of the others' when it runs dry. Work pushed from
// outside the pool is spread round-robin. Idle workers sleep on a condition variable
// and are woken only when someone is asleep. The pool owns its threads; items are
// non-owning pointers handed to the current Handler. Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace culvert::detail {

class Pool {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void run_item(void* item) = 0;
  };

  explicit Pool(int workers);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int size() const { return static_cast<int>(queues_.size()); }
  // Sets who runs items. REQUIRES: the pool has no queued or running items.
  void set_handler(Handler* h) { handler_.store(h, std::memory_order_release); }
  // Queues an item: on the calling worker's own deque, else round-robin.
  void push(void* item);

 private:
  struct alignas(64) Queue {
    std::mutex mu;
    std::deque<void*> items;
  };
  void worker_loop(int index);
  void* pop_local(int index);
  void* steal(int index);

  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<std::thread> threads_;
  std::atomic<Handler*> handler_{nullptr};
  std::atomic<int64_t> queued_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<unsigned> next_{0};
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;
  bool stop_ = false;  // guarded by sleep_mu_
};

}  // namespace culvert::detail
