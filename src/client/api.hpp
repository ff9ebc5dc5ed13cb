// Typed wrapper over the Culvert server API (docs/SERVER.md): one method per route. Answers
// are returned as nlohmann::json documents exactly as the server sent them (fields may
// grow); errors are culvert::Status with the server's message.
//
// Include <nlohmann/json.hpp> where the results are used; this header only forward-
// declares the json type.
//
// NOT thread-safe (one HttpClient, one connection): use one ApiClient per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <culvert/status.hpp>

#include "client/http_client.hpp"

namespace culvert::client {

struct FlowRunFilter {
  std::optional<std::string> flow_id;
  std::optional<std::string> state;
  std::optional<int> limit;
  std::optional<std::string> cursor;
  std::optional<std::string> parent;  // the child runs of this flow run
};

// GET /api/v1/flow-runs/{id}/task-runs: a page of tasks, or with `task` a page of
// that task's task runs (optionally only those in `state`).
struct TaskRunQuery {
  std::optional<std::string> task;
  std::optional<std::string> state;
  std::optional<int> limit;
  std::optional<std::string> cursor;
};

class ApiClient {
 public:
  using json = nlohmann::json;

  explicit ApiClient(ClientOptions options);
  ~ApiClient();
  ApiClient(ApiClient&&) noexcept;
  ApiClient& operator=(ApiClient&&) noexcept;

  const ClientOptions& options() const;

  // GET /api/health (no auth)            {"status":"ok","version":"..."}
  Result<json> health();
  // GET /metrics                          Prometheus text
  Result<std::string> metrics();
  // GET /api/v1/openapi.json
  Result<json> openapi();

  // POST /api/v1/projects  {"name","description"}
  Result<json> create_project(std::string_view name, std::string_view description);
  // GET /api/v1/projects
  Result<json> list_projects();

  // POST /api/v1/flows  (a flow description, docs/FORMATS.md, plus project and artifact)
  Result<json> register_flow(const json& body);
  // GET /api/v1/flows[?project=P]
  // One page of flows (latest versions): of a project, of one name, after a cursor.
  Result<json> list_flows(std::optional<std::string_view> project = std::nullopt, std::string_view cursor = "",
                          std::string_view name = "");
  // Every page of that listing, as one {"flows": [...]} document.
  Result<json> list_all_flows(std::optional<std::string_view> project = std::nullopt, std::string_view name = "");
  // GET /api/v1/flows/{id}
  Result<json> get_flow(std::string_view flow_id);
  // POST /api/v1/flows/{id}/schedule  {"active":bool}   (pause / resume the schedule)
  Result<json> set_schedule_active(std::string_view flow_id, bool active);

  // POST /api/v1/flow-runs  {"flow_id" | "project"+"flow", "parameters", "labels",
  //                          "idempotency_key", "scheduled_start_time"}
  Result<json> create_flow_run(const json& body);
  // GET /api/v1/flow-runs?flow_id=&state=&limit=&cursor=
  Result<json> list_flow_runs(const FlowRunFilter& filter);
  // GET /api/v1/flow-runs/{id}
  Result<json> get_flow_run(std::string_view run_id);
  // POST /api/v1/flow-runs/{id}/children  {"task", "chunks": [{"chunk","start","end"}]}
  // -> {"children": [{"id","chunk","start","end","task","parent_attempt","state",
  // "state_message","run_count","infrastructure"}]} in request order. Idempotent per
  // (parent, its current attempt, task, chunk). 409 unless the parent is Running.
  Result<json> create_child_runs(std::string_view parent_id, std::string_view task, const json& chunks);
  // GET /api/v1/flow-runs/{id}/children[?task=T][&parent_attempt=A][&final_above=K][&wait_ms=N]
  // -> {"children": [...by chunk], "count", "listed", "final", "by_state", "parent_attempt",
  // "parent_state"}. Empty task: every task; parent_attempt 0: the parent's current
  // attempt; with wait above 0 the server answers once more than final_above children
  // are final, or after wait.
  Result<json> list_child_runs(std::string_view parent_id, std::string_view task = "", int parent_attempt = 0,
                               int64_t final_above = -1,
                               std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // GET /api/v1/flow-runs/{id}/history   (every state change, oldest first)
  // One page of the run's state history: the changes after the cursor `after`.
  Result<json> get_flow_run_history(std::string_view run_id, std::string_view after = "0");
  // GET /api/v1/flow-runs/{id}/attempts   (each attempt's times, attempt 1 first)
  Result<json> get_flow_run_attempts(std::string_view run_id);
  // POST /api/v1/flow-runs/{id}/state  {"state","message","expected_version"}
  Result<json> set_flow_run_state(std::string_view run_id, std::string_view state,
                                  std::string_view message,
                                  std::optional<int64_t> expected_version = std::nullopt);
  // POST /api/v1/flow-runs/{id}/heartbeat
  Result<json> heartbeat_flow_run(std::string_view run_id);
  // POST /api/v1/flow-runs/{id}/cancel
  Result<json> cancel_flow_run(std::string_view run_id);
  // POST /api/v1/flow-runs/{id}/retry   (a final run back to Scheduled)
  Result<json> retry_flow_run(std::string_view run_id);
  // GET /api/v1/flow-runs/{id}/task-runs?task=&state=&limit=&cursor=   (one page)
  Result<json> list_task_runs(std::string_view run_id, const TaskRunQuery& query = {});
  // GET /api/v1/flow-runs/{id}/task-runs/history?after=ID   (Retrying states, a page)
  Result<json> list_task_run_history(std::string_view run_id, std::string_view after = "0");
  // POST /api/v1/task-runs/states  [{"flow_run_id","task","map_index","state","message"}]
  Result<json> set_task_run_states(const json& batch);
  // POST /api/v1/logs  [{"flow_run_id","task_run_id","level","message","timestamp"}]
  Result<json> write_logs(const json& batch);
  // GET /api/v1/flow-runs/{id}/logs?after=CURSOR[&wait_ms=N][&run_attempt=N]   (long
  // poll up to wait; with run_attempt above 0, only that attempt's lines)
  Result<json> get_logs(std::string_view run_id, std::string_view after,
                        std::chrono::milliseconds wait = std::chrono::milliseconds(0), int run_attempt = 0);

  // POST /api/v1/agents  {"name","type","labels","max_concurrent"} -> {"id"}
  // (max_concurrent only when given)
  Result<json> register_agent(std::string_view name, std::string_view type,
                              const std::vector<std::string>& labels,
                              std::optional<int> max_concurrent = std::nullopt);
  // POST /api/v1/agents/{id}/heartbeat
  Result<json> heartbeat_agent(std::string_view agent_id);
  // POST /api/v1/agents/{id}/claim  {"max","wait_ms"}  (long poll up to wait)
  Result<json> claim_runs(std::string_view agent_id, int max, std::chrono::milliseconds wait);
  // GET /api/v1/agents
  Result<json> list_agents();

  // POST /api/v1/tokens  {"name","scope","expires"} -> {"id","token"}
  Result<json> create_token(std::string_view name, std::string_view scope,
                            std::optional<std::string_view> expires = std::nullopt);
  // GET /api/v1/tokens
  Result<json> list_tokens();
  // DELETE /api/v1/tokens/{id}
  Result<json> revoke_token(std::string_view token_id);

  // Any route: `body` may be null (no body). An empty 2xx answer gives {}.
  Result<json> call(std::string_view method, const std::string& target, const json* body,
                    std::chrono::milliseconds extra_timeout = std::chrono::milliseconds(0));

 private:
  std::unique_ptr<HttpClient> http_;
};

}  // namespace culvert::client
