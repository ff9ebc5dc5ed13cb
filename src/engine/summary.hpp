// The local run summary, built from run events like any other observer.
//
// Storage is one record per task run, laid out by the run-start and map events, so
// that the events of different task runs (reported concurrently by different workers)
// write different records without locking. Events of one node's expansion happen
// before its children's events (the executor orders them). Read with take() after
// the run has ended.
#pragma once

#include <culvert/executor.hpp>
#include <culvert/observer.hpp>

#include <vector>

#include "engine/flow_impl.hpp"

namespace culvert::detail {

class SummaryObserver final : public RunObserver {
 public:
  void on_run_start(const RunStartEvent& ev) override {
    recs_.assign(ev.task_count, Rec{});
    children_.assign(ev.task_count, {});
    mapped_.assign(ev.task_count, 0);
  }
  void on_task_mapped(const MapEvent& ev) override {
    children_[ev.task_index].assign(static_cast<size_t>(ev.count), Rec{});
    mapped_[ev.task_index] = 1;
  }
  void on_task_run(const TaskRunEvent& ev) override {
    Rec& r = ev.map_index < 0 ? recs_[ev.task_index] : children_[ev.task_index][static_cast<size_t>(ev.map_index)];
    r.state = ev.state;
    r.attempts = ev.attempt;
    if (ev.state == State::kRunning) {
      if (!r.started) {
        r.started = true;
        r.start = ev.timestamp;
      }
    } else if (is_final(ev.state)) {
      r.end = ev.timestamp;
      r.message.assign(ev.message);
    }
  }

  std::vector<TaskRunSummary> take(const FlowImpl& flow) {
    std::vector<TaskRunSummary> out;
    size_t total = 0;
    for (size_t i = 0; i < recs_.size(); ++i) total += mapped_[i] ? children_[i].size() : 1;
    out.reserve(total);
    for (size_t i = 0; i < recs_.size(); ++i) {
      const size_t count = mapped_[i] ? children_[i].size() : 1;
      for (size_t k = 0; k < count; ++k) {
        Rec& r = mapped_[i] ? children_[i][k] : recs_[i];
        TaskRunSummary t;
        t.task = flow.nodes[i].name;
        t.map_index = mapped_[i] ? static_cast<int>(k) : -1;
        t.state = r.state;
        t.attempts = r.attempts;
        t.duration_ms = r.started ? std::chrono::duration_cast<Millis>(r.end - r.start).count() : 0;
        if (t.duration_ms < 0) t.duration_ms = 0;
        t.message = std::move(r.message);
        out.push_back(std::move(t));
      }
    }
    return out;
  }

 private:
  struct Rec {
    State state = State::kPending;
    int attempts = 0;
    bool started = false;
    SysTime start{};
    SysTime end{};
    std::string message;
  };
  std::vector<Rec> recs_;                   // per task: its unmapped (or not expanded) run
  std::vector<std::vector<Rec>> children_;  // per mapped task: one per map_index
  std::vector<uint8_t> mapped_;
};

}  // namespace culvert::detail
