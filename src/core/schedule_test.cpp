#include "core/schedule.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"

namespace culvert {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

SysTime at(const std::string& s) {
  auto t = parse_rfc3339(s);
  EXPECT_TRUE(t.has_value()) << s;
  return t.value_or(SysTime{});
}

std::vector<std::string> fmt(const std::vector<SysTime>& ts) {
  std::vector<std::string> out;
  for (auto t : ts) out.push_back(format_rfc3339(t));
  return out;
}

Schedule hourly(CatchUp c = CatchUp::kSkip) {
  auto s = Schedule::cron("@hourly", "UTC");
  EXPECT_TRUE(s.is_ok());
  s->set_catchup(c);
  return *s;
}

// ---- JSON ----

TEST(ScheduleJson, CronRoundTripAndDefaults) {
  auto s = Schedule::from_json_text(R"({"type":"cron","cron":"0 6 * * *","timezone":"Europe/Berlin"})");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->kind(), Schedule::Kind::kCron);
  EXPECT_EQ(s->catchup(), CatchUp::kSkip);
  EXPECT_TRUE(s->active());
  EXPECT_EQ(s->parameters_json(), "{}");
  EXPECT_EQ(s->to_json_text(),
            R"({"active":true,"catchup":"skip","cron":"0 6 * * *","parameters":{},"timezone":"Europe/Berlin","type":"cron"})");
  auto again = Schedule::from_json(s->to_json());
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->to_json_text(), s->to_json_text());
}

TEST(ScheduleJson, IntervalWithEverything) {
  auto s = Schedule::from_json(json::parse(R"({"type":"interval","interval_seconds":900,
      "anchor":"2026-01-01T00:00:07.500Z","timezone":"America/New_York",
      "parameters":{"rows":5,"day":"x"},"catchup":"all","active":false})"));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->kind(), Schedule::Kind::kInterval);
  EXPECT_EQ(s->interval_length(), 900s);
  EXPECT_EQ(format_rfc3339(s->anchor()), "2026-01-01T00:00:07.000Z");  // whole seconds
  EXPECT_EQ(s->catchup(), CatchUp::kAll);
  EXPECT_FALSE(s->active());
  auto j = s->to_json();
  EXPECT_EQ(j["anchor"], "2026-01-01T00:00:07Z");
  EXPECT_EQ(j["parameters"]["rows"], 5);
  EXPECT_EQ(j["timezone"], "America/New_York");
  auto again = Schedule::from_json(j);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->to_json(), j);
}

TEST(ScheduleJson, TypeInferredFromFields) {
  auto s = Schedule::from_json_text(R"({"interval_seconds":60})");
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->kind(), Schedule::Kind::kInterval);
  EXPECT_EQ(s->anchor(), SysTime{});
  EXPECT_TRUE(Schedule::from_json_text(R"({"cron":"@daily"})").is_ok());
}

TEST(ScheduleJson, ErrorsNameTheField) {
  struct Case { const char* text; const char* want; };
  const Case cases[] = {
      {R"([1])", "schedule must be a JSON object"},
      {R"({})", "schedule.type: missing"},
      {R"({"type":"weekly"})", "schedule.type: must be \"cron\" or \"interval\", got \"weekly\""},
      {R"({"type":"cron"})", "schedule.cron: missing"},
      {R"({"type":"cron","cron":"61 * * * *"})", "schedule.cron: cron minute field '61'"},
      {R"({"type":"cron","cron":"@daily","timezone":"Nowhere/City"})", "schedule.timezone: unknown time zone 'Nowhere/City'"},
      {R"({"type":"cron","cron":"@daily","timezone":5})", "schedule.timezone: must be a string"},
      {R"({"type":"interval"})", "schedule.interval_seconds: missing"},
      {R"({"type":"interval","interval_seconds":0})", "schedule.interval_seconds: must be at least 1"},
      {R"({"type":"interval","interval_seconds":1.5})", "schedule.interval_seconds: missing or not an integer"},
      {R"({"type":"interval","interval_seconds":60,"anchor":"yesterday"})", "schedule.anchor: not an RFC 3339"},
      {R"({"cron":"@daily","catchup":"some"})", "schedule.catchup: must be"},
      {R"({"cron":"@daily","active":"yes"})", "schedule.active: must be true or false"},
      {R"({"cron":"@daily","parameters":[1]})", "schedule.parameters: must be a JSON object"},
      {R"({"cron":)", "schedule is not valid JSON"},
  };
  for (const auto& c : cases) {
    auto s = Schedule::from_json_text(c.text);
    ASSERT_FALSE(s.is_ok()) << c.text;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(c.want), std::string::npos)
        << c.text << " -> " << s.status().message();
  }
}

