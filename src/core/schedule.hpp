// A flow's schedule (docs/SCHEDULES.md): a cron expression in an IANA time zone, or a fixed
// interval from an anchor; each with parameter values for the runs it creates, a
// catch-up policy for fire times missed during downtime, and an active flag.
//
// Read from / written to the "schedule" field of a flow description (docs/FORMATS.md).
// The functions below are what the server's scheduler calls. They are pure: every
// time is an argument, nothing reads a clock. See docs/SCHEDULES.md.
//
// Schedule is a plain value; copies are cheap and independent. Const functions are
// thread-safe; the free functions are pure.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include "core/cron.hpp"

namespace culvert {

// What happens to fire times missed while the scheduler was not running.
enum class CatchUp {
  kSkip,    // default: missed fire times are dropped
  kLatest,  // one run, for the most recent missed fire time
  kAll,     // one run per missed fire time (in order, in batches of max_catchup)
};
const char* catchup_name(CatchUp c);  // "skip" | "latest" | "all"
std::optional<CatchUp> parse_catchup(std::string_view s);

class Schedule {
 public:
  enum class Kind { kCron, kInterval };

  // REQUIRES nothing: bad input is returned as kInvalidArgument naming the field.
  static Result<Schedule> cron(std::string_view expression, std::string_view timezone = "UTC");
  // Fires at anchor, anchor + every, anchor + 2*every, ... (never before the anchor).
  // `every` is at least one second; the anchor is truncated to whole seconds.
  static Result<Schedule> interval(std::chrono::seconds every, SysTime anchor,
                                   std::string_view timezone = "UTC");

  // The "schedule" JSON object of docs/FORMATS.md. Errors name the field
  // ("schedule.cron: ...", "schedule.catchup: ...").
  static Result<Schedule> from_json(const nlohmann::json& j);
  static Result<Schedule> from_json_text(std::string_view text);
  nlohmann::json to_json() const;
  std::string to_json_text() const;  // compact, keys in a fixed order

  Kind kind() const { return kind_; }
  // Cron text ("0 6 * * *"); empty for an interval schedule.
  const std::string& cron_text() const { return cron_text_; }
  std::chrono::seconds interval_length() const { return every_; }
  SysTime anchor() const { return anchor_; }
  const TimeZone& timezone() const { return zone_; }
  CatchUp catchup() const { return catchup_; }
  bool active() const { return active_; }
  // Parameter values for the runs this schedule creates, as compact JSON object text.
  const std::string& parameters_json() const { return parameters_json_; }

  Schedule& set_catchup(CatchUp c) { catchup_ = c; return *this; }
  Schedule& set_active(bool a) { active_ = a; return *this; }
  // REQUIRES-as-error: `json_object_text` is a JSON object.
  Status set_parameters_json(std::string_view json_object_text);

  // First fire time strictly after `t` (nullopt: none within 30 years).
  std::optional<SysTime> next_after(SysTime t) const;
  // Latest fire time in the open interval (not_before, before).
  std::optional<SysTime> prev_before(SysTime before, SysTime not_before) const;
  // Fire times in [from, to), ascending, at most `limit` of them.
  std::vector<SysTime> fire_times(SysTime from, SysTime to, size_t limit) const;

 private:
  Schedule() : zone_(TimeZone::utc()) {}
  Kind kind_ = Kind::kCron;
  std::optional<CronExpr> cron_;
  std::string cron_text_;
  std::chrono::seconds every_{0};
  SysTime anchor_{};
  TimeZone zone_;
  CatchUp catchup_ = CatchUp::kSkip;
  bool active_ = true;
  std::string parameters_json_ = "{}";
};

// How far ahead the scheduler creates runs and how it treats lateness.
struct PlanOptions {
  // Runs are created for fire times up to now + horizon. Default: 1 hour.
  std::chrono::seconds horizon{3600};
  // At most this many runs for fire times that are not yet missed. Default: 10.
  size_t max_ahead = 10;
  // A fire time at most this far in the past is "due", not "missed". Default: 60 s.
  std::chrono::seconds grace{60};
  // Catch-up `all` creates at most this many missed runs per call. Default: 100.
  size_t max_catchup = 100;
};

// The outcome of one scheduler pass for one flow.
struct Plan {
  // Fire times to create runs for, ascending. Each becomes a run with
  // scheduled_start_time = fire time and idempotency key schedule_run_key(...).
  std::vector<SysTime> fire_times;
  // How many of fire_times are missed fire times created by the catch-up policy.
  size_t caught_up = 0;
  // True when missed fire times were dropped by the catch-up policy.
  bool skipped_missed = false;
  // Every fire time <= cursor has been decided (created or dropped). Store it and pass
  // it back as `cursor` on the next call. Never moves backwards.
  SysTime cursor{};
};

// The runs to create now. `cursor` is the previous Plan's cursor (or the latest fire
// time a run was created for); nullopt when the schedule has never run or was just
// resumed, in which case nothing counts as missed. Fire times in (cursor, now - grace]
// are missed and follow the catch-up policy; those in (max(cursor, now - grace),
// now + horizon] are created, at most max_ahead. An inactive schedule creates nothing
// and moves the cursor to now, so a paused period is never caught up.
Plan plan_runs(const Schedule& schedule, std::optional<SysTime> cursor, SysTime now,
               const PlanOptions& options = {});

// The runs of a past window [from, to) for `culvert flow backfill`. Errors
// (kInvalidArgument): an empty window, `to` after `now`, or more than max_runs runs.
Result<std::vector<SysTime>> backfill_fire_times(const Schedule& schedule, SysTime from, SysTime to,
                                                 SysTime now, size_t max_runs = 1000);

// "sched:<flow_id>:<fire time as RFC 3339 UTC, whole seconds>", e.g.
// "sched:4f1c...:2026-03-29T04:00:00Z". The same (flow, fire time) always gives the
// same key, so a restart, a second replica or a backfill never doubles a run.
std::string schedule_run_key(std::string_view flow_id, SysTime fire_time);

}  // namespace culvert
