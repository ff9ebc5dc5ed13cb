// ClientAgentApi: the agent's AgentApi over the HTTP API client (the only way agents
// talk to the server). Caches each flow version's run config, since a flow version never
// changes. Not thread-safe: the agent gives each of its threads its own instance.
#pragma once

#include <atomic>
#include <map>
#include <memory>

#include "agent/agent.hpp"
#include "client/http_client.hpp"

namespace culvert::client {
class ApiClient;
}

namespace culvert::agent {

class ClientAgentApi final : public AgentApi {
 public:
  // `stop` (optional, not owned) cuts long-polls short when it becomes true.
  explicit ClientAgentApi(client::ClientOptions options, const std::atomic<bool>* stop = nullptr);
  ~ClientAgentApi() override;

  Result<std::string> register_agent(const std::string& name, const std::string& type,
                                     const std::vector<std::string>& labels) override;
  Status heartbeat(const std::string& agent_id) override;
  Result<std::vector<ClaimedRun>> claim(const std::string& agent_id, int max, Millis wait) override;
  Result<State> get_run_state(const std::string& run_id) override;
  Status set_run_state(const std::string& run_id, State state, const std::string& message) override;
  Status send_logs(const std::string& run_id, const std::vector<std::string>& lines) override;

 private:
  std::unique_ptr<client::ApiClient> api_;
  const std::atomic<bool>* stop_;
  std::map<std::string, std::string> run_configs_;  // flow id -> run config JSON
};

}  // namespace culvert::agent
