// A fixed pool of threads for blocking work (database calls), so that the HTTP I/O
// threads never block. Jobs run in FIFO order on whichever thread is free.
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
  bool post(std::function<void()> job);
  // Jobs queued and not yet started.
  size_t queued() const;
  void stop();

 private:
  void loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace culvert::server
