// Decoding the server's answers: the server's own documents decode to the values it
// holds; every malformed answer is a Status naming the field, never an exception.
#include "client/responses.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace culvert::client {
namespace {

using json = nlohmann::json;

// A flow run exactly as the server renders one (src/server/api_json.cpp).
json server_run() {
  return json::parse(R"({"agent_id":null,"auto_scheduled":false,"created":"2026-12-01T09:00:00.000Z",
    "end_time":null,"flow_id":"f-1","flow_name":"etl","flow_version":3,"heartbeat_at":null,"id":"r-1",
    "idempotency_key":"k1","labels":["gpu","s3"],"parameters":{"rows":5},"project_id":"p-1","run_count":1,
    "scheduled_start_time":"2026-12-01T09:00:00.000Z","start_time":null,"state":"Scheduled",
    "state_changed_at":"2026-12-01T09:00:00.000Z","state_message":"created by admin","submitted_at":null,
    "version":1})");
}

TEST(Responses, DecodesTheServersFlowRun) {
  auto r = decode_flow_run(server_run());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->id, "r-1");
  EXPECT_EQ(r->state, State::kScheduled);
  EXPECT_EQ(r->flow_name, "etl");
  EXPECT_EQ(r->flow_version, 3);
  EXPECT_EQ(r->labels, (std::vector<std::string>{"gpu", "s3"}));
  EXPECT_EQ(r->parameters["rows"], 5);
  EXPECT_EQ(r->idempotency_key, "k1");
  EXPECT_FALSE(r->agent_id.has_value());
  EXPECT_FALSE(r->start_time.has_value());
  EXPECT_EQ(r->created, "2026-12-01T09:00:00.000Z");
  EXPECT_FALSE(r->infrastructure.has_value());

  json with = server_run();
  with["infrastructure"] = {{"kind", "container"}, {"id", "3f2a"}, {"agent_id", "a-1"},
                            {"reported_at", "2026-12-01T09:00:01.000Z"}};
  auto i = decode_flow_run(with);
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();
  ASSERT_TRUE(i->infrastructure.has_value());
  EXPECT_EQ(i->infrastructure->kind, "container");
  EXPECT_EQ(i->infrastructure->id, "3f2a");
  EXPECT_EQ(i->infrastructure->agent_id, "a-1");
  with["infrastructure"] = nullptr;  // not reported yet
  EXPECT_FALSE(decode_flow_run(with)->infrastructure.has_value());
}

// Each case: an answer and the text its error must contain.
struct Malformed {
  json answer;
  std::string want;
};

json run_with(const char* key, json value) {
  json r = server_run();
  r[key] = std::move(value);
  return r;
}

TEST(Responses, MalformedFlowRunsAreStatusesNamingTheField) {
  json no_id = server_run();
  no_id.erase("id");
  const Malformed cases[] = {
      {json::array(), "the answer must be an object, not an array"},
      {json("text"), "the answer must be an object, not a string"},
      {json(nullptr), "the answer must be an object, not null"},
      {no_id, "id is missing"},
      {run_with("id", nullptr), "id must not be null"},
      {run_with("id", 7), "id must be a string, not an integer"},
      {run_with("state", 3), "state must be a string, not an integer"},
      {run_with("state", "Sleeping"), "state is not a known state: 'Sleeping'"},
      {run_with("labels", "gpu"), "labels must be an array of strings, not a string"},
      {run_with("labels", json::array({"gpu", 1})), "labels[1] must be a string, not an integer"},
      {run_with("parameters", json::array()), "parameters must be an object, not an array"},
      {run_with("flow_version", "3"), "flow_version must be an integer, not a string"},
      {run_with("flow_version", 3.5), "flow_version must be an integer, not a number"},
      {run_with("version", 18446744073709551615ull), "version is out of range"},
      {run_with("auto_scheduled", "no"), "auto_scheduled must be a boolean, not a string"},
      {run_with("start_time", 17), "start_time must be a string, not an integer"},
      {run_with("infrastructure", "container"), "infrastructure must be an object, not a string"},
      {run_with("infrastructure", json{{"kind", "process"}}), "infrastructure.id is missing"},
      {run_with("infrastructure", json{{"kind", "process"}, {"id", 42}}), "infrastructure.id must be a string"},
  };
  for (const auto& c : cases) {
    auto r = decode_flow_run(c.answer);
    ASSERT_FALSE(r.is_ok()) << c.answer.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_NE(r.status().message().find("the server's answer is malformed: "), std::string::npos);
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << r.status().message();
  }
}

