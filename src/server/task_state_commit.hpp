// Group commit of task-run state batches (POST /api/v1/task-runs/states).
//
// A request parks its batch, and whichever caller finds no write in progress becomes
// the writer. It writes everything parked so far with one call of `write` (one
// transaction), answers each request with its own slice of the ids, and repeats while
// more arrived meanwhile. Each commit then carries the changes of every request that
// came during the previous one, so many clients sending one change each cost one flush
// (one fsync on PostgreSQL) per round instead of one per request.
//
// When a group's write fails (one request's batch spoiled it, e.g. an unknown flow
// run), each request of the group is written on its own, so that every request gets
// the answer it would have had alone.
//
// Thread-safe. submit() runs the writer on the calling thread when no write is in
// progress and returns once nothing is parked; otherwise it returns at once (the
// writer in progress takes the batch in its next round). It never waits for another
// writer.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <culvert/status.hpp>

#include "store/store.hpp"

namespace culvert::server {

class TaskStateCommit {
 public:
  using Ids = Result<std::vector<std::string>>;
  // Writes a batch in one transaction: one task-run id per update, in batch order.
  using Write = std::function<Ids(const std::vector<store::TaskRunUpdate>&)>;
  // Receives the answer of one request: the ids of its own updates, or the error its
  // write failed with.
  using Answer = std::function<void(const Ids&)>;

  // A group takes parked batches in arrival order while their total number of updates
  // stays at most `max_group_items` (the first batch always).
  explicit TaskStateCommit(size_t max_group_items) : max_group_items_(max_group_items) {}

  // Parks `batch` (not empty) to be answered through `answer`. `write` is used only if
  // this call becomes the writer (so each writer writes through its own connection).
  void submit(std::vector<store::TaskRunUpdate> batch, Answer answer, const Write& write);

 private:
  struct Parked {
    std::vector<store::TaskRunUpdate> batch;
    Answer answer;
  };
  void write_group(std::vector<Parked>& group, const Write& write);

  const size_t max_group_items_;
  std::mutex mu_;
  std::vector<Parked> parked_;
  bool writing_ = false;
};

}  // namespace culvert::server
