// Request-body validation, table-driven: each case is a body and the expected outcome.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "server/api_json.hpp"

namespace culvert::server {
namespace {

using ::testing::HasSubstr;

const std::string kSha(64, 'a');

json base_flow() {
  return json::parse(R"({"project":"p","name":"etl","artifact":{"uri":"file:///a","sha256":")" + kSha + R"("},
    "tasks":[{"name":"a"},{"name":"b"},{"name":"c"}],
    "edges":[{"from":"a","to":"b"},{"from":"b","to":"c"}],
    "parameters":[{"name":"rows","type":"int","default":1},{"name":"day","type":"string","required":true}],
    "run_config":{"type":"docker","labels":["b","a","a"],"env":{"K":"V"}},
    "schedule":{"type":"cron","cron":"0 6 * * *","timezone":"Europe/Berlin","catchup":"skip"}})");
}

TEST(ApiJsonTest, ParseBody) {
  EXPECT_EQ(parse_body("{\"a\":1}")->at("a"), 1);
  EXPECT_EQ(parse_body("not json").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_body("{\"a\":").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_body("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(parse_body("  ", true)->is_object());
}

TEST(ApiJsonTest, ParseBodyBoundsNesting) {
  // The probe: 100,000 nested arrays inside run_config.run_task_kwargs (~200 KB).
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto r = parse_body(R"({"run_config":{"run_task_kwargs":)" + deep + "}}");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("limit of 64 levels"));
  // 64 levels in all is accepted, 65 is not.
  EXPECT_TRUE(parse_body("{\"a\":" + std::string(63, '[') + std::string(63, ']') + "}").is_ok());
  EXPECT_FALSE(parse_body("{\"a\":" + std::string(64, '[') + std::string(64, ']') + "}").is_ok());
  // Brackets inside strings are text.
  EXPECT_TRUE(parse_body("{\"a\":\"" + std::string(1000, '[') + "\"}").is_ok());
}

TEST(ApiJsonTest, FlowRegistrationAcceptsTheFormat) {
  auto v = parse_flow_registration(base_flow());
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v->project, "p");
  EXPECT_EQ(v->labels, (std::vector<std::string>{"a", "b"}));  // from run_config, normalized
  ASSERT_TRUE(v->schedule_json.has_value());
  EXPECT_TRUE(v->schedule_active);
  auto desc = json::parse(v->description_json);
  EXPECT_FALSE(desc.contains("project"));
  EXPECT_FALSE(desc.contains("artifact"));
  EXPECT_EQ(desc["tasks"].size(), 3u);
  // The run config, kept apart for the runs (their claims filter by its type).
  EXPECT_EQ(json::parse(v->run_config_json), base_flow()["run_config"]);
  EXPECT_EQ(v->run_config_type, base_flow()["run_config"].value("type", ""));
  json untyped = base_flow();
  untyped["run_config"].erase("type");
  EXPECT_EQ(parse_flow_registration(untyped)->run_config_type, "");
  untyped.erase("run_config");
  EXPECT_EQ(parse_flow_registration(untyped)->run_config_json, "");
}

TEST(ApiJsonTest, FlowRegistrationRejects) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"no project", [](json& b) { b.erase("project"); }, "project"},
      {"empty name", [](json& b) { b["name"] = ""; }, "name"},
      {"name not a string", [](json& b) { b["name"] = 1; }, "name"},
      {"no artifact", [](json& b) { b.erase("artifact"); }, "artifact"},
      {"bad sha", [](json& b) { b["artifact"]["sha256"] = "xyz"; }, "sha256"},
      // The probe's artifact URIs (core/artifact_uri_test.cpp has the whole table).
      {"http uri", [](json& b) { b["artifact"]["uri"] = "http://evil.example/flow"; }, "field 'artifact.uri' must be"},
      {"relative uri", [](json& b) { b["artifact"]["uri"] = "flows/etl"; }, "field 'artifact.uri' must be"},
      {"relative file uri", [](json& b) { b["artifact"]["uri"] = "file://flows/etl"; }, "field 'artifact.uri' must be file://"},
      {"NUL in uri", [](json& b) { b["artifact"]["uri"] = std::string("file:///flows/a\0/../x", 22); }, "'artifact.uri' must not contain NUL"},
      {"dot-dot uri", [](json& b) { b["artifact"]["uri"] = "file:///flows/../etc/passwd"; }, "'artifact.uri' must not contain a '.' or '..'"},
      {"long uri", [](json& b) { b["artifact"]["uri"] = "file:///" + std::string(5000, 'a'); }, "artifact.uri"},
      {"s3 without key", [](json& b) { b["artifact"]["uri"] = "s3://bucket"; }, "artifact.uri"},
      {"tasks not array", [](json& b) { b["tasks"] = "x"; }, "tasks"},
      {"duplicate task", [](json& b) { b["tasks"].push_back({{"name", "a"}}); }, "repeats"},
      {"edge to unknown", [](json& b) { b["edges"].push_back({{"from", "a"}, {"to", "z"}}); }, "unknown task"},
      {"cycle", [](json& b) { b["edges"].push_back({{"from", "c"}, {"to", "a"}}); }, "cycle"},
      {"self loop", [](json& b) { b["edges"].push_back({{"from", "b"}, {"to", "b"}}); }, "cycle"},
      {"bad param type", [](json& b) { b["parameters"][0]["type"] = "decimal"; }, "type"},
      {"default type mismatch", [](json& b) { b["parameters"][0]["default"] = "ten"; }, "default"},
      {"duplicate param", [](json& b) { b["parameters"].push_back({{"name", "rows"}}); }, "repeats"},
      {"bad run_config type", [](json& b) { b["run_config"]["type"] = "k8s"; }, "run_config.type"},
      {"bad env", [](json& b) { b["run_config"]["env"]["K"] = 1; }, "env"},
      {"labels not strings", [](json& b) { b["labels"] = json::array({1}); }, "labels"},
      {"bad schedule type", [](json& b) { b["schedule"]["type"] = "weekly"; }, "schedule.type"},
      {"cron missing", [](json& b) { b["schedule"].erase("cron"); }, "schedule.cron"},
      {"bad interval", [](json& b) { b["schedule"] = {{"type", "interval"}, {"interval_seconds", 0}}; }, "interval_seconds"},
      {"bad catchup", [](json& b) { b["schedule"]["catchup"] = "some"; }, "catchup"},
      {"negative retries", [](json& b) { b["max_run_retries"] = -1; }, "max_run_retries"},
      {"not an object", [](json& b) { b = json::array(); }, "object"},
  };
  for (const auto& c : cases) {
    json b = base_flow();
    c.edit(b);
    auto r = parse_flow_registration(b);
    ASSERT_FALSE(r.is_ok()) << c.what;
    EXPECT_EQ(r.status().code(), StatusCode::kUnprocessable) << c.what;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.what;
  }
}

