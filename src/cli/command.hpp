// What every `culvert` client command shares: the --output option, the settings and the
// API client in effect, error printing with the exit status, tables, and the lookup of a
// flow by id or name. Internal to src/cli; single-threaded, like the command line.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/client_cmds.hpp"
#include "client/api.hpp"
#include "client/responses.hpp"

namespace culvert::cli {

using json = nlohmann::json;
using client::ApiClient;

inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;
inline constexpr int kUsage = 2;

// The state of one command invocation: its context and its --output choice. Commands
// keep one in a shared_ptr captured by their callback.
struct Cmd {
  CliContext* ctx;
  std::string output = "table";

  std::ostream& out() const { return *ctx->out; }
  std::ostream& err() const { return *ctx->err; }
  bool json_out() const { return output == "json"; }

  // Print `error: <message>` and return (and set) the exit status.
  int fail(const Status& s) const;
  int usage(const std::string& message) const;
  void emit_json(const json& j) const;
  int done() const { return ctx->exit_code = kOk; }

  Result<client::ProfileConfig> config() const;
  Result<client::Settings> settings() const;
  Result<std::unique_ptr<ApiClient>> api() const;
};

// Adds `--output,-o table|json` (the one output vocabulary of every command).
void add_output_option(CLI::App* command, std::string& output);
inline void add_output_option(CLI::App* command, Cmd& cmd) { add_output_option(command, cmd.output); }

// The subcommand `name` of `parent`, created (with fallthrough) when absent.
CLI::App* subcommand(CLI::App& parent, const std::string& name, const std::string& description);

// A table: columns padded to their widest cell, two spaces apart, no trailing blanks.
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

bool looks_like_id(const std::string& s);
std::string join(const std::vector<std::string>& items, const std::string& separator = ",");

// An API call decoded into T: the server's answer (for --output json, as it came) and
// its typed value. Fails with the server's Status or the decoding Status.
template <typename T>
struct Decoded {
  json document;
  T value;
};
template <typename T>
Result<Decoded<T>> decoded(Result<json> answer, Result<T> (*decode)(const json&)) {
  if (!answer) return answer.status();
  auto v = decode(*answer);
  if (!v) return v.status();
  return Decoded<T>{std::move(*answer), std::move(*v)};
}

// A flow by id, or by name (the latest unarchived version, within `project` when given).
Result<Decoded<client::FlowVersion>> resolve_flow(ApiClient& api, const std::string& ref, const std::string& project);

// Every task of a run as GET .../task-runs lists them (task_run_cmds.cpp): the unmapped
// tasks' task runs and the mapped tasks' summaries, with the server's documents.
struct TaskListing {
  std::vector<client::TaskRun> task_runs;
  std::vector<client::MappedTask> mapped;
  json task_runs_doc, mapped_doc;
  std::optional<std::string> next_cursor;  // set when reading stopped early (more than max_tasks)
};
// `get task-runs --all` stops past this many items (they are held in memory).
inline constexpr size_t kMaxListedTasks = 100000;
// Reads the pages of a run's tasks, following the cursors, up to about `max_tasks` tasks.
Result<TaskListing> read_task_listing(ApiClient& api, const std::string& run_id, size_t max_tasks = kMaxListedTasks);
// One row per task: TASK, MAP, STATE, ATTEMPTS, MESSAGE (a mapped task: its index range,
// its counts by state, and how many task runs it has).
void print_task_table(std::ostream& out, const TaskListing& listing);
// "2990 Success, 10 Failed".
std::string mapped_states_text(const client::MappedTask& m);

// The command groups (one file each).
void add_config_commands(CLI::App& app, CliContext& ctx);   // config set/show, auth login
void add_token_commands(CLI::App& app, CliContext& ctx);    // auth create/list/revoke-token
void add_project_commands(CLI::App& app, CliContext& ctx);  // project create/list
void add_flow_commands(CLI::App& app, CliContext& ctx);     // flow list/show/set-schedule/backfill
void add_run_commands(CLI::App& app, CliContext& ctx);      // run, run inspect/cancel/retry, get runs
void add_log_commands(CLI::App& app, CliContext& ctx);      // get logs
void add_task_run_commands(CLI::App& app, CliContext& ctx); // get task-runs
void add_agent_list_commands(CLI::App& app, CliContext& ctx);  // get agents

}  // namespace culvert::cli
