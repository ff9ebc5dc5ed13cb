// The range merge of task-run upserts, against a model that keeps one record per task
// run and applies every update to it in order.
#include "store/task_run_ranges.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace culvert::store::detail {
namespace {

// What the store keeps, as a map from the first map index to the row.
using Table = std::map<int64_t, StoredRange>;

std::vector<StoredRange> overlapping(const Table& t, int64_t lo, int64_t hi) {
  std::vector<StoredRange> out;
  for (const auto& [first, r] : t)
    if (r.hi() >= lo && r.lo <= hi) out.push_back(r);
  return out;
}

RangeMerge apply_batch(Table& t, const TaskRunIds& ids, const std::vector<RangeUpdate>& batch) {
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (const auto& u : batch) {
    lo = std::min(lo, u.lo);
    hi = std::max(hi, u.hi);
  }
  RangeMerge m = merge_task_run_ranges(ids, overlapping(t, lo, hi), batch);
  for (int64_t first : m.remove) EXPECT_EQ(t.erase(first), 1u) << "removes a row that is not stored: " << first;
  for (const auto& w : m.write) t[w.lo] = w;
  return m;
}

// The model: one record per task run.
struct Model {
  std::map<int64_t, RangeFields> runs;
  void apply(const RangeUpdate& u) {
    for (int64_t i = u.lo; i <= u.hi; ++i) {
      auto it = runs.find(i);
      std::optional<int64_t> start = u.start ? u.start : (u.state == State::kRunning ? std::optional(u.ts) : std::nullopt);
      std::optional<int64_t> end = is_final(u.state) ? std::optional(u.ts) : std::nullopt;
      std::optional<int64_t> next = u.state == State::kRetrying ? u.next_start : std::nullopt;
      if (it != runs.end() && u.run_attempt < it->second.run_attempt) continue;
      if (it == runs.end() || u.run_attempt > it->second.run_attempt) {
        runs[i] = RangeFields{u.state, std::string(u.message), u.attempts ? *u.attempts : -1, u.ts, u.ts, start, end,
                              next,    u.run_attempt};
        continue;
      }
      RangeFields& f = it->second;
      if (u.ts < f.updated) continue;
      f.state = u.state;
      f.message = std::string(u.message);
      if (u.attempts) f.attempts = *u.attempts;
      f.updated = u.ts;
      if (!f.start) f.start = start;
      f.end = end;
      f.next_start = next;
    }
  }
};

void expect_table_matches(const Table& t, const Model& model) {
  std::map<int64_t, RangeFields> expanded;
  int64_t prev_hi = INT64_MIN;
  for (const auto& [first, r] : t) {
    ASSERT_EQ(first, r.lo);
    ASSERT_GE(r.count, 1);
    ASSERT_GT(r.lo, prev_hi) << "rows overlap at " << r.lo;
    prev_hi = r.hi();
    for (int64_t i = r.lo; i <= r.hi(); ++i) expanded[i] = r.f;
  }
  ASSERT_EQ(expanded.size(), model.runs.size());
  for (const auto& [i, f] : model.runs) {
    ASSERT_TRUE(expanded.count(i)) << "task run " << i << " is missing";
    EXPECT_EQ(expanded[i], f) << "task run " << i;
  }
}

RangeUpdate upd(int64_t lo, int64_t hi, State s, int64_t ts, std::optional<int> attempts = std::nullopt,
                std::optional<int64_t> start = std::nullopt) {
  return RangeUpdate{lo, hi, s, "", attempts, ts, start};
}

TEST(TaskRunIds, AreVersion8UuidsThatEndInTheMapIndex) {
  TaskRunIds ids("0190-run", "extract");
  std::string a = ids.id(-1), b = ids.id(0), c = ids.id(41);
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[8], '-');
  EXPECT_EQ(a[13], '-');
  EXPECT_EQ(a[14], '8');  // version
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');  // variant
  EXPECT_EQ(a.substr(28), "00000000");
  EXPECT_EQ(b.substr(28), "00000001");
  EXPECT_EQ(c.substr(28), "0000002a");
  EXPECT_EQ(a.substr(0, 28), c.substr(0, 28));
  EXPECT_EQ(TaskRunIds("0190-run", "extract").id(41), c);  // derived, not random
  EXPECT_NE(TaskRunIds("0190-run", "load").id(41), c);
  EXPECT_NE(TaskRunIds("0191-run", "extract").id(41), c);
  // A stored id (rows written before ids were derived) names the row's first task run.
  StoredRange old{-1, 1, "0123", {}};
  EXPECT_EQ(ids.id(old, -1), "0123");
  StoredRange range{10, 5, std::nullopt, {}};
  EXPECT_EQ(ids.id(range, 12), ids.id(12));
}