TEST(Responses, RunPagesAndTheirCursor) {
  json page = {{"runs", json::array({server_run(), server_run()})}, {"next_cursor", "1764579600000_r-1"}};
  auto p = decode_flow_run_page(page);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->runs.size(), 2u);
  EXPECT_EQ(p->next_cursor, "1764579600000_r-1");
  page["next_cursor"] = nullptr;
  EXPECT_FALSE(decode_flow_run_page(page)->next_cursor.has_value());
  page["next_cursor"] = "";
  EXPECT_FALSE(decode_flow_run_page(page)->next_cursor.has_value());

  json bad_item = {{"runs", json::array({server_run(), run_with("state", json::object())})}};
  const Malformed cases[] = {
      {json::array({server_run()}), "the answer must be an object, not an array"},
      {json::object(), "runs is missing"},
      {json{{"flow_runs", json::array()}}, "runs is missing"},
      {json{{"runs", json::object()}}, "runs must be an array, not an object"},
      {json{{"runs", json::array({1})}}, "runs[0] must be an object, not an integer"},
      {bad_item, "runs[1].state must be a string, not an object"},
      {json{{"runs", json::array()}, {"next_cursor", 12}}, "next_cursor must be a string, not an integer"},
  };
  for (const auto& c : cases) {
    auto r = decode_flow_run_page(c.answer);
    ASSERT_FALSE(r.is_ok()) << c.answer.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << r.status().message();
  }
}

TEST(Responses, AgentsStandAsTheServerSays) {
  json agents = json::parse(R"({"agents":[
    {"id":"a1","name":"box","type":"local","labels":["dev"],"created":"t","last_heartbeat":"t","health":"healthy"},
    {"id":"a2","name":"old","type":"docker","labels":[],"created":"t","last_heartbeat":null,"health":"unhealthy"},
    {"id":"a3","name":"gone","type":"local","labels":[],"created":"t","last_heartbeat":"t","health":"healthy",
     "status":"stopped"},
    {"id":"a4","name":"gone2","type":"local","labels":[],"health":"stopped"}]})");
  auto a = decode_agents(agents);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_EQ(a->size(), 4u);
  EXPECT_EQ((*a)[0].status, AgentStatus::kHealthy);
  EXPECT_EQ((*a)[0].last_heartbeat, "t");
  EXPECT_EQ((*a)[1].status, AgentStatus::kUnhealthy);
  EXPECT_FALSE((*a)[1].last_heartbeat.has_value());
  EXPECT_EQ((*a)[2].status, AgentStatus::kStopped);  // a stopped agent is never shown healthy
  EXPECT_EQ((*a)[3].status, AgentStatus::kStopped);
  EXPECT_STREQ(agent_status_name((*a)[2].status), "stopped");

  const Malformed cases[] = {
      {json{{"agents", json::array({{{"id", "a"}, {"health", "fine"}}})}}, "agents[0].health must be healthy, unhealthy or stopped"},
      {json{{"agents", json::array({{{"id", "a"}, {"health", true}}})}}, "agents[0].health must be a string, not a boolean"},
      {json{{"agents", json::array({{{"name", "a"}}})}}, "agents[0].id is missing"},
      {json{{"agents", "a1"}}, "agents must be an array, not a string"},
  };
  for (const auto& c : cases) {
    auto r = decode_agents(c.answer);
    ASSERT_FALSE(r.is_ok()) << c.answer.dump();
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << r.status().message();
  }
}

