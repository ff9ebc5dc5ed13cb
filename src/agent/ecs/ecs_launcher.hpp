// The ECS launcher (`culvert agent start --type ecs`): each flow run is one ECS task
// (Fargate, Fargate Spot or EC2) of a task definition built from the run config
// (task_definition.hpp), registered once per distinct content and found again in ECS by
// its family name, so a restarted or second agent registers nothing new.
//
// Calls, all through one AWS JSON 1.1 client (SigV4, the standard credentials chain,
// retries of throttling and 5xx with capped jittered backoff):
//   launch: DescribeTaskDefinition (first use of a definition), RegisterTaskDefinition
//           (when ECS has no ACTIVE revision of it), RunTask
//   watch:  one DescribeTasks per cluster and 100 tasks for all runs (poll_all)
//   cancel / start timeout: StopTask
//   a run that reported its end while its task ran: DescribeTasks of that task until it
//           ends by itself (ECS stops it), StopTask only after the stop grace
//   adopt:  DescribeTasks of the reported task ARN (tags checked against the run); a task
//           never reported: ListTasks by startedBy, DescribeTasks for the tags (find)
// A task that reaches STOPPED ends the launch with stopCode, stoppedReason and the flow
// container's exit code and reason; one that is not RUNNING within task_start_timeout is
// stopped and ends with that reason. The agent turns either into Crashed unless the run
// reported its own final state.
//
// Thread safety: launch(), adopt() and poll_all() may run on different threads at once
// (the agent's claim and monitor threads); the launcher guards its own state. A Launch's
// stop() may run on a thread of its own while the monitor polls it.
#pragma once

#include <culvert/clock.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/ecs/task_definition.hpp"
#include "agent/launcher.hpp"
#include "aws/credentials.hpp"
#include "aws/http.hpp"
#include "core/crypto.hpp"

namespace culvert::aws {
class AwsJsonClient;
}

namespace culvert::agent::ecs {

struct EcsLauncherOptions {
  EcsDefaults defaults;
  std::string agent_name;  // in startedBy and the culvert:agent tag. REQUIRES: not empty
  std::string region;      // REQUIRES: not empty
  // Default: https://ecs.<region>.amazonaws.com
  std::string endpoint_url;
  Millis task_start_timeout = std::chrono::minutes(10);
  Millis poll_interval{5000};
  // REQUIRES: not null.
  std::unique_ptr<aws::CredentialsProvider> credentials;
  int max_attempts = 6;  // of each AWS call
  // Not owned; must outlive the launcher. Default: system clock, CSPRNG, libcurl.
  Clock* clock = nullptr;
  Random* random = nullptr;
  aws::HttpTransport* transport = nullptr;
};

class EcsService;  // the AWS client and definition cache, shared with the launches

class EcsLauncher final : public Launcher {
 public:
  explicit EcsLauncher(EcsLauncherOptions options);
  ~EcsLauncher() override;
  std::string type() const override { return "ecs"; }
  std::chrono::milliseconds poll_interval() const override;
  Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) override;
  // infra.kind "ecs-task", infra.id the task ARN.
  Result<std::unique_ptr<Launch>> adopt(const LaunchSpec& spec, const Infrastructure& infra) override;
  // The run's task among those this agent started (ListTasks by startedBy, in the run
  // config's cluster, then DescribeTasks for their culvert:flow-run-id tags).
  Result<std::unique_ptr<Launch>> find(const LaunchSpec& spec) override;
  std::vector<std::optional<ExitInfo>> poll_all(const std::vector<Launch*>& launches) override;

 private:
  std::shared_ptr<EcsService> service_;
};

}  // namespace culvert::agent::ecs
