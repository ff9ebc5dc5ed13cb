// Run configs (where a registered flow runs, docs/SDK.md) and schedules (docs/SCHEDULES.md).
// These are descriptions: the flow binary prints them in `describe`; agents and the
// server act on them. Plain structs, usable with designated initializers:
//
//   flow.run_config(culvert::EcsRun{.image = "repo/etl:1", .cpu = "1024",
//                                   .memory = "2048", .labels = {"fargate-dev"}});
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace culvert {

using EnvMap = std::map<std::string, std::string>;

struct LocalRun {
  EnvMap env;
  std::string working_dir;           // empty: the agent's working directory
  std::vector<std::string> labels;
};

struct DockerRun {
  std::string image;
  EnvMap env;
  std::string network_mode;          // empty: Docker's default
  std::vector<std::string> volumes;  // "host:container[:ro]"
  std::string cpu;                   // e.g. "1.5" (cores); empty: no limit
  std::string memory;                // e.g. "512m"; empty: no limit
  std::vector<std::string> labels;
};

struct EcsRun {
  std::string image;
  EnvMap env;
  std::string cpu;                   // ECS units, e.g. "1024"
  std::string memory;                // MiB, e.g. "2048"
  std::string task_role_arn;
  std::string execution_role_arn;
  std::string cluster;
  std::vector<std::string> subnets;
  std::vector<std::string> security_groups;
  std::optional<bool> assign_public_ip;
  std::string task_definition;       // a task-definition template (JSON text); empty: generated
  std::string run_task_kwargs;       // extra RunTask arguments (JSON object text)
  std::vector<std::string> labels;
};

struct SlurmRun {
  std::string partition;
  int cpus = 0;                      // 0: the partition's default
  std::string memory;                // e.g. "4G"
  std::string time_limit;            // e.g. "01:00:00"
  std::vector<std::string> extra_options;  // further sbatch options, e.g. "--qos=low"
  EnvMap env;
  std::vector<std::string> labels;
};

using RunConfig = std::variant<LocalRun, DockerRun, EcsRun, SlurmRun>;

// A cron schedule: 5 fields or an alias (@hourly, @daily, ...) in an IANA time zone.
// Flow::validate() parses the expression with the scheduler's cron parser.
struct Cron {
  Cron(std::string expression, std::string timezone = "UTC")
      : expression(std::move(expression)), timezone(std::move(timezone)) {}
  std::string expression;
  std::string timezone;
  std::map<std::string, std::string> parameters;  // parameter values for scheduled runs
  std::string catchup = "skip";                    // skip | latest | all
  bool active = true;
};

// A fixed interval, counted from `anchor` (default: the Unix epoch).
struct Interval {
  explicit Interval(std::chrono::seconds every) : every(every) {}
  Interval(std::chrono::seconds every, std::chrono::system_clock::time_point anchor)
      : every(every), anchor(anchor) {}
  std::chrono::seconds every;
  std::optional<std::chrono::system_clock::time_point> anchor;
  std::map<std::string, std::string> parameters;
  std::string catchup = "skip";
  bool active = true;
};

// What Flow::schedule() takes (named apart from core's Schedule value type).
using ScheduleSpec = std::variant<std::monostate, Cron, Interval>;

}  // namespace culvert