TEST(Responses, FlowsTheirSchedulesAndParameters) {
  json flow = json::parse(R"({"id":"f-1","project_id":"p-1","project":"p","name":"etl","version":2,"archived":false,
    "artifact":{"uri":"file:///d/etl","sha256":"ab"},"labels":["dev"],
    "schedule":{"type":"cron","cron":"0 6 * * *","timezone":"Europe/Berlin","parameters":{},"catchup":"skip","active":true},
    "schedule_active":false,"max_run_retries":0,"idempotency_key":null,"created":"t",
    "parameters":[{"name":"rows","type":"int","default":1000,"required":false},{"name":"day","type":"string","required":true}],
    "tasks":[{"name":"a"},{"name":"b"}]})");
  auto f = decode_flow(flow);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->project, "p");
  EXPECT_EQ(f->version, 2);
  EXPECT_EQ(f->artifact.uri, "file:///d/etl");
  ASSERT_TRUE(f->schedule.has_value());
  EXPECT_EQ(f->schedule->cron_text(), "0 6 * * *");
  EXPECT_FALSE(f->schedule_active);
  ASSERT_EQ(f->parameters.size(), 2u);
  EXPECT_EQ(f->parameters[0].default_value, json(1000));
  EXPECT_TRUE(f->parameters[1].required);
  EXPECT_EQ(f->task_count, 2u);

  auto with = [&](const char* key, json v) {
    json j = flow;
    j[key] = std::move(v);
    return j;
  };
  const Malformed cases[] = {
      {with("schedule", json{{"type", "cron"}, {"cron", "not cron"}}), "schedule is not a schedule"},
      {with("schedule", "0 6 * * *"), "schedule must be an object, not a string"},
      {with("artifact", json{{"uri", 5}}), "artifact.uri must be a string, not an integer"},
      {with("parameters", json::array({{{"type", "int"}}})), "parameters[0].name is missing"},
      {with("parameters", json::array({"rows"})), "parameters[0] must be an object, not a string"},
      {with("archived", 0), "archived must be a boolean, not an integer"},
      {with("tasks", json::object()), "tasks must be an array, not an object"},
      {json{{"flows", json::array({with("version", "2")})}}, "flows[0].version must be an integer, not a string"},
  };
  for (const auto& c : cases) {
    auto r = c.answer.contains("flows") ? decode_flows(c.answer).status() : decode_flow(c.answer).status();
    ASSERT_FALSE(r.is_ok()) << c.answer.dump();
    EXPECT_NE(r.message().find(c.want), std::string::npos) << r.message();
  }
}

TEST(Responses, LogsHistoryTaskRunsTokensProjects) {
  auto logs = decode_log_page(json::parse(
      R"({"logs":[{"id":7,"flow_run_id":"r","task_run_id":null,"task":"extract","map_index":-1,"level":"INFO",
          "message":"hi","timestamp":"t"}],"next_cursor":"7","flow_run_state":"Running"})"));
  ASSERT_TRUE(logs.is_ok()) << logs.status().to_string();
  EXPECT_EQ(logs->logs[0].id, 7);
  EXPECT_EQ(logs->logs[0].task, "extract");
  EXPECT_EQ(logs->next_cursor, "7");
  EXPECT_EQ(logs->flow_run_state, State::kRunning);

  auto history = decode_history(json::parse(
      R"({"history":[{"id":1,"flow_run_id":"r","from_state":null,"state":"Scheduled","message":"","version":1,
          "forced":false,"agent_id":null,"timestamp":"t"}]})"));
  ASSERT_TRUE(history.is_ok()) << history.status().to_string();
  EXPECT_FALSE((*history)[0].from_state.has_value());

  auto tasks = decode_task_runs(json::parse(
      R"({"task_runs":[{"id":"t1","flow_run_id":"r","task":"a","map_index":2,"state":"Retrying","message":"503",
          "attempts":2,"created":"t","updated":"t","start_time":null,"end_time":null}]})"));
  ASSERT_TRUE(tasks.is_ok()) << tasks.status().to_string();
  EXPECT_EQ((*tasks)[0].state, State::kRetrying);
  EXPECT_EQ((*tasks)[0].map_index, 2);

  auto token = decode_token(json::parse(
      R"({"id":"k1","name":"ci","scope":"user","flow_run_id":null,"created":"t","expires":null,"revoked":false,
          "revoked_at":null,"token":"cvt_secret"})"));
  ASSERT_TRUE(token.is_ok()) << token.status().to_string();
  EXPECT_EQ(token->token, "cvt_secret");

  auto projects = decode_projects(json::parse(R"({"projects":[{"id":"p","name":"etl","description":"","created":"t"}]})"));
  ASSERT_TRUE(projects.is_ok()) << projects.status().to_string();
  EXPECT_EQ((*projects)[0].name, "etl");

  const Malformed log_cases[] = {
      {json{{"logs", json::array({{{"message", "x"}}})}}, "logs[0].id is missing"},
      {json{{"logs", json::array({{{"id", "7"}}})}}, "logs[0].id must be an integer, not a string"},
      {json{{"logs", json::array()}, {"flow_run_state", "Done"}}, "flow_run_state is not a known state"},
      {json{{"logs", json::array()}, {"next_cursor", 7}}, "next_cursor must be a string, not an integer"},
  };
  for (const auto& c : log_cases) {
    auto r = decode_log_page(c.answer);
    ASSERT_FALSE(r.is_ok()) << c.answer.dump();
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << r.status().message();
  }
  EXPECT_NE(decode_history(json{{"history", json::array({{{"version", 1}}})}}).status().message().find("history[0].state is missing"),
            std::string::npos);
  EXPECT_NE(decode_task_runs(json{{"task_runs", json::array({{{"task", "a"}, {"attempts", "2"}}})}})
                .status().message().find("task_runs[0].attempts must be an integer"),
            std::string::npos);
  EXPECT_NE(decode_tokens(json{{"tokens", json::array({{{"id", "k"}, {"revoked", "no"}}})}})
                .status().message().find("tokens[0].revoked must be a boolean"),
            std::string::npos);
  EXPECT_NE(decode_projects(json{{"projects", nullptr}}).status().message().find("projects must not be null"),
            std::string::npos);
}

