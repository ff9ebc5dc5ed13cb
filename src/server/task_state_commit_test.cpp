// TaskStateCommit with a fake write: a request's answer is its own slice of a group's
// ids; a failing group is written again request by request; groups are bounded; a
// write that throws is answered as an error. Concurrency is staged with a write that
// blocks until released, so the test is deterministic (no sleeps).
#include "server/task_state_commit.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace culvert::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Batch = std::vector<store::TaskRunUpdate>;

Batch batch(const std::string& run, std::vector<std::string> tasks) {
  Batch b;
  for (auto& t : tasks) {
    store::TaskRunUpdate u;
    u.flow_run_id = run;
    u.task = std::move(t);
    b.push_back(std::move(u));
  }
  return b;
}

// The ids a fake store gives: "run/task"; a batch naming run "bad" fails as a whole.
TaskStateCommit::Ids fake_ids(const Batch& b) {
  std::vector<std::string> ids;
  for (const auto& u : b) {
    if (u.flow_run_id == "bad") return not_found("flow run 'bad' does not exist");
    ids.push_back(u.flow_run_id + "/" + u.task);
  }
  return ids;
}

// Records every write (as its list of ids) and answer.
struct Recorder {
  std::mutex mu;
  std::vector<std::vector<std::string>> writes;  // the "run/task" names of each write call
  std::map<std::string, TaskStateCommit::Ids> answers;

  TaskStateCommit::Answer answer(const std::string& request) {
    return [this, request](const TaskStateCommit::Ids& ids) {
      std::lock_guard lock(mu);
      answers.emplace(request, ids);
    };
  }
  void record(const Batch& b) {
    std::vector<std::string> names;
    for (const auto& u : b) names.push_back(u.flow_run_id + "/" + u.task);
    std::lock_guard lock(mu);
    writes.push_back(std::move(names));
  }
};

// A writer thread whose first write blocks until release(), so that more requests can
// be parked behind it.
struct BlockedWriter {
  TaskStateCommit& commit;
  Recorder& rec;
  std::promise<void> entered, released;
  std::thread thread;
  TaskStateCommit::Write write;

  BlockedWriter(TaskStateCommit& c, Recorder& r, Batch first) : commit(c), rec(r) {
    auto release = released.get_future().share();
    auto first_call = std::make_shared<std::once_flag>();
    write = [this, release, first_call](const Batch& b) {
      rec.record(b);
      std::call_once(*first_call, [&] {
        entered.set_value();
        release.wait();
      });
      return fake_ids(b);
    };
    thread = std::thread([this, first = std::move(first)]() mutable {
      commit.submit(std::move(first), rec.answer("first"), write);
    });
    entered.get_future().wait();
  }
  void release_and_join() {
    released.set_value();
    thread.join();
  }
};

TaskStateCommit::Write never_called() {
  return [](const Batch&) -> TaskStateCommit::Ids {
    ADD_FAILURE() << "a parked request must not write itself while a writer is active";
    return internal_error("unexpected");
  };
}

TEST(TaskStateCommitTest, ALoneRequestIsWrittenOnceAndGetsItsIds) {
  TaskStateCommit commit(100);
  Recorder rec;
  commit.submit(batch("r1", {"a", "b", "c"}), rec.answer("one"), [&](const Batch& b) {
    rec.record(b);
    return fake_ids(b);
  });
  ASSERT_EQ(rec.writes.size(), 1u);
  ASSERT_TRUE(rec.answers.at("one").is_ok());
  EXPECT_THAT(*rec.answers.at("one"), ElementsAre("r1/a", "r1/b", "r1/c"));
}

TEST(TaskStateCommitTest, RequestsParkedDuringAWriteShareTheNextWriteAndGetTheirOwnSlices) {
  TaskStateCommit commit(100);
  Recorder rec;
  BlockedWriter writer(commit, rec, batch("r0", {"x"}));
  // Parked while the first write is in progress: submit returns at once.
  commit.submit(batch("r1", {"a", "b"}), rec.answer("second"), never_called());
  commit.submit(batch("r2", {"c"}), rec.answer("third"), never_called());
  commit.submit(batch("r3", {"d", "e", "f"}), rec.answer("fourth"), never_called());
  EXPECT_EQ(rec.answers.size(), 0u);
  writer.release_and_join();

  ASSERT_EQ(rec.writes.size(), 2u);  // the first alone, then the three parked ones together
  EXPECT_THAT(rec.writes[0], ElementsAre("r0/x"));
  EXPECT_THAT(rec.writes[1], ElementsAre("r1/a", "r1/b", "r2/c", "r3/d", "r3/e", "r3/f"));
  ASSERT_EQ(rec.answers.size(), 4u);
  EXPECT_THAT(*rec.answers.at("first"), ElementsAre("r0/x"));
  EXPECT_THAT(*rec.answers.at("second"), ElementsAre("r1/a", "r1/b"));
  EXPECT_THAT(*rec.answers.at("third"), ElementsAre("r2/c"));
  EXPECT_THAT(*rec.answers.at("fourth"), ElementsAre("r3/d", "r3/e", "r3/f"));
}