TEST(ApiJsonTest, ParameterChecks) {
  json desc = base_flow();
  EXPECT_TRUE(check_parameters(desc, {{"day", "mon"}}).is_ok());
  EXPECT_TRUE(check_parameters(desc, {{"day", "mon"}, {"rows", 5}}).is_ok());
  EXPECT_THAT(check_parameters(desc, json::object()).message(), HasSubstr("missing required parameter 'day'"));
  EXPECT_THAT(check_parameters(desc, {{"day", "x"}, {"nope", 1}}).message(), HasSubstr("unknown parameter 'nope'"));
  EXPECT_THAT(check_parameters(desc, {{"day", "x"}, {"rows", 1.5}}).message(), HasSubstr("type int"));
  EXPECT_THAT(check_parameters(json::object(), {{"x", 1}}).message(), HasSubstr("declares no parameters"));
  EXPECT_TRUE(check_parameters(json::object(), json::object()).is_ok());
}

TEST(ApiJsonTest, FlowRunCreate) {
  auto a = parse_flow_run_create({{"flow_id", "f"}, {"labels", {"x"}}, {"scheduled_start_time", "2026-01-01T00:00:00Z"}});
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(*a->flow_id, "f");
  EXPECT_EQ(a->labels->size(), 1u);
  EXPECT_EQ(format_rfc3339(*a->scheduled_start_time), "2026-01-01T00:00:00.000Z");
  auto b = parse_flow_run_create({{"project", "p"}, {"flow", "f"}});
  ASSERT_TRUE(b.is_ok());
  EXPECT_FALSE(b->labels.has_value());  // inherit
  EXPECT_FALSE(parse_flow_run_create(json::object()).is_ok());
  EXPECT_FALSE(parse_flow_run_create({{"project", "p"}}).is_ok());
  EXPECT_FALSE(parse_flow_run_create({{"flow_id", "f"}, {"project", "p"}, {"flow", "x"}}).is_ok());
  EXPECT_FALSE(parse_flow_run_create({{"flow_id", "f"}, {"parameters", json::array()}}).is_ok());
  EXPECT_FALSE(parse_flow_run_create({{"flow_id", "f"}, {"scheduled_start_time", "tomorrow"}}).is_ok());
  // Found by the fuzzer: malformed times must be refused, not parsed into garbage.
  for (const char* bad : {"2026-01-01T00:00=:00Z", "2026-01-01T00:00:00", "2026-1-01T00:00:00Z",
                          "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00ZZ",
                          "1013-01-01T06:00:00+01:00", "9999-01-01T00:00:00Z"})
    EXPECT_FALSE(parse_flow_run_create({{"flow_id", "f"}, {"scheduled_start_time", bad}}).is_ok()) << bad;
  for (const char* good : {"2026-01-01T00:00:00Z", "2026-01-01 00:00:00.123456Z", "2026-01-01T01:00:00+01:00"})
    EXPECT_TRUE(parse_flow_run_create({{"flow_id", "f"}, {"scheduled_start_time", good}}).is_ok()) << good;
}