// A run's attempts, and the attempt of each log line and task run (1 when an older
// server does not say).
TEST(Responses, AttemptsAndTheAttemptOfEachLineAndTaskRun) {
  auto attempts = decode_attempts(json::parse(
      R"({"attempts":[{"attempt":1,"state":"Failed","message":"boom","agent_id":"a1","start_time":"s1",
          "end_time":"e1"},{"attempt":2,"state":"Running","message":"","agent_id":null,"start_time":"s2",
          "end_time":null}]})"));
  ASSERT_TRUE(attempts.is_ok()) << attempts.status().to_string();
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].attempt, 1);
  EXPECT_EQ((*attempts)[0].state, State::kFailed);
  EXPECT_EQ((*attempts)[0].end_time, "e1");
  EXPECT_EQ((*attempts)[1].start_time, "s2");
  EXPECT_FALSE((*attempts)[1].end_time.has_value());
  const Malformed cases[] = {
      {json{{"attempts", json::array({{{"state", "Failed"}}})}}, "attempts[0].attempt is missing"},
      {json{{"attempts", json::array({{{"attempt", "1"}}})}}, "attempts[0].attempt must be an integer"},
      {json{{"attempts", json::array({{{"attempt", 1}, {"state", "Done"}}})}}, "attempts[0].state is not a known state"},
      {json{{"attempts", json::array({{{"attempt", 1}, {"end_time", 5}}})}}, "attempts[0].end_time must be a string"},
      {json::object(), "attempts is missing"},
  };
  for (const auto& c : cases) {
    auto r = decode_attempts(c.answer);
    ASSERT_FALSE(r.is_ok()) << c.answer.dump();
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << r.status().message();
  }
  auto logs = decode_log_page(json::parse(R"({"logs":[{"id":1,"run_attempt":2},{"id":2}]})"));
  ASSERT_TRUE(logs.is_ok()) << logs.status().to_string();
  EXPECT_EQ(logs->logs[0].run_attempt, 2);
  EXPECT_EQ(logs->logs[1].run_attempt, 1);
  EXPECT_NE(decode_log_page(json::parse(R"({"logs":[{"id":1,"run_attempt":"2"}]})"))
                .status().message().find("logs[0].run_attempt must be an integer"),
            std::string::npos);
  auto tasks = decode_task_runs(json::parse(R"({"task_runs":[{"task":"a","run_attempt":3}]})"));
  ASSERT_TRUE(tasks.is_ok()) << tasks.status().to_string();
  EXPECT_EQ((*tasks)[0].run_attempt, 3);
}

}  // namespace
}  // namespace culvert::client
