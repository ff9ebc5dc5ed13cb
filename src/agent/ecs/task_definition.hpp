// What the ECS launcher sends to ECS for one run, as pure functions of the agent's
// settings and the run config (no I/O: unit-tested request shape by request shape).
//
// Settings come, in increasing precedence, from the built-in defaults (FARGATE, cpu 256,
// memory 512, cluster "default"), the agent's flags (EcsDefaults), a task-definition
// template (the run config's "task_definition", else the agent's
// --task-definition-file), and the run config's own fields
// (image, cpu, memory, task_role_arn, execution_role_arn, cluster, subnets,
// security_groups, assign_public_ip, run_task_kwargs, command).
//
// The task definition holds nothing of one run: the run's environment (its token, the
// server URL) travels in RunTask's container overrides. So every run of a flow with one
// run config has the same definition; its content hash is part of its family name
// ("culvert-<flow>-<hash>"), and it is registered once.
//
// Thread-safe (no state).
#pragma once

#include <culvert/status.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/launcher.hpp"

namespace culvert::agent::ecs {

enum class LaunchType { kFargate, kFargateSpot, kEc2 };
// "FARGATE", "FARGATE_SPOT", "EC2" (case-insensitive); InvalidArgument otherwise.
Result<LaunchType> parse_launch_type(std::string_view text);
std::string launch_type_name(LaunchType t);

// The agent's settings (its flags), under the run config's.
struct EcsDefaults {
  std::string cluster = "default";
  LaunchType launch_type = LaunchType::kFargate;
  std::string task_role_arn;       // "" : none
  std::string execution_role_arn;  // "" : none (needed for ECR images and awslogs)
  std::vector<std::string> subnets;
  std::vector<std::string> security_groups;
  bool assign_public_ip = false;
  std::string log_group;  // "" : no awslogs log configuration
  std::string platform_version;  // "" : ECS's default (LATEST); Fargate only
  std::string region;     // the awslogs region
  std::string cpu = "256";     // CPU units
  std::string memory = "512";  // MiB
  // A task-definition template (--task-definition-file), used when the run config has
  // no "task_definition" of its own; an object or null.
  nlohmann::json task_definition_template;
};

// The run config's ECS fields, as given (nullopt / empty / null: not given).
struct EcsRunConfig {
  std::string image;
  std::optional<std::string> cpu;     // CPU units ("256", 256 or "0.25 vCPU" in the run config)
  std::optional<std::string> memory;  // MiB ("512", 512, "1 GB" or "1GiB" in the run config)
  std::optional<std::string> task_role_arn;
  std::optional<std::string> execution_role_arn;
  std::optional<std::string> cluster;
  std::optional<std::vector<std::string>> subnets;
  std::optional<std::vector<std::string>> security_groups;
  std::optional<bool> assign_public_ip;
  std::vector<std::string> command;  // default {"culvert", "execute"}
  nlohmann::json task_definition;    // an object (a template) or null
  nlohmann::json run_task_kwargs;    // an object merged into RunTask's request, or null
};

// Decodes the run config; InvalidArgument naming the field that has the wrong type or
// an unreadable cpu/memory value.
Result<EcsRunConfig> parse_ecs_run_config(const std::string& run_config_json);

// "256", 256, "1 vCPU", "0.5vcpu" -> "256"/"1024"/"512". nullopt when malformed.
std::optional<std::string> cpu_units(const nlohmann::json& value);
// "512", 512, "1 GB", "2GiB", "1024 MiB" -> MiB as text. nullopt when malformed.
std::optional<std::string> memory_mib(const nlohmann::json& value);

// Fargate's valid cpu/memory pairs. InvalidArgument listing the memory values valid for
// `cpu` (or the valid cpu values) otherwise.
Status validate_fargate_size(const std::string& cpu, const std::string& memory);

struct TaskDefinition {
  nlohmann::json request;  // RegisterTaskDefinition's request, tags included
  std::string family;      // culvert-<flow>-<first 16 hex digits of hash>, at most 255 characters
  std::string hash;        // SHA-256 (hex) of the canonical content (the request without family and tags)
  std::string cluster;     // where its tasks run
};
inline constexpr std::string_view kHashTag = "culvert:task-definition-hash";
inline constexpr std::string_view kContainerName = "flow";

// The definition for runs of `flow_name` with this run config.
Result<TaskDefinition> build_task_definition(const EcsDefaults& defaults, const EcsRunConfig& rc,
                                             const std::string& flow_name);

// What names the run on ECS.
struct RunIdentity {
  std::string flow_run_id;
  std::string agent_name;
  std::string claim_token;  // the run token of this claim (hashed into clientToken)
};
inline constexpr std::string_view kRunTag = "culvert:flow-run-id";
inline constexpr std::string_view kAgentTag = "culvert:agent";

// RunTask's request: the task definition `task_definition_arn` (of `td`), one task, the
// launch type or FARGATE_SPOT capacity-provider strategy, the awsvpc network
// configuration, the run's environment `env` and command as container overrides, tags
// and startedBy naming the run and the agent, and a clientToken derived from the claim.
// InvalidArgument when an awsvpc task has no subnets.
Result<nlohmann::json> build_run_task(const EcsDefaults& defaults, const EcsRunConfig& rc, const TaskDefinition& td,
                                      const std::string& task_definition_arn,
                                      const std::map<std::string, std::string>& env, const RunIdentity& who);

// startedBy for tasks of agent `agent_name`: "culvert-<name>", sanitized, at most 36 characters.
std::string started_by(const std::string& agent_name);

// `name` with every character outside [A-Za-z0-9_-] replaced by '-'.
std::string sanitize_name(std::string_view name);

// How a STOPPED task (a DescribeTasks task object) ended, for the run's message:
// stopCode, stoppedReason, and the flow container's exit code and reason (exit 137 or an
// OutOfMemoryError named as out of memory).
ExitInfo exit_of_stopped_task(const nlohmann::json& task);

// The cluster named in a task ARN of the long format
// (arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID), or "" for the old format.
std::string cluster_of_task_arn(std::string_view arn);

}  // namespace culvert::agent::ecs