TEST(ScheduleJson, SetParameters) {
  auto s = hourly();
  EXPECT_TRUE(s.set_parameters_json(R"({"a": 1})").is_ok());
  EXPECT_EQ(s.parameters_json(), R"({"a":1})");
  EXPECT_FALSE(s.set_parameters_json("[1]").is_ok());
  EXPECT_FALSE(s.set_parameters_json("{").is_ok());
}

// ---- intervals ----

TEST(Interval, FiresFromTheAnchorOnly) {
  auto s = Schedule::interval(90s, at("2026-01-01T00:00:00Z"));
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(format_rfc3339(*s->next_after(at("2025-01-01T00:00:00Z"))), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(*s->next_after(at("2026-01-01T00:00:00Z"))), "2026-01-01T00:01:30.000Z");
  EXPECT_EQ(format_rfc3339(*s->next_after(at("2026-01-01T00:01:29.999Z"))), "2026-01-01T00:01:30.000Z");
  EXPECT_EQ(format_rfc3339(*s->prev_before(at("2026-01-01T00:03:00Z"), SysTime{})), "2026-01-01T00:01:30.000Z");
  EXPECT_EQ(format_rfc3339(*s->prev_before(at("2026-01-01T00:03:00.001Z"), SysTime{})), "2026-01-01T00:03:00.000Z");
  EXPECT_FALSE(s->prev_before(at("2026-01-01T00:00:00Z"), SysTime{}).has_value());
  EXPECT_FALSE(s->prev_before(at("2026-01-01T00:03:00Z"), at("2026-01-01T00:01:30Z")).has_value());
  EXPECT_FALSE(Schedule::interval(0s, SysTime{}).is_ok());
  EXPECT_FALSE(Schedule::interval(60s, SysTime{}, "Bad/Zone").is_ok());
}

TEST(Interval, IgnoresDaylightSaving) {
  // Fixed intervals count elapsed seconds: across Berlin's fall back, 24 h apart in UTC.
  auto s = Schedule::interval(24h, at("2026-10-24T04:00:00Z"), "Europe/Berlin");
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(fmt(s->fire_times(at("2026-10-24T00:00:00Z"), at("2026-10-27T00:00:00Z"), 10)),
            (std::vector<std::string>{"2026-10-24T04:00:00.000Z", "2026-10-25T04:00:00.000Z",
                                      "2026-10-26T04:00:00.000Z"}));
}

TEST(Schedule, FireTimesWindowIsHalfOpen) {
  auto s = hourly();
  EXPECT_EQ(fmt(s.fire_times(at("2026-01-01T10:00:00Z"), at("2026-01-01T12:00:00Z"), 10)),
            (std::vector<std::string>{"2026-01-01T10:00:00.000Z", "2026-01-01T11:00:00.000Z"}));
  EXPECT_EQ(s.fire_times(at("2026-01-01T10:00:00Z"), at("2026-01-01T23:00:00Z"), 3).size(), 3u);
}

// ---- planning ----

TEST(Plan, FirstActivationCreatesOnlyUpcoming) {
  auto p = plan_runs(hourly(), std::nullopt, at("2026-01-01T10:30:00Z"));
  EXPECT_EQ(fmt(p.fire_times), (std::vector<std::string>{"2026-01-01T11:00:00.000Z"}));
  EXPECT_FALSE(p.skipped_missed);
  EXPECT_EQ(format_rfc3339(p.cursor), "2026-01-01T11:30:00.000Z");
}

TEST(Plan, SteadyStateCreatesEachFireTimeOnce) {
  auto p = plan_runs(hourly(), at("2026-01-01T11:30:00Z"), at("2026-01-01T10:40:00Z"));
  EXPECT_TRUE(p.fire_times.empty());
  EXPECT_EQ(format_rfc3339(p.cursor), "2026-01-01T11:40:00.000Z");
  p = plan_runs(hourly(), p.cursor, at("2026-01-01T11:05:00Z"));
  EXPECT_EQ(fmt(p.fire_times), (std::vector<std::string>{"2026-01-01T12:00:00.000Z"}));
}

TEST(Plan, DueWithinGraceIsNotMissed) {
  PlanOptions o;
  o.horizon = 0s;
  auto p = plan_runs(hourly(), at("2026-01-01T09:59:00Z"), at("2026-01-01T10:00:30Z"), o);
  EXPECT_EQ(fmt(p.fire_times), (std::vector<std::string>{"2026-01-01T10:00:00.000Z"}));
  EXPECT_FALSE(p.skipped_missed);
  EXPECT_EQ(p.caught_up, 0u);
  // 61 s late with a 60 s grace: missed, and skip drops it.
  p = plan_runs(hourly(), at("2026-01-01T09:59:00Z"), at("2026-01-01T10:01:01Z"), o);
  EXPECT_TRUE(p.fire_times.empty());
  EXPECT_TRUE(p.skipped_missed);
}

