#include "core/schedule.hpp"

#include <date/date.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/timefmt.hpp"

namespace culvert {

using json = nlohmann::json;

const char* catchup_name(CatchUp c) {
  switch (c) {
    case CatchUp::kSkip: return "skip";
    case CatchUp::kLatest: return "latest";
    case CatchUp::kAll: return "all";
  }
  return "skip";
}

std::optional<CatchUp> parse_catchup(std::string_view s) {
  if (s == "skip") return CatchUp::kSkip;
  if (s == "latest") return CatchUp::kLatest;
  if (s == "all") return CatchUp::kAll;
  return std::nullopt;
}

Result<Schedule> Schedule::cron(std::string_view expression, std::string_view timezone) {
  auto expr = CronExpr::parse(expression);
  if (!expr) return expr.status();
  auto zone = TimeZone::find(timezone);
  if (!zone) return zone.status();
  Schedule s;
  s.kind_ = Kind::kCron;
  s.cron_text_ = expr->text();
  s.cron_ = std::move(*expr);
  s.zone_ = *zone;
  return s;
}

Result<Schedule> Schedule::interval(std::chrono::seconds every, SysTime anchor,
                                    std::string_view timezone) {
  if (every.count() < 1)
    return invalid_argument("interval must be at least 1 second, got " + std::to_string(every.count()));
  auto zone = TimeZone::find(timezone);
  if (!zone) return zone.status();
  Schedule s;
  s.kind_ = Kind::kInterval;
  s.every_ = every;
  s.anchor_ = std::chrono::floor<std::chrono::seconds>(anchor);
  s.zone_ = *zone;
  return s;
}

Status Schedule::set_parameters_json(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return invalid_argument("schedule parameters must be a JSON object");
  parameters_json_ = j.dump();
  return {};
}

namespace {

Status field_error(const char* field, const std::string& why) {
  return invalid_argument(std::string("schedule.") + field + ": " + why);
}

}  // namespace

Result<Schedule> Schedule::from_json(const json& j) {
  if (!j.is_object()) return invalid_argument("schedule must be a JSON object or null");
  std::string type;
  if (auto it = j.find("type"); it != j.end()) {
    if (!it->is_string()) return field_error("type", "must be \"cron\" or \"interval\"");
    type = it->get<std::string>();
  } else if (j.contains("cron")) {
    type = "cron";
  } else if (j.contains("interval_seconds")) {
    type = "interval";
  } else {
    return field_error("type", "missing (expected \"cron\" or \"interval\")");
  }
  std::string tz = "UTC";
  if (auto it = j.find("timezone"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return field_error("timezone", "must be a string such as \"Europe/Berlin\"");
    tz = it->get<std::string>();
  }
  Result<Schedule> s = invalid_argument("unset");
  if (type == "cron") {
    auto it = j.find("cron");
    if (it == j.end() || !it->is_string())
      return field_error("cron", "missing or not a string (e.g. \"0 6 * * *\")");
    s = Schedule::cron(it->get<std::string>(), tz);
    if (!s) {
      std::string m = s.status().message();
      return field_error(m.rfind("unknown time zone", 0) == 0 ? "timezone" : "cron", m);
    }
  } else if (type == "interval") {
    auto it = j.find("interval_seconds");
    if (it == j.end() || !it->is_number_integer())
      return field_error("interval_seconds", "missing or not an integer");
    int64_t every = it->get<int64_t>();
    if (every < 1) return field_error("interval_seconds", "must be at least 1, got " + std::to_string(every));
    SysTime anchor{};
    if (auto a = j.find("anchor"); a != j.end() && !a->is_null()) {
      std::optional<SysTime> t;
      if (a->is_string()) t = parse_rfc3339(a->get<std::string>());
      if (!t) return field_error("anchor", "not an RFC 3339 time (e.g. \"2026-01-01T00:00:00Z\")");
      anchor = *t;
    }
    s = Schedule::interval(std::chrono::seconds(every), anchor, tz);
    if (!s) return field_error("timezone", s.status().message());
  } else {
    return field_error("type", "must be \"cron\" or \"interval\", got \"" + type + "\"");
  }
  if (auto it = j.find("catchup"); it != j.end() && !it->is_null()) {
    std::optional<CatchUp> c;
    if (it->is_string()) c = parse_catchup(it->get<std::string>());
    if (!c) return field_error("catchup", "must be \"skip\", \"latest\" or \"all\"");
    s->set_catchup(*c);
  }
  if (auto it = j.find("active"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return field_error("active", "must be true or false");
    s->set_active(it->get<bool>());
  }
  if (auto it = j.find("parameters"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return field_error("parameters", "must be a JSON object");
    s->parameters_json_ = it->dump();
  }
  return s;
}

Result<Schedule> Schedule::from_json_text(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument("schedule is not valid JSON");
  return from_json(j);
}

json Schedule::to_json() const {
  json j = json::object();
  if (kind_ == Kind::kCron) {
    j["type"] = "cron";
    j["cron"] = cron_text_;
  } else {
    j["type"] = "interval";
    j["interval_seconds"] = every_.count();
    j["anchor"] = date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(anchor_));
  }
  j["timezone"] = zone_.name();
  j["parameters"] = json::parse(parameters_json_);
  j["catchup"] = catchup_name(catchup_);
  j["active"] = active_;
  return j;
}

std::string Schedule::to_json_text() const { return to_json().dump(); }

std::optional<SysTime> Schedule::next_after(SysTime t) const {
  if (kind_ == Kind::kCron) return cron_->next_after(t, zone_);
  if (t < anchor_) return anchor_;
  auto since = t - anchor_;
  auto k = since / every_ + 1;  // whole intervals elapsed, plus one
  return anchor_ + k * every_;
}

std::optional<SysTime> Schedule::prev_before(SysTime before, SysTime not_before) const {
  if (kind_ == Kind::kCron) return cron_->prev_before(before, not_before, zone_);
  if (before <= anchor_) return std::nullopt;
  auto since = before - anchor_;
  auto k = since / every_;                   // anchor + k*every <= before
  SysTime t = anchor_ + k * every_;
  if (t == before) t -= every_;              // strictly before
  if (t < anchor_ || t <= not_before) return std::nullopt;
  return t;
}

std::vector<SysTime> Schedule::fire_times(SysTime from, SysTime to, size_t limit) const {
  std::vector<SysTime> out;
  SysTime t = from - SysTime::duration(1);
  while (out.size() < limit) {
    auto n = next_after(t);
    if (!n || *n >= to) break;
    out.push_back(*n);
    t = *n;
  }
  return out;
}

Plan plan_runs(const Schedule& schedule, std::optional<SysTime> cursor, SysTime now,
               const PlanOptions& options) {
  const SysTime due_from = now - options.grace;
  const SysTime start = cursor ? *cursor : due_from;
  Plan plan;
  plan.cursor = start;
  if (!schedule.active()) {
    plan.cursor = std::max(start, now);
    return plan;
  }
  // Missed: (start, due_from].
  if (start < due_from) {
    switch (schedule.catchup()) {
      case CatchUp::kSkip: {
        auto first = schedule.next_after(start);
        plan.skipped_missed = first && *first <= due_from;
        break;
      }
      case CatchUp::kLatest: {
        auto last = schedule.prev_before(due_from + SysTime::duration(1), start);
        if (last) {
          auto first = schedule.next_after(start);
          plan.skipped_missed = first && *first < *last;
          plan.fire_times.push_back(*last);
          plan.caught_up = 1;
        }
        break;
      }
      case CatchUp::kAll: {
        SysTime t = start;
        while (true) {
          auto n = schedule.next_after(t);
          if (!n || *n > due_from) break;
          if (plan.fire_times.size() == options.max_catchup) {
            // Batch full: the next pass continues from the last one created.
            plan.caught_up = plan.fire_times.size();
            plan.cursor = t;
            return plan;
          }
          plan.fire_times.push_back(*n);
          t = *n;
        }
        plan.caught_up = plan.fire_times.size();
        break;
      }
    }
  }
  // Due and upcoming: (max(start, due_from), now + horizon], at most max_ahead.
  const SysTime until = now + options.horizon;
  SysTime t = std::max(start, due_from);
  size_t ahead = 0;
  bool full = false;
  while (true) {
    auto n = schedule.next_after(t);
    if (!n || *n > until) break;
    if (ahead == options.max_ahead) {
      full = true;
      break;
    }
    plan.fire_times.push_back(*n);
    t = *n;
    ++ahead;
  }
  plan.cursor = std::max(start, full ? t : std::max(until, t));
  return plan;
}

Result<std::vector<SysTime>> backfill_fire_times(const Schedule& schedule, SysTime from, SysTime to,
                                                 SysTime now, size_t max_runs) {
  if (from >= to)
    return invalid_argument("backfill window is empty: --from (" + format_rfc3339(from) +
                            ") must be before --to (" + format_rfc3339(to) + ")");
  if (to > now)
    return invalid_argument("backfill --to (" + format_rfc3339(to) +
                            ") is in the future; the scheduler creates future runs");
  auto times = schedule.fire_times(from, to, max_runs + 1);
  if (times.size() > max_runs)
    return invalid_argument("backfill window holds more than " + std::to_string(max_runs) +
                            " runs; narrow --from/--to");
  return times;
}

std::string schedule_run_key(std::string_view flow_id, SysTime fire_time) {
  auto secs = std::chrono::floor<std::chrono::seconds>(fire_time);
  std::string when = secs == fire_time ? date::format("%FT%TZ", secs)
                                       : format_rfc3339(fire_time);
  return "sched:" + std::string(flow_id) + ":" + when;
}

}  // namespace culvert