TEST(TaskRunRanges, AliveTaskRunsOfOneUpdateAreOneRow) {
  TaskRunIds ids("r", "map");
  Table t;
  auto m = apply_batch(t, ids, {upd(0, 9999, State::kSuccess, 100, 1, 90)});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].count, 10000);
  EXPECT_EQ(t[0].f.start, 90);
  EXPECT_EQ(t[0].f.end, 100);
  EXPECT_EQ(t[0].f.attempts, 1);
  ASSERT_EQ(m.ids.size(), 1u);
  EXPECT_EQ(m.ids[0], ids.id(0));
}

TEST(TaskRunRanges, AnUpdateInsideARowSplitsIt) {
  TaskRunIds ids("r", "map");
  Table t;
  apply_batch(t, ids, {upd(0, 999, State::kRunning, 100)});
  auto m = apply_batch(t, ids, {upd(500, 500, State::kFailed, 200, 1)});
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].count, 500);
  EXPECT_EQ(t[500].count, 1);
  EXPECT_EQ(t[500].f.state, State::kFailed);
  EXPECT_EQ(t[500].f.start, 100);  // kept from the Running it had
  EXPECT_EQ(t[500].f.created, 100);
  EXPECT_EQ(t[501].count, 499);
  EXPECT_EQ(t[501].f.state, State::kRunning);
  EXPECT_TRUE(m.remove.empty());
  EXPECT_EQ(m.write.size(), 3u);  // [0] is overwritten with its new count
  EXPECT_EQ(m.ids[0], ids.id(500));
}

TEST(TaskRunRanges, RowsThatBecomeAlikeAreMerged) {
  TaskRunIds ids("r", "map");
  Table t;
  std::vector<RangeUpdate> running;
  for (int i = 0; i < 10; ++i) running.push_back(upd(i, i, State::kRunning, 100 + i));
  apply_batch(t, ids, running);
  EXPECT_EQ(t.size(), 10u);  // different start times: ten rows
  auto m = apply_batch(t, ids, {upd(0, 9, State::kSuccess, 200, std::nullopt)});
  EXPECT_EQ(t.size(), 10u);  // still different start times
  EXPECT_TRUE(m.remove.empty());
  Table u;
  apply_batch(u, ids, running);
  for (auto& [first, r] : u) r.f.start = r.f.created = r.f.updated = 100;  // as if they had started together
  m = apply_batch(u, ids, {upd(0, 9, State::kSuccess, 200)});
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].count, 10);
  EXPECT_EQ(m.remove.size(), 9u);
}

// The next start time of a Retrying task run is a stored field: task runs that retry at
// different times are different rows, and the next state clears it so they join again.
TEST(TaskRunRanges, RetryingTaskRunsWithDifferentNextStartsAreDifferentRows) {
  TaskRunIds ids("r", "map");
  Table t;
  auto retrying = [](int64_t lo, int64_t hi, int64_t next) {
    RangeUpdate u = upd(lo, hi, State::kRetrying, 100, 1, 90);
    u.message = "503 (retry 1/3 in 1s)";
    u.next_start = next;
    return u;
  };
  apply_batch(t, ids, {retrying(0, 4, 1100), retrying(5, 9, 1200)});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].f.next_start, 1100);
  EXPECT_EQ(t[5].f.next_start, 1200);
  apply_batch(t, ids, {upd(0, 9, State::kRunning, 1300, 2)});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].count, 10);
  EXPECT_EQ(t[0].f.next_start, std::nullopt);
  EXPECT_EQ(t[0].f.start, 90);  // the first attempt's start is kept
}

