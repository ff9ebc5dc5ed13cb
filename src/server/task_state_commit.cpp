#include "server/task_state_commit.hpp"

#include <exception>
#include <iterator>

namespace culvert::server {
namespace {

// A write that throws answers as an internal error instead of leaving the writer
// marked busy forever.
TaskStateCommit::Ids guarded(const TaskStateCommit::Write& write, const std::vector<store::TaskRunUpdate>& batch) {
  try {
    return write(batch);
  } catch (const std::exception& e) {
    return internal_error(std::string("writing task-run states failed: ") + e.what());
  }
}

}  // namespace

void TaskStateCommit::submit(std::vector<store::TaskRunUpdate> batch, Answer answer, const Write& write) {
  {
    std::lock_guard lock(mu_);
    parked_.push_back({std::move(batch), std::move(answer)});
    if (writing_) return;  // the writer in progress takes it in its next round
    writing_ = true;
  }
  while (true) {
    std::vector<Parked> group;
    {
      std::lock_guard lock(mu_);
      if (parked_.empty()) {
        writing_ = false;
        return;
      }
      size_t items = 0, n = 0;
      while (n < parked_.size() && (n == 0 || items + parked_[n].batch.size() <= max_group_items_))
        items += parked_[n++].batch.size();
      group.assign(std::make_move_iterator(parked_.begin()), std::make_move_iterator(parked_.begin() + n));
      parked_.erase(parked_.begin(), parked_.begin() + n);
    }
    write_group(group, write);
  }
}

void TaskStateCommit::write_group(std::vector<Parked>& group, const Write& write) {
  auto answer = [](Parked& p, const Ids& r, size_t from) {
    if (!r) return p.answer(r);
    if (r->size() < from + p.batch.size())
      return p.answer(internal_error("the store answered " + std::to_string(r->size()) + " task-run ids for " +
                                     std::to_string(from + p.batch.size()) + " updates"));
    p.answer(std::vector<std::string>(r->begin() + from, r->begin() + from + p.batch.size()));
  };
  if (group.size() == 1) return answer(group[0], guarded(write, group[0].batch), 0);
  std::vector<store::TaskRunUpdate> all;
  for (const auto& p : group) all.insert(all.end(), p.batch.begin(), p.batch.end());
  auto r = guarded(write, all);
  if (r) {
    size_t from = 0;
    for (auto& p : group) {
      answer(p, r, from);
      from += p.batch.size();
    }
    return;
  }
  for (auto& p : group) answer(p, guarded(write, p.batch), 0);
}

}  // namespace culvert::server