TEST(ApiJsonTest, StateChange) {
  auto s = parse_state_change({{"state", "Running"}, {"expected_version", 3}});
  ASSERT_TRUE(s.is_ok());
  // One spelling: lower-case names are refused, naming the accepted one.
  auto lower = parse_state_change({{"state", "success"}});
  ASSERT_FALSE(lower.is_ok());
  EXPECT_EQ(lower.status().code(), StatusCode::kUnprocessable);
  EXPECT_THAT(lower.status().message(), HasSubstr("must be spelled 'Success'"));
  EXPECT_THAT(parse_state_change({{"state", "RUNNING"}}).status().message(), HasSubstr("'Running'"));
  auto batch = parse_task_run_batch(json::array({{{"flow_run_id", "r"}, {"task", "a"}, {"state", "success"}}}),
                                    SysTime{});
  ASSERT_FALSE(batch.is_ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kUnprocessable);
  EXPECT_THAT(batch.status().message(), HasSubstr("[0]"));
  EXPECT_THAT(batch.status().message(), HasSubstr("must be spelled 'Success'"));
  EXPECT_EQ(s->state, State::kRunning);
  EXPECT_EQ(*s->expected_version, 3);
  EXPECT_FALSE(parse_state_change({{"state", "Done"}}).is_ok());
  EXPECT_FALSE(parse_state_change(json::object()).is_ok());
  EXPECT_FALSE(parse_state_change({{"state", "Running"}, {"expected_version", "3"}}).is_ok());
  EXPECT_FALSE(parse_state_change({{"state", "Running"}, {"expected_version", -1}}).is_ok());
}

