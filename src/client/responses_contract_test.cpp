// The client's decoders read what the server writes: every document is rendered by the
// server's own renderers (server/api_json.hpp) from stored values and decoded back, and
// each field the client reads comes back with its value. A field renamed on one side
// only fails here.
#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "client/responses.hpp"
#include "core/timefmt.hpp"
#include "server/api_json.hpp"

namespace culvert::client {
namespace {

using json = nlohmann::json;

const SysTime kT0 = SysTime(std::chrono::seconds(1798761600));  // 2027-01-01T00:00:00Z
const SysTime kT1 = kT0 + std::chrono::seconds(5);

store::FlowRun stored_run() {
  store::FlowRun r;
  r.id = "r-1";
  r.flow_id = "f-1";
  r.project_id = "p-1";
  r.flow_name = "etl";
  r.flow_version = 4;
  r.parameters_json = R"({"rows":5,"day":"mon"})";
  r.labels = {"gpu", "s3"};
  r.idempotency_key = "k1";
  r.auto_scheduled = true;
  r.state = State::kRunning;
  r.state_message = "started";
  r.version = 3;
  r.run_count = 1;
  r.agent_id = "a-1";
  r.created = kT0;
  r.state_changed_at = kT1;
  r.scheduled_start_time = kT0;
  r.submitted_at = kT0;
  r.start_time = kT1;
  r.heartbeat_at = kT1;
  r.run_config_json = R"({"type":"docker","image":"etl:1"})";
  r.run_config_type = "docker";
  r.infrastructure = store::Infrastructure{"container", "3f2a9c", "a-1", kT1};
  return r;
}

void expect_run(const FlowRun& d, const store::FlowRun& r) {
  EXPECT_EQ(d.id, r.id);
  EXPECT_EQ(d.flow_id, r.flow_id);
  EXPECT_EQ(d.project_id, r.project_id);
  EXPECT_EQ(d.flow_name, r.flow_name);
  EXPECT_EQ(d.flow_version, r.flow_version);
  EXPECT_EQ(d.parameters, json::parse(r.parameters_json));
  EXPECT_EQ(d.labels, r.labels);
  EXPECT_EQ(d.idempotency_key, r.idempotency_key);
  EXPECT_EQ(d.auto_scheduled, r.auto_scheduled);
  EXPECT_EQ(d.state, r.state);
  EXPECT_EQ(d.state_message, r.state_message);
  EXPECT_EQ(d.version, r.version);
  EXPECT_EQ(d.run_count, r.run_count);
  EXPECT_EQ(d.agent_id, r.agent_id);
  EXPECT_EQ(d.created, format_rfc3339(r.created));
  EXPECT_EQ(d.state_changed_at, format_rfc3339(r.state_changed_at));
  EXPECT_EQ(d.scheduled_start_time, format_rfc3339(r.scheduled_start_time));
  EXPECT_EQ(d.submitted_at, format_rfc3339(*r.submitted_at));
  EXPECT_EQ(d.start_time, format_rfc3339(*r.start_time));
  EXPECT_FALSE(d.end_time.has_value());
  EXPECT_EQ(d.heartbeat_at, format_rfc3339(*r.heartbeat_at));
  EXPECT_EQ(d.run_config, json::parse(r.run_config_json));
  EXPECT_EQ(d.run_config_type, r.run_config_type);
  ASSERT_TRUE(d.infrastructure.has_value());
  EXPECT_EQ(d.infrastructure->kind, r.infrastructure->kind);
  EXPECT_EQ(d.infrastructure->id, r.infrastructure->id);
  EXPECT_EQ(d.infrastructure->agent_id, r.infrastructure->agent_id);
  EXPECT_EQ(d.infrastructure->reported_at, format_rfc3339(r.infrastructure->reported_at));
}

TEST(ResponsesContract, FlowRunsAsBothServerRenderersWriteThem) {
  store::FlowRun r = stored_run();
  auto a = decode_flow_run(server::to_json(r));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  expect_run(*a, r);
  auto b = decode_flow_run(json::parse(server::flow_run_text(r)));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  expect_run(*b, r);
  r.agent_id.reset();
  r.idempotency_key.reset();
  r.infrastructure.reset();
  r.run_config_json.clear();
  r.run_config_type.clear();
  for (const json& doc : {json::parse(server::flow_run_text(r)), server::to_json(r)}) {
    auto c = decode_flow_run(doc);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_FALSE(c->agent_id.has_value());
    EXPECT_FALSE(c->idempotency_key.has_value());
    EXPECT_FALSE(c->infrastructure.has_value());
    EXPECT_FALSE(c->run_config.has_value());
    EXPECT_EQ(c->run_config_type, "");
  }
}

// A child run's `child` from both renderers, and a parent's children listing.
TEST(ResponsesContract, ChildRunsAndTheirListing) {
  store::FlowRun r = stored_run();
  r.child = store::ChildRun{"parent-1", "score", 3, 30, 40, 2};
  for (const json& doc : {json::parse(server::flow_run_text(r)), server::to_json(r)}) {
    auto d = decode_flow_run(doc);
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    ASSERT_TRUE(d->child.has_value()) << doc.dump();
    EXPECT_EQ(d->child->parent_run_id, "parent-1");
    EXPECT_EQ(d->child->task, "score");
    EXPECT_EQ(d->child->chunk, 3);
    EXPECT_EQ(d->child->start, 30);
    EXPECT_EQ(d->child->end, 40);
    EXPECT_EQ(d->child->parent_attempt, 2);
  }
  r.child.reset();
  EXPECT_FALSE(decode_flow_run(json::parse(server::flow_run_text(r)))->child.has_value());
  store::ChildRunEntry e{"c-1", store::ChildRun{"parent-1", "score", 3, 30, 40, 2}, State::kRunning, "going", 1,
                         store::Infrastructure{"ecs-task", "arn:aws:ecs:task/1", "a-1", kT1}};
  json listing = {{"children", json::array({server::to_json(e)})},
                  {"count", 7},
                  {"final", 5},
                  {"by_state", {{"Running", 2}, {"Success", 5}}},
                  {"parent_attempt", 2}};
  auto l = decode_child_runs(listing);
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  ASSERT_EQ(l->children.size(), 1u);
  const auto& c = l->children[0];
  EXPECT_EQ(c.id, "c-1");
  EXPECT_EQ(c.chunk, 3);
  EXPECT_EQ(c.start, 30);
  EXPECT_EQ(c.end, 40);
  EXPECT_EQ(c.task, "score");
  EXPECT_EQ(c.parent_attempt, 2);
  EXPECT_EQ(c.state, State::kRunning);
  EXPECT_EQ(c.state_message, "going");
  EXPECT_EQ(c.run_count, 1);
  ASSERT_TRUE(c.infrastructure.has_value());
  EXPECT_EQ(c.infrastructure->id, "arn:aws:ecs:task/1");
  EXPECT_EQ(l->count, 7);
  EXPECT_EQ(l->final_count, 5);
  EXPECT_EQ(l->by_state, (StateCounts{{State::kRunning, 2}, {State::kSuccess, 5}}));
  EXPECT_FALSE(decode_child_runs({{"children", json::array({{{"id", "x"}, {"state", "Nope"}}})}}).is_ok());
}

TEST(ResponsesContract, ProjectsFlowsAgentsTokens) {
  store::Project p{"p-1", "etl", "nightly", kT0};
  auto dp = decode_project(server::to_json(p));
  ASSERT_TRUE(dp.is_ok()) << dp.status().to_string();
  EXPECT_EQ(dp->id, "p-1");
  EXPECT_EQ(dp->name, "etl");
  EXPECT_EQ(dp->description, "nightly");
  EXPECT_EQ(dp->created, format_rfc3339(kT0));

  store::Flow f;
  f.id = "f-1";
  f.project_id = "p-1";
  f.project_name = "etl-project";
  f.name = "etl";
  f.version = 2;
  f.artifact_uri = "file:///flows/etl/ab";
  f.artifact_sha256 = std::string(64, 'a');
  f.description_json = R"({"name":"etl","tasks":[{"name":"a"},{"name":"b"}],
    "parameters":[{"name":"rows","type":"int","default":10,"required":false}]})";
  f.labels = {"dev"};
  f.schedule_json = R"({"type":"cron","cron":"0 6 * * *","timezone":"Europe/Berlin","parameters":{},
    "catchup":"skip","active":true})";
  f.schedule_active = true;
  f.created = kT0;
  for (bool full : {true, false}) {
    auto df = decode_flow(server::to_json(f, full));
    ASSERT_TRUE(df.is_ok()) << df.status().to_string();
    EXPECT_EQ(df->id, f.id);
    EXPECT_EQ(df->project_id, f.project_id);
    EXPECT_EQ(df->project, f.project_name);
    EXPECT_EQ(df->name, f.name);
    EXPECT_EQ(df->version, f.version);
    EXPECT_EQ(df->archived, f.archived);
    EXPECT_EQ(df->artifact.uri, f.artifact_uri);
    EXPECT_EQ(df->artifact.sha256, f.artifact_sha256);
    EXPECT_EQ(df->labels, f.labels);
    ASSERT_TRUE(df->schedule.has_value());
    EXPECT_EQ(df->schedule->cron_text(), "0 6 * * *");
    EXPECT_TRUE(df->schedule_active);
    ASSERT_EQ(df->parameters.size(), 1u);
    EXPECT_EQ(df->parameters[0].default_value, json(10));
    EXPECT_EQ(df->created, format_rfc3339(kT0));
    if (full) EXPECT_EQ(df->task_count, 2u);
    else EXPECT_FALSE(df->task_count.has_value());
  }

  store::Agent ag{"a-1", "box", "docker", {"dev", "gpu"}, kT0, kT1};
  for (bool healthy : {true, false}) {
    auto da = decode_agents(json{{"agents", json::array({server::to_json(ag, healthy)})}});
    ASSERT_TRUE(da.is_ok()) << da.status().to_string();
    EXPECT_EQ((*da)[0].id, ag.id);
    EXPECT_EQ((*da)[0].name, ag.name);
    EXPECT_EQ((*da)[0].type, ag.type);
    EXPECT_EQ((*da)[0].labels, ag.labels);
    EXPECT_EQ((*da)[0].last_heartbeat, format_rfc3339(kT1));
    EXPECT_EQ((*da)[0].status, healthy ? AgentStatus::kHealthy : AgentStatus::kUnhealthy);
    EXPECT_EQ((*da)[0].run_config_types, std::vector<std::string>{"docker"});
    EXPECT_FALSE((*da)[0].max_concurrent.has_value());  // it did not say
  }
  ag.max_concurrent = 6;
  EXPECT_EQ(decode_agents(json{{"agents", json::array({server::to_json(ag, true)})}})->at(0).max_concurrent, 6);
  ag.max_concurrent.reset();
  ag.run_config_types = {"docker", "local"};
  ag.stopped_at = kT1;
  auto stopped = decode_agents(json{{"agents", json::array({server::to_json(ag, true)})}});
  ASSERT_TRUE(stopped.is_ok()) << stopped.status().to_string();
  EXPECT_EQ((*stopped)[0].status, AgentStatus::kStopped);  // never healthy once stopped
  EXPECT_EQ((*stopped)[0].run_config_types, ag.run_config_types);

  store::Token t{"k-1", "ci", "user", std::nullopt, kT0, kT1, std::nullopt};
  auto dt = decode_token(server::to_json(t));
  ASSERT_TRUE(dt.is_ok()) << dt.status().to_string();
  EXPECT_EQ(dt->name, "ci");
  EXPECT_EQ(dt->scope, "user");
  EXPECT_EQ(dt->created, format_rfc3339(kT0));
  EXPECT_EQ(dt->expires, format_rfc3339(kT1));
  EXPECT_FALSE(dt->revoked);
  t.revoked_at = kT1;
  EXPECT_TRUE(decode_token(server::to_json(t))->revoked);
}

