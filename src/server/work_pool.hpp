// A fixed pool of threads for blocking work (database calls), so that the HTTP I/O
// threads never block. Jobs run in FIFO order on whichever thread is free and receive
// that thread's index (0..threads-1), e.g. to use a per-thread database connection.
//
// Owns its threads. post() is thread-safe; stop() drains the queue (every job already
// posted runs) and joins the threads. Destruction calls stop().
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace culvert::server {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `job`. Returns false (and drops the job) once stop() has begun.
  bool post(std::function<void(int worker)> job);
  int size() const { return size_; }
  // Jobs queued and not yet started.
  size_t queued() const;
  void stop();

 private:
  void loop(int worker);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(int)>> jobs_;
  int size_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace culvert::server