TEST(ApiJsonTest, Batches) {
  SysTime now = from_unix_ms(1000);
  auto t = parse_task_run_batch(json::parse(R"([{"flow_run_id":"r","task":"a","state":"Success","map_index":2,"attempts":1}])"), now);
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ((*t)[0].map_index, 2);
  EXPECT_EQ((*t)[0].timestamp, now);
  EXPECT_FALSE(parse_task_run_batch(json::parse(R"([{"flow_run_id":"r","state":"Success"}])"), now).is_ok());
  EXPECT_FALSE(parse_task_run_batch(json::parse(R"([{"flow_run_id":"r","task":"a","state":"Nope"}])"), now).is_ok());
  EXPECT_FALSE(parse_task_run_batch(json::parse(R"({"x":1})"), now).is_ok());
  // A range of alike mapped task runs, with the time they first ran.
  auto range = parse_task_run_batch(json::parse(R"([{"flow_run_id":"r","task":"m","state":"Success","map_index":10,
      "map_count":500,"start_time":"2026-11-28T10:00:00.250Z"}])"), now);
  ASSERT_TRUE(range.is_ok()) << range.status().to_string();
  EXPECT_EQ((*range)[0].map_count, 500);
  EXPECT_EQ((*range)[0].start_time, parse_rfc3339("2026-11-28T10:00:00.250Z"));
  EXPECT_EQ((*t)[0].map_count, 1);
  EXPECT_EQ((*t)[0].start_time, std::nullopt);
  EXPECT_EQ((*t)[0].next_start_time, std::nullopt);
  // A Retrying state says when the next attempt starts; no other state may.
  auto retrying = parse_task_run_batch(json::parse(R"J([{"flow_run_id":"r","task":"a","state":"Retrying",
      "attempts":1,"message":"503 from sensor API (retry 1/3 in 1s)","next_start_time":"2026-11-28T10:00:01.250Z"}])J"),
                                       now);
  ASSERT_TRUE(retrying.is_ok()) << retrying.status().to_string();
  EXPECT_EQ((*retrying)[0].next_start_time, parse_rfc3339("2026-11-28T10:00:01.250Z"));
  auto not_retrying = parse_task_run_batch(
      json::parse(R"([{"flow_run_id":"r","task":"a","state":"Success","next_start_time":"2026-11-28T10:00:01Z"}])"), now);
  ASSERT_FALSE(not_retrying.is_ok());
  EXPECT_NE(not_retrying.status().message().find("[0].next_start_time"), std::string::npos)
      << not_retrying.status().message();
  EXPECT_FALSE(parse_task_run_batch(
                   json::parse(R"([{"flow_run_id":"r","task":"a","state":"Retrying","next_start_time":"soon"}])"), now)
                   .is_ok());
  // The flow run's attempt that sends an item: absent means the run's current one.
  auto attempt = parse_task_run_batch(
      json::parse(R"([{"flow_run_id":"r","task":"a","state":"Running","run_attempt":2}])"), now);
  ASSERT_TRUE(attempt.is_ok()) << attempt.status().to_string();
  EXPECT_EQ((*attempt)[0].run_attempt, 2);
  EXPECT_EQ((*t)[0].run_attempt, std::nullopt);
  EXPECT_FALSE(parse_task_run_batch(
                   json::parse(R"([{"flow_run_id":"r","task":"a","state":"Running","run_attempt":0}])"), now)
                   .is_ok());
  auto logs = parse_log_batch(
      json::parse(R"([{"flow_run_id":"r","message":"m","run_attempt":3},{"flow_run_id":"r","message":"n"}])"), now);
  ASSERT_TRUE(logs.is_ok()) << logs.status().to_string();
  EXPECT_EQ((*logs)[0].run_attempt, 3);
  EXPECT_EQ((*logs)[1].run_attempt, std::nullopt);
  for (const char* bad : {R"([{"flow_run_id":"r","message":"m","run_attempt":"2"}])",
                          R"([{"flow_run_id":"r","message":"m","run_attempt":1.5}])",
                          R"([{"flow_run_id":"r","message":"m","run_attempt":-1}])",
                          R"([{"flow_run_id":"r","message":"m","run_attempt":1000001}])"}) {
    auto b = parse_log_batch(json::parse(bad), now);
    ASSERT_FALSE(b.is_ok()) << bad;
    EXPECT_NE(b.status().message().find("[0].run_attempt"), std::string::npos) << b.status().message();
  }
  for (const char* bad : {R"([{"flow_run_id":"r","task":"m","state":"Success","map_count":2}])",
                          R"([{"flow_run_id":"r","task":"m","state":"Success","map_index":0,"map_count":0}])",
                          R"([{"flow_run_id":"r","task":"m","state":"Success","map_index":999999,"map_count":5}])",
                          R"([{"flow_run_id":"r","task":"m","state":"Success","map_index":0,"map_count":"3"}])",
                          R"([{"flow_run_id":"r","task":"m","state":"Success","start_time":"yesterday"}])"}) {
    auto r = parse_task_run_batch(json::parse(bad), now);
    EXPECT_FALSE(r.is_ok()) << bad;
    EXPECT_THAT(r.status().message(), ::testing::AnyOf(HasSubstr("map_count"), HasSubstr("start_time"))) << bad;
  }
  // The probe's memory bomb: map_count 10,000,000 (and 3000 with a 64 KiB message).
  auto bomb = parse_task_run_batch(
      json::array({{{"flow_run_id", "r"}, {"task", "m"}, {"state", "Running"}, {"map_index", 0}, {"map_count", 10000000}}}),
      now);
  ASSERT_FALSE(bomb.is_ok());
  EXPECT_EQ(bomb.status().code(), StatusCode::kUnprocessable);
  EXPECT_THAT(bomb.status().message(), HasSubstr("map_count' must be an integer from 1 to 1000000"));
  EXPECT_TRUE(parse_task_run_batch(json::array({{{"flow_run_id", "r"}, {"task", "m"}, {"state", "Running"},
                                                 {"map_index", 0}, {"map_count", 1000000}}}),
                                   now)
                  .is_ok());
  std::string long_message(65536, 'x');
  auto cut = parse_task_run_batch(json::array({{{"flow_run_id", "r"}, {"task", "m"}, {"state", "Running"},
                                                {"map_index", 0}, {"map_count", 3000}, {"message", long_message}}}),
                                  now);
  ASSERT_TRUE(cut.is_ok()) << cut.status().to_string();
  EXPECT_EQ((*cut)[0].message.size(), kMaxMessage);
  EXPECT_THAT((*cut)[0].message, ::testing::EndsWith("[truncated from 65536 bytes]"));
  auto log_cut = parse_log_batch(json::array({{{"flow_run_id", "r"}, {"message", long_message}}}), now);
  ASSERT_TRUE(log_cut.is_ok());
  EXPECT_LE((*log_cut)[0].message.size(), kMaxMessage);
  auto state_cut = parse_state_change({{"state", "Failed"}, {"message", long_message}});
  ASSERT_TRUE(state_cut.is_ok());
  EXPECT_LE(state_cut->message.size(), kMaxMessage);
  // Truncation never splits a UTF-8 sequence.
  std::string euros;
  while (euros.size() < 20000) euros += "\u20ac";  // 3 bytes each
  std::string b = bound_message(euros);
  EXPECT_LE(b.size(), kMaxMessage);
  EXPECT_EQ(b.substr(0, b.find("\u2026")).size() % 3, 0u);
  EXPECT_EQ(bound_message("short"), "short");

  json big = json::array();
  for (size_t i = 0; i <= kMaxBatch; ++i) big.push_back({{"flow_run_id", "r"}, {"message", "m"}});
  EXPECT_THAT(parse_log_batch(big, now).status().message(), HasSubstr("at most"));
  auto l = parse_log_batch(json::parse(R"([{"flow_run_id":"r","message":"m","level":"warn"}])"), now);
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ((*l)[0].level, "WARNING");
  EXPECT_FALSE(parse_log_batch(json::parse(R"([{"flow_run_id":"r","message":"m","level":"loud"}])"), now).is_ok());
  EXPECT_FALSE(parse_log_batch(json::parse(R"([{"flow_run_id":"r"}])"), now).is_ok());
}

