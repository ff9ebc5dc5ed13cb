// ClientAgentApi: the agent's AgentApi over the HTTP API client (the only way agents
// talk to the server). Every server answer is decoded once into typed values; anything
// malformed (not JSON, a missing field, a wrong type) is an Internal Status naming the
// route and the field, never an exception. Caches each flow version's run config, since
// a flow version never changes. Time (the long-poll deadline, log timestamps) comes from
// the Clock. Not thread-safe: the agent gives each of its threads its own instance.
#pragma once

#include <atomic>
#include <map>
#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "agent/agent.hpp"
#include "client/http_client.hpp"

namespace culvert::client {
class ApiClient;
}

namespace culvert::agent {

class ClientAgentApi final : public AgentApi {
 public:
  // `stop` (optional, not owned) cuts long-polls short when it becomes true. `clock`
  // is not owned and must outlive this.
  ClientAgentApi(client::ClientOptions options, Clock& clock, const std::atomic<bool>* stop = nullptr);
  ~ClientAgentApi() override;

  Result<std::string> register_agent(const std::string& name, const std::string& type,
                                     const std::vector<std::string>& labels, int max_concurrent) override;
  Status deregister_agent(const std::string& agent_id) override;
  Status heartbeat(const std::string& agent_id) override;
  // Long-polls in slices of at most a second (so a stop request is honoured within one),
  // at most ceil(wait / 1 s) requests, until a run comes or `wait` of the clock passed.
  Result<std::vector<ClaimedRun>> claim(const std::string& agent_id, const std::vector<std::string>& types, int max,
                                        Millis wait) override;
  Result<RunState> get_run_state(const std::string& run_id) override;
  Status set_run_state(const std::string& run_id, State state, const std::string& message) override;
  Status send_logs(const std::string& run_id, const std::vector<std::string>& lines) override;
  Status report_infrastructure(const std::string& run_id, const Infrastructure& infra) override;
  // Follows next_cursor over every page.
  Result<std::vector<UnfinishedRun>> list_unfinished_runs(const std::string& agent_id) override;

 private:
  // The run config of a run item: its own "run_config" when present, else its flow's.
  Result<std::string> run_config_of(const nlohmann::json& run_item);

  std::unique_ptr<client::ApiClient> api_;
  Clock& clock_;
  const std::atomic<bool>* stop_;
  std::map<std::string, std::string> run_configs_;  // flow id -> run config JSON
};

}  // namespace culvert::agent