TEST(ResponsesContract, HistoryTaskRunsAndLogs) {
  store::StateChange c;
  c.id = 9;
  c.flow_run_id = "r-1";
  c.from_state = State::kPending;
  c.state = State::kSubmitted;
  c.message = "claimed";
  c.version = 2;
  c.agent_id = "a-1";
  c.timestamp = kT0;
  auto h = decode_history(json{{"history", json::array({server::to_json(c)})}});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ((*h)[0].id, 9);
  EXPECT_EQ((*h)[0].from_state, State::kPending);
  EXPECT_EQ((*h)[0].state, State::kSubmitted);
  EXPECT_EQ((*h)[0].message, "claimed");
  EXPECT_EQ((*h)[0].version, 2);
  EXPECT_EQ((*h)[0].agent_id, "a-1");

  store::TaskRun t;
  t.id = "t-1";
  t.flow_run_id = "r-1";
  t.task = "extract";
  t.map_index = 3;
  t.state = State::kRetrying;
  t.message = "503 from sensor API";
  t.attempts = 2;
  t.created = kT0;
  t.updated = kT1;
  t.start_time = kT0;
  t.run_attempt = 3;
  auto tr = decode_task_runs(json{{"task_runs", json::array({server::to_json(t)})}});
  ASSERT_TRUE(tr.is_ok()) << tr.status().to_string();
  EXPECT_EQ((*tr)[0].task, "extract");
  EXPECT_EQ((*tr)[0].map_index, 3);
  EXPECT_EQ((*tr)[0].state, State::kRetrying);
  EXPECT_EQ((*tr)[0].message, t.message);
  EXPECT_EQ((*tr)[0].attempts, 2);
  EXPECT_EQ((*tr)[0].updated, format_rfc3339(kT1));
  EXPECT_EQ((*tr)[0].run_attempt, 3);
  store::MappedTaskSummary m;
  m.task = "load";
  m.count = 3000;
  m.max_map_index = 2999;
  m.states = {{State::kSuccess, 2990}, {State::kFailed, 10}};
  m.start_time = kT0;
  m.updated = kT1;
  auto page = decode_task_run_page(json{{"task_runs", json::array({server::to_json(t)})},
                                        {"mapped_tasks", json::array({server::to_json(m)})},
                                        {"next_cursor", "6c6f6164"}});
  ASSERT_TRUE(page.is_ok()) << page.status().to_string();
  ASSERT_EQ(page->mapped_tasks.size(), 1u);
  EXPECT_EQ(page->mapped_tasks[0].task, "load");
  EXPECT_EQ(page->mapped_tasks[0].count, 3000);
  EXPECT_EQ(page->mapped_tasks[0].max_map_index, 2999);
  std::map<State, int64_t> by_state(page->mapped_tasks[0].states.begin(), page->mapped_tasks[0].states.end());
  EXPECT_EQ(by_state, (std::map<State, int64_t>{{State::kSuccess, 2990}, {State::kFailed, 10}}));
  EXPECT_EQ(page->mapped_tasks[0].start_time, format_rfc3339(kT0));
  EXPECT_FALSE(page->mapped_tasks[0].end_time.has_value());
  EXPECT_EQ(page->mapped_tasks[0].updated, format_rfc3339(kT1));
  EXPECT_EQ(page->next_cursor, "6c6f6164");

  store::LogRecord l;
  l.id = 41;
  l.flow_run_id = "r-1";
  l.task = "extract";
  l.level = "WARNING";
  l.message = "slow";
  l.timestamp = kT1;
  l.run_attempt = 2;
  auto lp = decode_log_page(
      json{{"logs", json::array({server::to_json(l)})}, {"next_cursor", "41"}, {"more", true}, {"flow_run_state", "Running"}});
  ASSERT_TRUE(lp.is_ok()) << lp.status().to_string();
  EXPECT_TRUE(lp->more);
  EXPECT_EQ(lp->logs[0].id, 41);
  EXPECT_EQ(lp->logs[0].task, "extract");
  EXPECT_FALSE(lp->logs[0].task_run_id.has_value());
  EXPECT_EQ(lp->logs[0].level, "WARNING");
  EXPECT_EQ(lp->logs[0].message, "slow");
  EXPECT_EQ(lp->logs[0].timestamp, format_rfc3339(kT1));
  EXPECT_EQ(lp->logs[0].run_attempt, 2);

  store::FlowRunAttempt a1, a2;
  a1.flow_run_id = a2.flow_run_id = "r-1";
  a1.attempt = 1;
  a1.state = State::kFailed;
  a1.message = "task extract failed";
  a1.agent_id = "a-1";
  a1.start_time = kT0;
  a1.end_time = kT1;
  a2.attempt = 2;
  a2.state = State::kRunning;
  a2.start_time = kT1;
  auto at = decode_attempts(json{{"attempts", json::array({server::to_json(a1), server::to_json(a2)})}});
  ASSERT_TRUE(at.is_ok()) << at.status().to_string();
  ASSERT_EQ(at->size(), 2u);
  EXPECT_EQ((*at)[0].attempt, 1);
  EXPECT_EQ((*at)[0].state, State::kFailed);
  EXPECT_EQ((*at)[0].message, a1.message);
  EXPECT_EQ((*at)[0].agent_id, "a-1");
  EXPECT_EQ((*at)[0].start_time, format_rfc3339(kT0));
  EXPECT_EQ((*at)[0].end_time, format_rfc3339(kT1));
  EXPECT_EQ((*at)[1].attempt, 2);
  EXPECT_EQ((*at)[1].state, State::kRunning);
  EXPECT_FALSE((*at)[1].agent_id.has_value());
  EXPECT_FALSE((*at)[1].end_time.has_value());
}

}  // namespace
}  // namespace culvert::client