TEST(ApiJsonTest, ClaimsTokensAndQueryIntegers) {
  auto c = parse_claim(json::object(), Millis(60000));
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->max, 1);
  EXPECT_EQ(c->wait.count(), 0);
  EXPECT_FALSE(parse_claim({{"max", 0}}, Millis(60000)).is_ok());
  EXPECT_FALSE(parse_claim({{"wait_ms", 60001}}, Millis(60000)).is_ok());
  EXPECT_FALSE(c->types.has_value());
  auto typed = parse_claim({{"types", {"local", "docker", "local"}}}, Millis(60000));
  ASSERT_TRUE(typed.is_ok());
  EXPECT_EQ(*typed->types, (std::vector<std::string>{"docker", "local"}));  // sorted, distinct
  for (const json& bad : {json("local"), json::array(), json::array({"k8s"}), json::array({nullptr}),
                          json(std::vector<std::string>(17, "local"))}) {
    auto r = parse_claim({{"types", bad}}, Millis(60000));
    EXPECT_EQ(r.status().code(), StatusCode::kUnprocessable) << bad.dump();
    EXPECT_NE(r.status().message().find("types"), std::string::npos) << r.status().message();
  }
  auto infra = parse_infrastructure({{"kind", "ecs-task"}, {"id", "arn:aws:ecs:eu-west-1:123456789012:task/c/0f"}});
  ASSERT_TRUE(infra.is_ok()) << infra.status().to_string();
  EXPECT_EQ(infra->kind, "ecs-task");
  EXPECT_EQ(infra->id, "arn:aws:ecs:eu-west-1:123456789012:task/c/0f");
  struct Bad {
    json body;
    const char* names;
  };
  for (const auto& b : std::vector<Bad>{{json::object(), "'kind'"},
                                        {{{"kind", "process"}}, "'id'"},
                                        {{{"kind", "proc ess"}, {"id", "1"}}, "'kind'"},
                                        {{{"kind", std::string(33, 'a')}, {"id", "1"}}, "'kind'"},
                                        {{{"kind", "process"}, {"id", std::string(1025, 'x')}}, "'id'"},
                                        {{{"kind", "process"}, {"id", "a\x7f"}}, "'id'"},
                                        {{{"kind", "process"}, {"id", 7}}, "'id'"},
                                        {json::array(), "object"}}) {
    auto r = parse_infrastructure(b.body);
    EXPECT_EQ(r.status().code(), StatusCode::kUnprocessable) << b.body.dump();
    EXPECT_NE(r.status().message().find(b.names), std::string::npos) << r.status().message();
  }
  SysTime now = from_unix_ms(0);
  auto t = parse_token_create({{"name", "n"}, {"scope", "runner"}, {"expires", "30d"}}, now);
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(*t->expires - now, std::chrono::hours(24 * 30));
  EXPECT_FALSE(parse_token_create({{"name", "n"}, {"scope", "run"}}, now).is_ok());
  EXPECT_FALSE(parse_token_create({{"name", "n"}, {"scope", "user"}, {"expires", "soon"}}, now).is_ok());
  EXPECT_FALSE(parse_token_create({{"name", "n"}, {"scope", "user"}, {"expires", "999999999999d"}}, now).is_ok());
  EXPECT_EQ(*parse_int_param(std::string("42"), "limit", 1, 100, 5), 42);
  EXPECT_EQ(*parse_int_param(std::nullopt, "limit", 1, 100, 5), 5);
  EXPECT_FALSE(parse_int_param(std::string("4x"), "limit", 1, 100, 5).is_ok());
  EXPECT_FALSE(parse_int_param(std::string("101"), "limit", 1, 100, 5).is_ok());
  EXPECT_FALSE(parse_int_param(std::string("99999999999999999999"), "after", 0, INT64_MAX, 0).is_ok());
}

}  // namespace
}  // namespace culvert::server

