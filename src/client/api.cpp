#include "client/api.hpp"

#include <nlohmann/json.hpp>

#include "core/json_parse.hpp"

namespace culvert::client {

using json = nlohmann::json;

namespace {
std::string seg(std::string_view s) { return url_encode(s); }
}  // namespace

ApiClient::ApiClient(ClientOptions options) : http_(std::make_unique<HttpClient>(std::move(options))) {}
ApiClient::~ApiClient() = default;
ApiClient::ApiClient(ApiClient&&) noexcept = default;
ApiClient& ApiClient::operator=(ApiClient&&) noexcept = default;

const ClientOptions& ApiClient::options() const { return http_->options(); }

Result<json> ApiClient::call(std::string_view method, const std::string& target, const json* body,
                             std::chrono::milliseconds extra_timeout) {
  // Invalid UTF-8 (a command task's output, say) is sent replaced, not thrown over.
  std::string text = body != nullptr ? body->dump(-1, ' ', false, json::error_handler_t::replace) : std::string();
  auto r = http_->call(method, target, text, extra_timeout);
  if (!r) return r.status();
  if (r->empty()) return json::object();
  // Bounded: callers copy and dump parts of the answer, which recurses once per level.
  auto j = parse_json_bounded(*r, kMaxAnswerJsonDepth);
  if (!j)
    return internal_error(std::string(method) + " " + target + ": the server's answer is not JSON, or nests too deep (" +
                          j.status().message() + "): " + r->substr(0, 200));
  return j;
}

Result<json> ApiClient::health() { return call("GET", "/api/health", nullptr); }

Result<std::string> ApiClient::metrics() { return http_->call("GET", "/metrics", ""); }

Result<json> ApiClient::openapi() { return call("GET", "/api/v1/openapi.json", nullptr); }

Result<json> ApiClient::create_project(std::string_view name, std::string_view description) {
  json b = {{"name", name}, {"description", description}};
  return call("POST", "/api/v1/projects", &b);
}

Result<json> ApiClient::list_projects() { return call("GET", "/api/v1/projects", nullptr); }

Result<json> ApiClient::register_flow(const json& body) { return call("POST", "/api/v1/flows", &body); }

Result<json> ApiClient::list_flows(std::optional<std::string_view> project, std::string_view cursor,
                                   std::string_view name) {
  std::string t = "/api/v1/flows";
  char sep = '?';
  auto add = [&](std::string_view key, std::string_view value) {
    t += sep;
    t += std::string(key) + "=" + seg(value);
    sep = '&';
  };
  if (project) add("project", *project);
  if (!name.empty()) add("name", name);
  if (!cursor.empty()) add("cursor", cursor);
  return call("GET", t, nullptr);
}

Result<json> ApiClient::list_all_flows(std::optional<std::string_view> project, std::string_view name) {
  json all = {{"flows", json::array()}};
  std::string cursor;
  for (int pages = 0; pages < 10000; ++pages) {
    auto page = list_flows(project, cursor, name);
    if (!page) return page.status();
    if (!page->is_object() || !page->contains("flows") || !(*page)["flows"].is_array())
      return *page;  // the caller's decoder names what is wrong
    for (auto& f : (*page)["flows"]) all["flows"].push_back(std::move(f));
    const json* next = page->contains("next_cursor") ? &(*page)["next_cursor"] : nullptr;
    if (next == nullptr || !next->is_string() || next->get<std::string>().empty()) return all;
    if (next->get<std::string>() == cursor) return Status(StatusCode::kInternal, "the flow listing repeated its cursor");
    cursor = next->get<std::string>();
  }
  return Status(StatusCode::kInternal, "the flow listing did not end after 10000 pages");
}

Result<json> ApiClient::get_flow(std::string_view flow_id) {
  return call("GET", "/api/v1/flows/" + seg(flow_id), nullptr);
}

Result<json> ApiClient::set_schedule_active(std::string_view flow_id, bool active) {
  json b = {{"active", active}};
  return call("POST", "/api/v1/flows/" + seg(flow_id) + "/schedule", &b);
}

Result<json> ApiClient::create_flow_run(const json& body) {
  return call("POST", "/api/v1/flow-runs", &body);
}

Result<json> ApiClient::list_flow_runs(const FlowRunFilter& f) {
  std::string q;
  auto add = [&](const char* k, const std::string& v) {
    q += q.empty() ? '?' : '&';
    q += k;
    q += '=';
    q += seg(v);
  };
  if (f.flow_id) add("flow_id", *f.flow_id);
  if (f.state) add("state", *f.state);
  if (f.limit) add("limit", std::to_string(*f.limit));
  if (f.cursor) add("cursor", *f.cursor);
  if (f.parent) add("parent", *f.parent);
  return call("GET", "/api/v1/flow-runs" + q, nullptr);
}

Result<json> ApiClient::create_child_runs(std::string_view parent_id, std::string_view task, const json& chunks) {
  json b = {{"task", task}, {"chunks", chunks}};
  return call("POST", "/api/v1/flow-runs/" + seg(parent_id) + "/children", &b);
}

Result<json> ApiClient::list_child_runs(std::string_view parent_id, std::string_view task, int parent_attempt,
                                        int64_t final_above, std::chrono::milliseconds wait) {
  std::string t = "/api/v1/flow-runs/" + seg(parent_id) + "/children?final_above=" + std::to_string(final_above);
  if (!task.empty()) t += "&task=" + seg(task);
  if (parent_attempt > 0) t += "&parent_attempt=" + std::to_string(parent_attempt);
  if (wait.count() > 0) t += "&wait_ms=" + std::to_string(wait.count());
  return call("GET", t, nullptr, wait);
}

Result<json> ApiClient::get_flow_run(std::string_view run_id) {
  return call("GET", "/api/v1/flow-runs/" + seg(run_id), nullptr);
}

Result<json> ApiClient::get_flow_run_history(std::string_view run_id, std::string_view after) {
  return call("GET", "/api/v1/flow-runs/" + seg(run_id) + "/history?after=" + seg(after), nullptr);
}

Result<json> ApiClient::get_flow_run_attempts(std::string_view run_id) {
  return call("GET", "/api/v1/flow-runs/" + seg(run_id) + "/attempts", nullptr);
}

Result<json> ApiClient::set_flow_run_state(std::string_view run_id, std::string_view state,
                                           std::string_view message,
                                           std::optional<int64_t> expected_version) {
  json b = {{"state", state}, {"message", message}};
  if (expected_version) b["expected_version"] = *expected_version;
  return call("POST", "/api/v1/flow-runs/" + seg(run_id) + "/state", &b);
}

Result<json> ApiClient::heartbeat_flow_run(std::string_view run_id) {
  json b = json::object();
  return call("POST", "/api/v1/flow-runs/" + seg(run_id) + "/heartbeat", &b);
}

Result<json> ApiClient::cancel_flow_run(std::string_view run_id) {
  json b = json::object();
  return call("POST", "/api/v1/flow-runs/" + seg(run_id) + "/cancel", &b);
}

Result<json> ApiClient::retry_flow_run(std::string_view run_id) {
  json b = json::object();
  return call("POST", "/api/v1/flow-runs/" + seg(run_id) + "/retry", &b);
}

Result<json> ApiClient::list_task_runs(std::string_view run_id, const TaskRunQuery& q) {
  std::string t = "/api/v1/flow-runs/" + seg(run_id) + "/task-runs";
  char sep = '?';
  auto add = [&](const char* key, const std::string& value) {
    t += sep;
    t += key;
    t += '=';
    t += seg(value);
    sep = '&';
  };
  if (q.task) add("task", *q.task);
  if (q.state) add("state", *q.state);
  if (q.limit) add("limit", std::to_string(*q.limit));
  if (q.cursor) add("cursor", *q.cursor);
  return call("GET", t, nullptr);
}

Result<json> ApiClient::list_task_run_history(std::string_view run_id, std::string_view after) {
  return call("GET", "/api/v1/flow-runs/" + seg(run_id) + "/task-runs/history?after=" + seg(after), nullptr);
}

Result<json> ApiClient::set_task_run_states(const json& batch) {
  return call("POST", "/api/v1/task-runs/states", &batch);
}

Result<json> ApiClient::write_logs(const json& batch) { return call("POST", "/api/v1/logs", &batch); }

Result<json> ApiClient::get_logs(std::string_view run_id, std::string_view after,
                                 std::chrono::milliseconds wait, int run_attempt) {
  std::string t = "/api/v1/flow-runs/" + seg(run_id) + "/logs?after=" + seg(after);
  if (run_attempt > 0) t += "&run_attempt=" + std::to_string(run_attempt);
  if (wait.count() > 0) t += "&wait_ms=" + std::to_string(wait.count());
  return call("GET", t, nullptr, wait);
}

Result<json> ApiClient::register_agent(std::string_view name, std::string_view type,
                                       const std::vector<std::string>& labels, std::optional<int> max_concurrent) {
  json b = {{"name", name}, {"type", type}, {"labels", labels}};
  if (max_concurrent) b["max_concurrent"] = *max_concurrent;
  return call("POST", "/api/v1/agents", &b);
}

Result<json> ApiClient::heartbeat_agent(std::string_view agent_id) {
  json b = json::object();
  return call("POST", "/api/v1/agents/" + seg(agent_id) + "/heartbeat", &b);
}

Result<json> ApiClient::claim_runs(std::string_view agent_id, int max, std::chrono::milliseconds wait) {
  json b = {{"max", max}, {"wait_ms", wait.count()}};
  return call("POST", "/api/v1/agents/" + seg(agent_id) + "/claim", &b, wait);
}

Result<json> ApiClient::list_agents() { return call("GET", "/api/v1/agents", nullptr); }

Result<json> ApiClient::create_token(std::string_view name, std::string_view scope,
                                     std::optional<std::string_view> expires) {
  json b = {{"name", name}, {"scope", scope}};
  if (expires) b["expires"] = *expires;
  return call("POST", "/api/v1/tokens", &b);
}

Result<json> ApiClient::list_tokens() { return call("GET", "/api/v1/tokens", nullptr); }

Result<json> ApiClient::revoke_token(std::string_view token_id) {
  return call("DELETE", "/api/v1/tokens/" + seg(token_id), nullptr);
}

}  // namespace culvert::client
