#include "agent/client_api.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "core/timefmt.hpp"

namespace culvert::agent {

using nlohmann::json;

ClientAgentApi::ClientAgentApi(client::ClientOptions options, const std::atomic<bool>* stop)
    : api_(std::make_unique<client::ApiClient>(std::move(options))), stop_(stop) {}

ClientAgentApi::~ClientAgentApi() = default;

Result<std::string> ClientAgentApi::register_agent(const std::string& name, const std::string& type,
                                                   const std::vector<std::string>& labels) {
  auto r = api_->register_agent(name, type, labels);
  if (!r) return r.status();
  if (!r->contains("id") || !(*r)["id"].is_string())
    return internal_error("the server's answer to agent registration has no id");
  return (*r)["id"].get<std::string>();
}

Status ClientAgentApi::heartbeat(const std::string& agent_id) {
  auto r = api_->heartbeat_agent(agent_id);
  return r ? Status::ok() : r.status();
}

Result<std::vector<ClaimedRun>> ClientAgentApi::claim(const std::string& agent_id, int max, Millis wait) {
  // Long-polls in slices so that a stop request is honoured within a second.
  const Millis slice = stop_ ? std::min(wait, Millis(1000)) : wait;
  auto deadline = std::chrono::steady_clock::now() + wait;
  json answer;
  for (;;) {
    auto r = api_->claim_runs(agent_id, max, slice);
    if (!r) return r.status();
    answer = std::move(*r);
    bool got = answer.contains("runs") && answer["runs"].is_array() && !answer["runs"].empty();
    if (got || (stop_ && stop_->load()) || std::chrono::steady_clock::now() >= deadline) break;
  }
  std::vector<ClaimedRun> runs;
  if (!answer.contains("runs") || !answer["runs"].is_array()) return runs;
  for (auto& j : answer["runs"]) {
    ClaimedRun run;
    run.id = j.value("id", "");
    run.flow_id = j.value("flow_id", "");
    run.flow_name = j.value("flow_name", "");
    run.token = j.value("token", "");
    if (j.contains("run_config") && j["run_config"].is_object()) {
      run.run_config_json = j["run_config"].dump();
    } else {
      auto it = run_configs_.find(run.flow_id);
      if (it == run_configs_.end()) {
        auto flow = api_->get_flow(run.flow_id);
        std::string rc = "{}";
        if (flow && flow->contains("run_config") && (*flow)["run_config"].is_object())
          rc = (*flow)["run_config"].dump();
        if (flow) it = run_configs_.emplace(run.flow_id, rc).first;
        run.run_config_json = rc;
      } else {
        run.run_config_json = it->second;
      }
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

Result<State> ClientAgentApi::get_run_state(const std::string& run_id) {
  auto r = api_->get_flow_run(run_id);
  if (!r) return r.status();
  auto s = parse_state(r->value("state", ""));
  if (!s) return internal_error("the server reported an unknown state for run " + run_id);
  return *s;
}

Status ClientAgentApi::set_run_state(const std::string& run_id, State state, const std::string& message) {
  auto r = api_->set_flow_run_state(run_id, state_name(state), message);
  return r ? Status::ok() : r.status();
}

Status ClientAgentApi::send_logs(const std::string& run_id, const std::vector<std::string>& lines) {
  json batch = json::array();
  std::string now = format_rfc3339(std::chrono::system_clock::now());
  for (const auto& l : lines)
    batch.push_back({{"flow_run_id", run_id}, {"level", "INFO"}, {"message", l}, {"timestamp", now}});
  auto r = api_->write_logs(batch);
  return r ? Status::ok() : r.status();
}

}  // namespace culvert::agent
