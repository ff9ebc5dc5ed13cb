#include <gtest/gtest.h>

#include "server/waiters.hpp"

namespace culvert::server {
namespace {

using std::chrono::milliseconds;

struct Fired {
  int count = 0;
  bool timed_out = false;
  Waiters::Fire fn() {
    return [this](bool t) {
      ++count;
      timed_out = t;
    };
  }
};

TEST(WaitersTest, NotifyWakesCoveringClaimsOnly) {
  ManualClock clock;
  Waiters w(clock, milliseconds(250));
  Fired gpu, any;
  auto deadline = clock.steady_now() + milliseconds(10000);
  w.park_claim({"gpu"}, deadline, w.claim_generation(), gpu.fn());
  w.park_claim({"cpu"}, deadline, w.claim_generation(), any.fn());
  EXPECT_EQ(w.parked(), 2u);
  w.notify_runs({"gpu"});
  EXPECT_EQ(gpu.count, 1);
  EXPECT_FALSE(gpu.timed_out);
  EXPECT_EQ(any.count, 0);
  w.notify_runs({});  // a run without labels: anyone
  EXPECT_EQ(any.count, 1);
  EXPECT_EQ(w.parked(), 0u);
}

TEST(WaitersTest, NotificationBetweenQueryAndParkIsNotLost) {
  ManualClock clock;
  Waiters w(clock, milliseconds(250));
  Fired f;
  uint64_t gen = w.claim_generation();  // before querying the store
  w.notify_runs({"x"});                 // a run arrives meanwhile
  w.park_claim({}, clock.steady_now() + milliseconds(1000), gen, f.fn());
  EXPECT_EQ(f.count, 1);
  EXPECT_EQ(w.parked(), 0u);
}

TEST(WaitersTest, DeadlinesAndRechecks) {
  ManualClock clock;
  Waiters w(clock, milliseconds(250));
  Fired a, b;
  w.park_claim({}, clock.steady_now() + milliseconds(100), w.claim_generation(), a.fn());
  w.park_logs("r1", clock.steady_now() + milliseconds(1000), w.log_generation(), b.fn());
  w.tick();
  EXPECT_EQ(a.count + b.count, 0);
  clock.advance(milliseconds(100));
  w.tick();
  EXPECT_EQ(a.count, 1);
  EXPECT_TRUE(a.timed_out);
  EXPECT_EQ(b.count, 0);
  clock.advance(milliseconds(150));  // the log reader's periodic re-check is due
  w.tick();
  EXPECT_EQ(b.count, 1);
  EXPECT_FALSE(b.timed_out);
}

TEST(WaitersTest, LogNotificationsAreByRun) {
  ManualClock clock;
  Waiters w(clock, milliseconds(250));
  Fired r1, r2;
  w.park_logs("r1", clock.steady_now() + milliseconds(1000), w.log_generation(), r1.fn());
  w.park_logs("r2", clock.steady_now() + milliseconds(1000), w.log_generation(), r2.fn());
  w.notify_logs("r2");
  EXPECT_EQ(r1.count, 0);
  EXPECT_EQ(r2.count, 1);
}

TEST(WaitersTest, ChildrenNotificationsAreByParentAndNotLostBeforeParking) {
  ManualClock clock;
  Waiters w(clock, milliseconds(250));
  Fired p1, p2, late;
  w.park_children("p1", clock.steady_now() + milliseconds(1000), w.children_generation(), p1.fn());
  w.park_children("p2", clock.steady_now() + milliseconds(1000), w.children_generation(), p2.fn());
  // A log notification for the same run is not a children notification.
  w.notify_logs("p1");
  EXPECT_EQ(p1.count, 0);
  w.notify_children("p1");
  EXPECT_EQ(p1.count, 1);
  EXPECT_FALSE(p1.timed_out);
  EXPECT_EQ(p2.count, 0);
  // A child that changed between the store query and parking wakes the wait at once.
  uint64_t seen = w.children_generation();
  w.notify_children("p3");
  w.park_children("p3", clock.steady_now() + milliseconds(1000), seen, late.fn());
  EXPECT_EQ(late.count, 1);
  clock.advance(milliseconds(1001));
  w.tick();
  EXPECT_EQ(p2.count, 1);
  EXPECT_TRUE(p2.timed_out);
}

TEST(WaitersTest, DueTimeWakesClaims) {
  ManualClock clock;
  Waiters w(clock, milliseconds(100000));
  Fired f;
  w.notify_due_at(clock.now() + milliseconds(500));
  w.park_claim({}, clock.steady_now() + milliseconds(100000), w.claim_generation(), f.fn());
  clock.advance(milliseconds(499));
  w.tick();
  EXPECT_EQ(f.count, 0);
  clock.advance(milliseconds(1));
  w.tick();
  EXPECT_EQ(f.count, 1);
  EXPECT_FALSE(f.timed_out);
}

TEST(WaitersTest, FireAllClosesTheRegistry) {
  ManualClock clock;
  Waiters w(clock, milliseconds(250));
  Fired a, b;
  w.park_claim({}, clock.steady_now() + milliseconds(1000), w.claim_generation(), a.fn());
  w.fire_all();
  EXPECT_EQ(a.count, 1);
  EXPECT_TRUE(a.timed_out);
  w.park_logs("r", clock.steady_now() + milliseconds(1000), w.log_generation(), b.fn());
  EXPECT_EQ(b.count, 1);  // answered at once after shutdown began
  EXPECT_TRUE(b.timed_out);
  EXPECT_EQ(w.parked(), 0u);
}

}  // namespace
}  // namespace culvert::server