TEST(Plan, CatchUpSkip) {
  auto p = plan_runs(hourly(CatchUp::kSkip), at("2026-01-01T11:30:00Z"), at("2026-01-02T09:10:00Z"));
  EXPECT_EQ(fmt(p.fire_times), (std::vector<std::string>{"2026-01-02T10:00:00.000Z"}));
  EXPECT_TRUE(p.skipped_missed);
  EXPECT_EQ(p.caught_up, 0u);
  EXPECT_EQ(format_rfc3339(p.cursor), "2026-01-02T10:10:00.000Z");
}

TEST(Plan, CatchUpLatest) {
  auto p = plan_runs(hourly(CatchUp::kLatest), at("2026-01-01T11:30:00Z"), at("2026-01-02T09:10:00Z"));
  EXPECT_EQ(fmt(p.fire_times),
            (std::vector<std::string>{"2026-01-02T09:00:00.000Z", "2026-01-02T10:00:00.000Z"}));
  EXPECT_TRUE(p.skipped_missed);
  EXPECT_EQ(p.caught_up, 1u);
  // Exactly one missed: nothing dropped.
  p = plan_runs(hourly(CatchUp::kLatest), at("2026-01-02T08:30:00Z"), at("2026-01-02T09:10:00Z"));
  EXPECT_EQ(fmt(p.fire_times),
            (std::vector<std::string>{"2026-01-02T09:00:00.000Z", "2026-01-02T10:00:00.000Z"}));
  EXPECT_FALSE(p.skipped_missed);
}

TEST(Plan, CatchUpAllInBatches) {
  PlanOptions o;
  o.max_catchup = 5;
  std::optional<SysTime> cursor = at("2026-01-01T11:30:00Z");
  const SysTime now = at("2026-01-02T09:10:00Z");
  std::vector<SysTime> created;
  for (int pass = 0; pass < 10; ++pass) {
    auto p = plan_runs(hourly(CatchUp::kAll), cursor, now, o);
    ASSERT_GE(p.cursor, *cursor);
    created.insert(created.end(), p.fire_times.begin(), p.fire_times.end());
    cursor = p.cursor;
  }
  // 12:00 on the 1st through 09:00 on the 2nd (22 missed), then 10:00 (upcoming).
  ASSERT_EQ(created.size(), 23u);
  EXPECT_EQ(format_rfc3339(created.front()), "2026-01-01T12:00:00.000Z");
  EXPECT_EQ(format_rfc3339(created[21]), "2026-01-02T09:00:00.000Z");
  EXPECT_EQ(format_rfc3339(created.back()), "2026-01-02T10:00:00.000Z");
  EXPECT_TRUE(std::is_sorted(created.begin(), created.end()));
}

TEST(Plan, MaxAheadCapsAndCursorResumes) {
  auto every_minute = Schedule::cron("* * * * *");
  ASSERT_TRUE(every_minute.is_ok());
  PlanOptions o;
  o.max_ahead = 10;
  auto p = plan_runs(*every_minute, std::nullopt, at("2026-01-01T10:00:30Z"), o);
  ASSERT_EQ(p.fire_times.size(), 10u);
  EXPECT_EQ(format_rfc3339(p.fire_times.front()), "2026-01-01T10:00:00.000Z");  // within grace
  EXPECT_EQ(format_rfc3339(p.cursor), "2026-01-01T10:09:00.000Z");
  p = plan_runs(*every_minute, p.cursor, at("2026-01-01T10:00:40Z"), o);
  EXPECT_EQ(format_rfc3339(p.fire_times.front()), "2026-01-01T10:10:00.000Z");
}

TEST(Plan, InactiveCreatesNothingAndForgetsThePause) {
  auto s = hourly(CatchUp::kAll);
  s.set_active(false);
  auto p = plan_runs(s, at("2026-01-01T00:00:00Z"), at("2026-01-03T00:00:00Z"));
  EXPECT_TRUE(p.fire_times.empty());
  EXPECT_EQ(format_rfc3339(p.cursor), "2026-01-03T00:00:00.000Z");
}

TEST(Plan, CursorNeverMovesBackwards) {
  PlanOptions o;
  o.horizon = 60s;
  auto p = plan_runs(hourly(), at("2026-01-01T20:00:00Z"), at("2026-01-01T10:00:00Z"), o);
  EXPECT_TRUE(p.fire_times.empty());
  EXPECT_EQ(format_rfc3339(p.cursor), "2026-01-01T20:00:00.000Z");
}

