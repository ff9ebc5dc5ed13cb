#include <culvert/state.hpp>

#include <array>
#include <cctype>

namespace culvert {
namespace {

struct StateInfo {
  State state;
  const char* name;
  StateKind kind;
};

constexpr std::array<StateInfo, 14> kStates = {{
    {State::kScheduled, "Scheduled", StateKind::kPending},
    {State::kPending, "Pending", StateKind::kPending},
    {State::kSubmitted, "Submitted", StateKind::kPending},
    {State::kRunning, "Running", StateKind::kRunning},
    {State::kRetrying, "Retrying", StateKind::kPending},
    {State::kCancelling, "Cancelling", StateKind::kRunning},
    {State::kSuccess, "Success", StateKind::kFinal},
    {State::kCached, "Cached", StateKind::kFinal},
    {State::kSkipped, "Skipped", StateKind::kFinal},
    {State::kFailed, "Failed", StateKind::kFinal},
    {State::kTimedOut, "TimedOut", StateKind::kFinal},
    {State::kTriggerFailed, "TriggerFailed", StateKind::kFinal},
    {State::kCrashed, "Crashed", StateKind::kFinal},
    {State::kCancelled, "Cancelled", StateKind::kFinal},
}};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

const char* state_name(State s) { return kStates[static_cast<size_t>(s)].name; }

std::optional<State> parse_state(std::string_view name) {
  for (const auto& info : kStates) {
    if (iequals(info.name, name)) return info.state;
  }
  return std::nullopt;
}

StateKind state_kind(State s) { return kStates[static_cast<size_t>(s)].kind; }

bool is_successful(State s) {
  return s == State::kSuccess || s == State::kCached || s == State::kSkipped;
}

bool is_failure(State s) {
  return s == State::kFailed || s == State::kTimedOut || s == State::kTriggerFailed ||
         s == State::kCrashed;
}

Status check_flow_run_transition(State from, State to, bool forced) {
  auto refuse = [&](const char* why) {
    return conflict(std::string("illegal transition from ") + state_name(from) + " to " +
                    state_name(to) + ": " + why);
  };
  if (to == State::kCached || to == State::kSkipped || to == State::kTriggerFailed)
    return refuse("that state applies to task runs only");
  if (is_final(from)) {
    if (forced && (to == State::kScheduled || to == State::kPending)) return Status::ok();
    return refuse("the run is already in a final state (use `culvert run retry`)");
  }
  if (from == to) return refuse("the run is already in that state");
  switch (from) {
    case State::kScheduled:
    case State::kPending:
    case State::kRetrying:
      // Waiting runs may be rescheduled, claimed, started, cancelled, or found lost.
      if (to == State::kScheduled || to == State::kPending || to == State::kSubmitted ||
          to == State::kRunning || to == State::kCancelled || to == State::kCrashed ||
          to == State::kFailed)
        return Status::ok();
      if (to == State::kRetrying && from != State::kRetrying) return Status::ok();
      return refuse("a run that has not started can only be scheduled, claimed, started or cancelled");
    case State::kSubmitted:
      // Pending again: the infrastructure never started it before the deadline.
      if (to == State::kRunning || to == State::kPending || to == State::kScheduled ||
          to == State::kCrashed || to == State::kFailed || to == State::kCancelling ||
          to == State::kCancelled)
        return Status::ok();
      return refuse("a submitted run must start running first");
    case State::kRunning:
      if (to == State::kSuccess || to == State::kFailed || to == State::kTimedOut ||
          to == State::kCrashed || to == State::kCancelling || to == State::kCancelled ||
          to == State::kRetrying)
        return Status::ok();
      return refuse("a running run can only finish, retry or be cancelled");
    case State::kCancelling:
      // A run may finish on its own before the cancel lands; report what happened.
      if (is_final(to)) return Status::ok();
      return refuse("a cancelling run can only reach a final state");
    default:
      break;
  }
  return refuse("no such transition");
}

}  // namespace culvert
