// Run and task-run states (docs/CONCEPTS.md) and the transition rules the server enforces.
// Pure functions, no I/O; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <culvert/status.hpp>

namespace culvert {

enum class State {
  kScheduled,
  kPending,
  kSubmitted,
  kRunning,
  kRetrying,
  kCancelling,
  kSuccess,
  kCached,
  kSkipped,
  kFailed,
  kTimedOut,
  kTriggerFailed,
  kCrashed,
  kCancelled,
};

enum class StateKind { kPending, kRunning, kFinal };

// "Scheduled", "TimedOut", ... exactly as in docs/CONCEPTS.md.
const char* state_name(State s);
// Parses a state name (case-insensitive). nullopt when unknown.
std::optional<State> parse_state(std::string_view name);
StateKind state_kind(State s);
inline bool is_final(State s) { return state_kind(s) == StateKind::kFinal; }
// Success, Cached and Skipped count as finished well.
bool is_successful(State s);
// Failed, TimedOut, TriggerFailed, Crashed: the states that fail a flow run when
// they are the state of a reference task.
bool is_failure(State s);

// Checks a flow-run transition `from -> to`. OK when legal; otherwise a Conflict
// status whose message names both states, e.g.
// "illegal transition from Success to Running: Success is final".
// `forced` is set by an explicit `culvert run retry`/`restart`, which may move a final
// run back to Scheduled or Pending.
Status check_flow_run_transition(State from, State to, bool forced = false);

}  // namespace culvert