// A simulated scheduler: passes at pseudo-random intervals over three days with an
// 8-hour outage, two replicas racing on the same stored cursor. Every fire time gets
// exactly one key; missed ones follow the policy.
TEST(Plan, SimulatedDowntimeAndReplicas) {
  for (CatchUp policy : {CatchUp::kSkip, CatchUp::kLatest, CatchUp::kAll}) {
    SCOPED_TRACE(catchup_name(policy));
    auto s = Schedule::cron("*/20 * * * *", "Europe/Berlin");
    ASSERT_TRUE(s.is_ok());
    s->set_catchup(policy);
    SeededRandom rnd(42);
    ManualClock clock(at("2026-03-28T00:00:00Z"));
    const SysTime outage_from = at("2026-03-29T00:10:00Z"), outage_to = at("2026-03-29T08:05:00Z");
    std::optional<SysTime> cursor;
    SysTime cursor_before_outage{};
    std::set<std::string> created;  // the store's unique index on idempotency keys
    size_t duplicates = 0;
    while (clock.now() < at("2026-03-31T00:00:00Z")) {
      clock.advance(std::chrono::seconds(5 + rnd.next_u64() % 50));
      if (clock.now() >= outage_from && clock.now() < outage_to) continue;
      for (int replica = 0; replica < 2; ++replica) {
        auto p = plan_runs(*s, cursor, clock.now());
        for (auto t : p.fire_times)
          if (!created.insert(schedule_run_key("flow-1", t)).second) ++duplicates;
        if (replica == 1) cursor = p.cursor;
      }
      if (clock.now() < outage_from) cursor_before_outage = *cursor;
    }
    // The second replica re-plans what the first did: the keys collide, so no doubles.
    EXPECT_GT(duplicates, 0u);
    // Runs up to an hour ahead were created before the outage; the rest of the outage's
    // fire times are missed.
    ASSERT_GT(cursor_before_outage, outage_from);
    auto missed_times = s->fire_times(cursor_before_outage + 1s, outage_to - 60s, 1000);
    EXPECT_EQ(missed_times.size(), 21u);  // 01:20Z..08:00Z, 3 per hour
    size_t missed = 0;
    for (auto t : missed_times) missed += created.count(schedule_run_key("flow-1", t));
    switch (policy) {
      case CatchUp::kSkip: EXPECT_EQ(missed, 0u); break;
      case CatchUp::kLatest: EXPECT_EQ(missed, 1u); break;
      case CatchUp::kAll: EXPECT_EQ(missed, missed_times.size()); break;
    }
    // Outside the outage every fire time was created.
    for (auto t : s->fire_times(at("2026-03-28T00:02:00Z"), cursor_before_outage + 1s, 1000))
      EXPECT_EQ(created.count(schedule_run_key("flow-1", t)), 1u) << format_rfc3339(t);
    for (auto t : s->fire_times(outage_to + 60s, at("2026-03-31T00:00:00Z"), 1000))
      EXPECT_EQ(created.count(schedule_run_key("flow-1", t)), 1u) << format_rfc3339(t);
  }
}

// ---- backfill and keys ----

TEST(Backfill, WindowAcrossSpringForward) {
  auto s = Schedule::cron("30 2 * * *", "Europe/Berlin");
  ASSERT_TRUE(s.is_ok());
  auto r = backfill_fire_times(*s, at("2026-03-27T00:00:00Z"), at("2026-04-01T00:00:00Z"),
                               at("2026-06-01T00:00:00Z"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  // 27, 28, (29 has no 02:30), 30, 31
  EXPECT_EQ(fmt(*r), (std::vector<std::string>{"2026-03-27T01:30:00.000Z", "2026-03-28T01:30:00.000Z",
                                               "2026-03-30T00:30:00.000Z", "2026-03-31T00:30:00.000Z"}));
}

TEST(Backfill, Errors) {
  auto s = hourly();
  const SysTime now = at("2026-06-01T00:00:00Z");
  auto r = backfill_fire_times(s, at("2026-03-02T00:00:00Z"), at("2026-03-01T00:00:00Z"), now);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("must be before --to"), std::string::npos);
  r = backfill_fire_times(s, at("2026-03-01T00:00:00Z"), at("2026-07-01T00:00:00Z"), now);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("in the future"), std::string::npos);
  r = backfill_fire_times(s, at("2026-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"), now, 100);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("more than 100 runs"), std::string::npos);
  r = backfill_fire_times(s, at("2026-01-01T00:00:00Z"), at("2026-01-01T05:00:00Z"), now, 5);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->size(), 5u);
}

TEST(Keys, StableAndReadable) {
  EXPECT_EQ(schedule_run_key("f1", at("2026-03-29T04:00:00Z")), "sched:f1:2026-03-29T04:00:00Z");
  EXPECT_EQ(schedule_run_key("f1", at("2026-03-29T06:00:00+02:00")), "sched:f1:2026-03-29T04:00:00Z");
  EXPECT_EQ(schedule_run_key("f1", at("2026-03-29T04:00:00.250Z")), "sched:f1:2026-03-29T04:00:00.250Z");
}

}  // namespace
}  // namespace culvert
