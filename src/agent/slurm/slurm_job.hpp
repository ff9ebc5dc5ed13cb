// What the Slurm launcher sends to and reads from Slurm, as pure functions: the `slurm`
// run config and its validation, the sbatch command line, environment and batch script
// of one run, the decoding of `squeue --json`, `sacct -P` and jobcomp records, and the
// mapping of a job's end to an ExitInfo. No I/O: slurm_launcher.cpp runs the commands.
#pragma once

#include <culvert/status.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/launcher.hpp"

namespace culvert::agent::slurm {

// The agent's defaults (its flags).
struct SlurmDefaults {
  std::string partition;  // "" : Slurm's default partition
  std::string account;
  std::string qos;
  std::vector<std::string> sbatch_options;  // --sbatch-option, each "--name[=value]"
  std::string job_output_dir;               // REQUIRES: absolute; where each job's stdout/stderr goes
  std::string culvert_binary;               // REQUIRES: not empty; what the job runs (`... execute`)
};

// A flow's `slurm` run config. Every field is optional; a given one wins over the
// agent's default of the same name.
struct SlurmRunConfig {
  std::optional<std::string> partition;
  std::optional<std::string> account;
  std::optional<std::string> qos;
  std::optional<int> cpus;                  // --cpus-per-task
  std::optional<std::string> memory;        // --mem, in Slurm's form ("512M", "4G")
  std::optional<std::string> time_limit;    // --time, in Slurm's form ("30", "1:00:00", "1-0")
  std::vector<std::string> sbatch_options;  // after the agent's: the last of an option wins
  std::vector<std::string> setup;           // shell lines the batch script runs first
};

// Decodes and validates the run config's Slurm fields (its "type" and "env" are the
// agent's). InvalidArgument naming the field on a wrong type or a value that could be
// read as another option.
Result<SlurmRunConfig> parse_slurm_run_config(const std::string& run_config_json);

// Checks a partition/account/qos name: letters, digits and `_.:@+,-`, not starting with
// '-', at most 128 characters. `what` names it in the error.
Status check_slurm_name(const std::string& value, const std::string& what);
// Checks one extra sbatch option: `--name` or `--name=value` (long form only; no newline
// or NUL), and not one the agent sets itself (--export, --job-name, --output, ...).
Status check_sbatch_option(const std::string& option, const std::string& what);
// "90s", "10m", "2h", "1d" (rounded up to whole minutes) or Slurm's own forms (minutes,
// M:S, H:M:S, D-H, D-H:M, D-H:M:S) → the value of --time.
Result<std::string> slurm_time_limit(const std::string& value);
// "512M", "4G", "4gb", "100" (MB) → the value of --mem.
Result<std::string> slurm_memory(const std::string& value);

// `culvert-<flow>-<run>`: the flow name with anything but letters, digits and `_.-`
// replaced by '_', cut to 64 characters.
std::string job_name_for(const std::string& flow_name, const std::string& run_id);
// The job's comment: `culvert-run=<run id>` (what adoption checks).
std::string job_comment_for(const std::string& run_id);

// One sbatch invocation.
struct Submission {
  std::vector<std::string> argv;           // sbatch --parsable ...
  std::map<std::string, std::string> env;  // sbatch's whole environment
  std::string script;                      // the batch script, on sbatch's stdin
  std::string job_name;
  std::string output_pattern;              // --output, with %j for the job id
};

// The agent's own credentials (CULVERT_API_TOKEN, CULVERT_API_URL, CULVERT_PROFILE),
// which never reach sbatch or a job.
bool is_agent_credential(const std::string& name);

// Builds the submission of `spec` (its env is the run's whole environment, with its
// token): the run's variables travel in sbatch's own environment and are named in
// --export (names only, never values, so the token is on no command line, job name or
// comment); `base_env` is the agent's environment (its credentials are dropped), of
// which PATH, HOME, USER, LOGNAME, LANG, LC_ALL, TZ, TMPDIR and the CULVERT_* settings
// are exported to the job too.
// InvalidArgument for an env name that is not a shell identifier.
Result<Submission> build_submission(const SlurmDefaults& defaults, const SlurmRunConfig& rc, const LaunchSpec& spec,
                                    const std::map<std::string, std::string>& base_env);

// A job as Slurm reports it.
struct JobRecord {
  std::string id;
  std::string name;
  std::string comment;
  std::string user;
  std::string state;   // PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, ...
  std::string reason;  // squeue's state_reason (PENDING: Resources, Priority, ...)
  std::string cancelled_by;  // sacct's "CANCELLED by 1000": "1000"
  int exit_code = 0;   // the batch script's exit code
  int signal = 0;      // the signal that ended it
  bool memory_set = false;  // the job asked for memory (--mem)
  std::string memory;  // what it asked for, e.g. "50M" ("" unknown)
};

// `squeue --json` (Slurm 22.05 and later: job_state a string or a list of strings,
// exit_code the wait status or an object). InvalidArgument when it is not that document.
Result<std::vector<JobRecord>> parse_squeue_json(const std::string& text);
// `sacct -X -P -n -o JobID,State,ExitCode,JobName,Comment,ReqMem`. Lines that are not
// jobs are skipped.
std::vector<JobRecord> parse_sacct(const std::string& text);
// A jobcomp/filetxt file: one `Key=Value ...` line per ended job; the last of a job id
// wins.
std::map<std::string, JobRecord> parse_jobcomp(const std::string& text);

bool is_pending_state(const std::string& state);  // PENDING, CONFIGURING, REQUEUED, ...
bool is_final_state(const std::string& state);    // COMPLETED, FAILED, TIMEOUT, ...

// How an ended job ended, naming its Slurm state: FAILED with its exit code or signal,
// OUT_OF_MEMORY, TIMEOUT (timed_out), NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE,
// CANCELLED (by whom, when known). REQUIRES: is_final_state(job.state).
ExitInfo exit_of_job(const JobRecord& job);

}  // namespace culvert::agent::slurm
