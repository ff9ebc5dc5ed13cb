// Internal to the store: task runs are stored as ranges.
//
// One task_runs row holds the consecutive task runs [map_index, map_index + map_count)
// of one task of one flow run that are alike in every stored field (state, message,
// attempts, the millisecond timestamps, a Retrying run's next start time and the run
// attempt). An unmapped task run (map_index -1) is a
// range of one. A mapped task whose children ended alike (the common case: 10,000
// children that succeeded within a few milliseconds) is stored in a few rows instead
// of one per child, and reads expand the rows back into one TaskRun per child, so the
// API and the CLI see every task run with its own id.
//
// Ids are derived, not stored: SHA-256 of (flow run, task) gives 12 bytes and the map
// index the last 4, formatted as a version-8 UUID. Splitting or merging ranges never
// changes an id. Rows written before ranges existed keep the random id they were given
// (the `id` column); such a row is never merged into its neighbour.
//
// merge_task_run_ranges() is the pure part of an upsert: given the stored rows that
// overlap a batch's updates of one (flow run, task) and those updates in batch order,
// it computes the rows to write and to delete. Every task run ends up exactly as if the
// updates had been applied to it one by one (an update of an earlier run attempt, or
// older than the task run's latest one within its attempt, is ignored).
#pragma once

#include <culvert/state.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace culvert::store::detail {

// Every stored field but the range itself.
struct RangeFields {
  State state = State::kPending;
  std::string message;
  int64_t attempts = -1;  // -1: never reported (read as 0)
  int64_t created = 0;    // Unix ms
  int64_t updated = 0;    // Unix ms of the latest applied update
  std::optional<int64_t> start, end;
  std::optional<int64_t> next_start;  // Retrying: when the next attempt starts (Unix ms)
  int64_t run_attempt = 1;            // the flow run's attempt that wrote them
  bool operator==(const RangeFields&) const = default;
};

struct StoredRange {
  int64_t lo = -1;    // map_index of the first task run
  int64_t count = 1;  // map_count
  std::optional<std::string> id;  // a stored id of the first task run (older rows); nullopt: derived
  RangeFields f;
  int64_t hi() const { return lo + count - 1; }
};

// One update of the task runs [lo, hi] (an unmapped task run: lo = hi = -1).
struct RangeUpdate {
  int64_t lo = -1, hi = -1;
  State state = State::kPending;
  std::string_view message;
  std::optional<int> attempts;     // nullopt: keep
  int64_t ts = 0;                  // Unix ms
  std::optional<int64_t> start;    // when they first ran, if the update says so
  std::optional<int64_t> next_start;  // Retrying: when the next attempt starts
  // The flow run's attempt the update belongs to. A later attempt's update replaces the
  // task runs whatever their times (a retried run starts them afresh); an earlier
  // attempt's update is ignored.
  int64_t run_attempt = 1;
};

// The ids of one (flow run, task)'s task runs.
class TaskRunIds {
 public:
  TaskRunIds(std::string_view flow_run_id, std::string_view task);
  std::string id(int64_t map_index) const;
  // The id of task run `map_index` of stored row `row`.
  std::string id(const StoredRange& row, int64_t map_index) const;

 private:
  unsigned char prefix_[12];
};

struct RangeMerge {
  std::vector<StoredRange> write;  // rows to insert, or to overwrite (same first map_index)
  std::vector<int64_t> remove;     // first map_index of stored rows to delete
  std::vector<std::string> ids;    // per update: the id of its first task run
};

// `stored`: the rows of this (flow run, task) that overlap any update, sorted by lo and
// disjoint. `updates` in batch order.
RangeMerge merge_task_run_ranges(const TaskRunIds& ids, const std::vector<StoredRange>& stored,
                                 const std::vector<RangeUpdate>& updates);

}  // namespace culvert::store::detail
