#include <culvert/state.hpp>

#include <gtest/gtest.h>

namespace culvert {
namespace {

TEST(State, NamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(State::kCancelled); ++i) {
    auto s = static_cast<State>(i);
    auto parsed = parse_state(state_name(s));
    ASSERT_TRUE(parsed.has_value()) << state_name(s);
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_EQ(parse_state("timedout"), State::kTimedOut);
  EXPECT_FALSE(parse_state("Done").has_value());
}

TEST(State, Kinds) {
  EXPECT_EQ(state_kind(State::kScheduled), StateKind::kPending);
  EXPECT_EQ(state_kind(State::kRetrying), StateKind::kPending);
  EXPECT_EQ(state_kind(State::kCancelling), StateKind::kRunning);
  EXPECT_TRUE(is_final(State::kCrashed));
  EXPECT_FALSE(is_final(State::kRunning));
  EXPECT_TRUE(is_failure(State::kTriggerFailed));
  EXPECT_FALSE(is_failure(State::kCancelled));
  EXPECT_TRUE(is_successful(State::kCached));
}

struct TransitionCase {
  State from;
  State to;
  bool forced;
  bool legal;
};

class FlowRunTransitions : public ::testing::TestWithParam<TransitionCase> {};

TEST_P(FlowRunTransitions, Rule) {
  const auto& c = GetParam();
  Status st = check_flow_run_transition(c.from, c.to, c.forced);
  EXPECT_EQ(st.is_ok(), c.legal) << state_name(c.from) << " -> " << state_name(c.to) << ": "
                                 << st.message();
  if (!c.legal) {
    EXPECT_EQ(st.code(), StatusCode::kConflict);
    EXPECT_NE(st.message().find(state_name(c.from)), std::string::npos);
    EXPECT_NE(st.message().find(state_name(c.to)), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, FlowRunTransitions,
    ::testing::Values(
        TransitionCase{State::kScheduled, State::kPending, false, true},
        TransitionCase{State::kScheduled, State::kSubmitted, false, true},
        TransitionCase{State::kPending, State::kSubmitted, false, true},
        TransitionCase{State::kSubmitted, State::kRunning, false, true},
        TransitionCase{State::kSubmitted, State::kPending, false, true},
        TransitionCase{State::kSubmitted, State::kSuccess, false, false},
        TransitionCase{State::kRunning, State::kSuccess, false, true},
        TransitionCase{State::kRunning, State::kFailed, false, true},
        TransitionCase{State::kRunning, State::kCrashed, false, true},
        TransitionCase{State::kRunning, State::kCancelling, false, true},
        TransitionCase{State::kRunning, State::kScheduled, false, false},
        TransitionCase{State::kRunning, State::kRunning, false, false},
        TransitionCase{State::kCancelling, State::kCancelled, false, true},
        TransitionCase{State::kCancelling, State::kSuccess, false, true},
        TransitionCase{State::kCancelling, State::kRunning, false, false},
        TransitionCase{State::kSuccess, State::kRunning, false, false},
        TransitionCase{State::kFailed, State::kScheduled, false, false},
        TransitionCase{State::kFailed, State::kScheduled, true, true},
        TransitionCase{State::kCrashed, State::kPending, true, true},
        TransitionCase{State::kCrashed, State::kRunning, true, false},
        TransitionCase{State::kRunning, State::kCached, false, false},
        TransitionCase{State::kPending, State::kCancelled, false, true}));

}  // namespace
}  // namespace culvert