TEST(TaskStateCommitTest, AFailingGroupIsWrittenAgainRequestByRequest) {
  TaskStateCommit commit(100);
  Recorder rec;
  BlockedWriter writer(commit, rec, batch("r0", {"x"}));
  commit.submit(batch("r1", {"a"}), rec.answer("good"), never_called());
  commit.submit(batch("bad", {"b"}), rec.answer("bad"), never_called());
  commit.submit(batch("r2", {"c", "d"}), rec.answer("also good"), never_called());
  writer.release_and_join();

  ASSERT_EQ(rec.writes.size(), 5u);
  EXPECT_THAT(rec.writes[1], ElementsAre("r1/a", "bad/b", "r2/c", "r2/d"));  // the group: fails
  EXPECT_THAT(rec.writes[2], ElementsAre("r1/a"));
  EXPECT_THAT(rec.writes[3], ElementsAre("bad/b"));
  EXPECT_THAT(rec.writes[4], ElementsAre("r2/c", "r2/d"));
  ASSERT_TRUE(rec.answers.at("good").is_ok());
  EXPECT_THAT(*rec.answers.at("good"), ElementsAre("r1/a"));
  ASSERT_FALSE(rec.answers.at("bad").is_ok());
  EXPECT_EQ(rec.answers.at("bad").status().code(), StatusCode::kNotFound);
  EXPECT_THAT(rec.answers.at("bad").status().message(), HasSubstr("'bad'"));
  ASSERT_TRUE(rec.answers.at("also good").is_ok());
  EXPECT_THAT(*rec.answers.at("also good"), ElementsAre("r2/c", "r2/d"));
}

TEST(TaskStateCommitTest, AGroupTakesParkedBatchesUpToItsBound) {
  TaskStateCommit commit(4);
  Recorder rec;
  BlockedWriter writer(commit, rec, batch("r0", {"x"}));
  commit.submit(batch("r1", {"a", "b", "c"}), rec.answer("1"), never_called());
  commit.submit(batch("r2", {"d"}), rec.answer("2"), never_called());      // 3 + 1 = 4: same group
  commit.submit(batch("r3", {"e", "f"}), rec.answer("3"), never_called()); // would be 6: next group
  commit.submit(batch("r4", {"g", "h", "i", "j", "k"}), rec.answer("4"), never_called());  // alone
  writer.release_and_join();

  ASSERT_EQ(rec.writes.size(), 4u);
  EXPECT_THAT(rec.writes[1], ElementsAre("r1/a", "r1/b", "r1/c", "r2/d"));
  EXPECT_THAT(rec.writes[2], ElementsAre("r3/e", "r3/f"));
  EXPECT_THAT(rec.writes[3], ElementsAre("r4/g", "r4/h", "r4/i", "r4/j", "r4/k"));  // over the bound, but first
  EXPECT_EQ(rec.answers.size(), 5u);
  EXPECT_THAT(*rec.answers.at("4"), ElementsAre("r4/g", "r4/h", "r4/i", "r4/j", "r4/k"));
}

TEST(TaskStateCommitTest, AThrowingWriteIsAnsweredAsAnErrorAndTheNextRequestWritesAgain) {
  TaskStateCommit commit(100);
  Recorder rec;
  commit.submit(batch("r1", {"a"}), rec.answer("throws"),
                [](const Batch&) -> TaskStateCommit::Ids { throw std::runtime_error("connection reset"); });
  ASSERT_FALSE(rec.answers.at("throws").is_ok());
  EXPECT_EQ(rec.answers.at("throws").status().code(), StatusCode::kInternal);
  EXPECT_THAT(rec.answers.at("throws").status().message(), HasSubstr("connection reset"));
  // The writer was released: the next request writes itself.
  commit.submit(batch("r2", {"b"}), rec.answer("next"), [&](const Batch& b) { return fake_ids(b); });
  ASSERT_TRUE(rec.answers.at("next").is_ok());
  EXPECT_THAT(*rec.answers.at("next"), ElementsAre("r2/b"));
}

TEST(TaskStateCommitTest, TooFewIdsFromTheStoreAreAnErrorNotAnOutOfRangeRead) {
  TaskStateCommit commit(100);
  Recorder rec;
  commit.submit(batch("r1", {"a", "b"}), rec.answer("short"),
                [](const Batch&) -> TaskStateCommit::Ids { return std::vector<std::string>{"only one"}; });
  ASSERT_FALSE(rec.answers.at("short").is_ok());
  EXPECT_EQ(rec.answers.at("short").status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace culvert::server