// A retried flow run starts its task runs afresh: the second attempt's updates replace
// the first attempt's task runs (times, attempts, start) even when their timestamps are
// older, and a late update of the first attempt changes nothing.
TEST(TaskRunRanges, ALaterRunAttemptReplacesTheTaskRunsOfAnEarlierOne) {
  TaskRunIds ids("r", "map");
  Table t;
  apply_batch(t, ids, {upd(0, 9, State::kFailed, 500, 3, 400)});
  RangeUpdate again = upd(0, 4, State::kRunning, 450);  // an earlier clock, a later run attempt
  again.run_attempt = 2;
  apply_batch(t, ids, {again});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].count, 5);
  EXPECT_EQ(t[0].f.state, State::kRunning);
  EXPECT_EQ(t[0].f.run_attempt, 2);
  EXPECT_EQ(t[0].f.start, 450);
  EXPECT_EQ(t[0].f.created, 450);
  EXPECT_EQ(t[0].f.attempts, -1);
  EXPECT_EQ(t[0].f.end, std::nullopt);
  EXPECT_EQ(t[5].f.state, State::kFailed);
  EXPECT_EQ(t[5].f.run_attempt, 1);
  auto m = apply_batch(t, ids, {upd(0, 9, State::kSuccess, 900)});  // run attempt 1, late
  EXPECT_EQ(t[0].f.state, State::kRunning);
  EXPECT_EQ(t[5].f.state, State::kSuccess);
  EXPECT_EQ(m.ids[0], ids.id(0));
}

TEST(TaskRunRanges, AnOlderUpdateIsIgnoredButAnswersWithTheId) {
  TaskRunIds ids("r", "map");
  Table t;
  apply_batch(t, ids, {upd(0, 9, State::kSuccess, 300)});
  auto m = apply_batch(t, ids, {upd(3, 3, State::kRunning, 200)});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].f.state, State::kSuccess);
  EXPECT_TRUE(m.write.empty());
  EXPECT_TRUE(m.remove.empty());
  EXPECT_EQ(m.ids[0], ids.id(3));
}

TEST(TaskRunRanges, AStoredIdIsKeptAndNeverMergedAway) {
  TaskRunIds ids("r", "map");
  Table t;
  t[0] = StoredRange{0, 1, "old-0", RangeFields{State::kRunning, "", 1, 10, 10, 10, std::nullopt}};
  t[1] = StoredRange{1, 1, "old-1", RangeFields{State::kRunning, "", 1, 10, 10, 10, std::nullopt}};
  auto m = apply_batch(t, ids, {upd(0, 1, State::kSuccess, 20)});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].id, "old-0");
  EXPECT_EQ(t[1].id, "old-1");
  EXPECT_EQ(m.ids[0], "old-0");
  EXPECT_EQ(t[1].f.state, State::kSuccess);
}

TEST(TaskRunRanges, RandomBatchesMatchOneRecordPerTaskRun) {
  std::mt19937 rng(20261128);
  const char* messages[] = {"", "boom", "retrying"};
  for (int round = 0; round < 200; ++round) {
    TaskRunIds ids("r", "t" + std::to_string(round));
    Table t;
    Model model;
    const int64_t width = 1 + static_cast<int64_t>(rng() % 60);
    for (int b = 0; b < 8; ++b) {
      std::vector<RangeUpdate> batch;
      const int n = 1 + static_cast<int>(rng() % 6);
      for (int k = 0; k < n; ++k) {
        int64_t lo = static_cast<int64_t>(rng() % static_cast<uint32_t>(width));
        int64_t hi = std::min(width - 1, lo + static_cast<int64_t>(rng() % 20));
        State s = std::array{State::kPending, State::kRunning, State::kRetrying, State::kSuccess,
                             State::kFailed}[rng() % 5];
        RangeUpdate u = upd(lo, hi, s, 100 + static_cast<int64_t>(rng() % 30));
        u.message = messages[rng() % 3];
        // Next start times, also on states that have none (the store keeps it for Retrying only).
        if (rng() % 2) u.next_start = 130 + static_cast<int64_t>(rng() % 3);
        // Mostly the first attempt of the flow run; now and then a retried run's second
        // (whose updates replace the first's whatever their times) or a late first.
        u.run_attempt = rng() % 5 == 0 ? 2 : 1;
        if (rng() % 2) u.attempts = static_cast<int>(rng() % 3);
        if (rng() % 4 == 0) u.start = 90 + static_cast<int64_t>(rng() % 5);
        batch.push_back(u);
      }
      auto m = apply_batch(t, ids, batch);
      for (const auto& u : batch) model.apply(u);
      ASSERT_EQ(m.ids.size(), batch.size());
      for (size_t k = 0; k < batch.size(); ++k) EXPECT_EQ(m.ids[k], ids.id(batch[k].lo));
      ASSERT_NO_FATAL_FAILURE(expect_table_matches(t, model)) << "round " << round << " batch " << b;
    }
  }
}

}  // namespace
}  // namespace culvert::store::detail