namespace culvert::server {
namespace {

TEST(ApiJsonTest, FlowRunTextEqualsTheJsonRendering) {
  store::FlowRun r;
  r.id = "id-1";
  r.flow_id = "f";
  r.project_id = "p";
  r.flow_name = "etl \"quoted\" \\ tab\t nl\n ctl\x01 ünï";
  r.flow_version = 3;
  r.parameters_json = R"({"b":[1,2],"a":"x"})";
  r.labels = {"a", "b\"c"};
  r.idempotency_key = "k";
  r.state = State::kCancelling;
  r.state_message = "m";
  r.version = 12;
  r.run_count = 2;
  r.agent_id = "ag";
  r.created = from_unix_ms(1767225600123);
  r.state_changed_at = from_unix_ms(1767225601000);
  r.scheduled_start_time = from_unix_ms(1767225600000);
  r.heartbeat_at = from_unix_ms(1767225605000);
  EXPECT_EQ(json::parse(flow_run_text(r)), to_json(r));
  r.run_config_json = R"({"type":"docker","image":"etl:1","env":{"K":"v \"q\""}})";
  r.run_config_type = "docker";
  r.infrastructure = store::Infrastructure{"container", "3f2a \"x\"", "ag", from_unix_ms(1767225606000)};
  EXPECT_EQ(json::parse(flow_run_text(r)), to_json(r));
  EXPECT_EQ(to_json(r)["infrastructure"]["kind"], "container");
  EXPECT_EQ(to_json(r)["run_config"]["image"], "etl:1");
  store::FlowRun empty;
  empty.parameters_json = "{}";
  EXPECT_EQ(json::parse(flow_run_text(empty)), to_json(empty));
  EXPECT_EQ(flow_run_text(empty), to_json(empty).dump());
}

}  // namespace
}  // namespace culvert::server
