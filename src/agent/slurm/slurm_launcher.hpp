// The Slurm launcher (`culvert agent start --type slurm`): each flow run is one Slurm
// batch job, submitted from the machine the agent runs on (a cluster's login node) with
// the Slurm client commands, which must be on the agent's PATH.
//
//   launch: sbatch --parsable (up to submit_parallelism at once), the batch script on
//           stdin (it runs `culvert execute`), the run's environment in sbatch's own
//           environment and named in --export (so the run's token is on no command
//           line, in no job name or comment); job name culvert-<flow>-<run>, comment
//           culvert-run=<run>
//   watch:  one `squeue --json` for all jobs per poll (poll_all); when jobs ended, their
//           final state from one `sacct` call when the cluster keeps accounting
//           (AccountingStorageType, read once from `scontrol show config`), else from
//           squeue's record or, once Slurm forgot the job, the jobcomp/filetxt file
//   start timeout: a job still pending after job_start_timeout is cancelled (scancel)
//           and ends with Slurm's pending reason
//   cancel: scancel --signal=TERM --full, then scancel (SIGKILL) after the grace
//   adopt:  the reported job id, checked against the job's comment (or name); a job never
//           reported is found by its comment among this user's jobs (find)
// A launch is never submitted twice: when sbatch's answer is lost (it timed out, or its
// output is not a job id), the launcher looks for the job by its comment before it
// reports a failure.
//
// Thread safety: launch(), adopt(), find() and poll_all() may run on different threads
// at once (the agent's claim and monitor threads); the launcher guards its own state. A
// Launch is used by one thread at a time.
#pragma once

#include <culvert/clock.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "agent/launcher.hpp"
#include "agent/slurm/slurm_job.hpp"

namespace culvert::agent::slurm {

struct SlurmLauncherOptions {
  SlurmDefaults defaults;
  // The environment the Slurm commands run with (the agent's own; its credentials
  // CULVERT_API_TOKEN, CULVERT_API_URL and CULVERT_PROFILE are never passed on). Its PATH finds sbatch, squeue, sacct, scontrol and
  // scancel.
  std::map<std::string, std::string> command_env;
  std::string user;  // the agent's user name (find() looks among its jobs only)
  Millis job_start_timeout = std::chrono::minutes(10);  // 0: none
  Millis poll_interval{5000};
  Millis command_timeout{60000};  // of each Slurm command
  // How many sbatch calls run at once for the runs of one claim (each a round trip to
  // slurmctld: in a row, the 50th run of a claim would wait for 49 of them).
  int submit_parallelism = 8;
  // Not owned; must outlive the launcher. Default: the system clock.
  Clock* clock = nullptr;
};

// Counts of the Slurm commands run, by command name (for tests and benchmarks).
struct SlurmCallCounts {
  std::map<std::string, long> by_command;
  long total() const {
    long t = 0;
    for (const auto& [k, v] : by_command) t += v;
    return t;
  }
};

class SlurmService;  // runs the commands; shared with the launches

class SlurmLauncher final : public Launcher {
 public:
  explicit SlurmLauncher(SlurmLauncherOptions options);
  ~SlurmLauncher() override;
  std::string type() const override { return "slurm"; }
  std::chrono::milliseconds poll_interval() const override;
  Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) override;
  int launch_parallelism() const override;
  // infra.kind "slurm-job", infra.id the job id.
  Result<std::unique_ptr<Launch>> adopt(const LaunchSpec& spec, const Infrastructure& infra) override;
  // The run's job among the jobs Slurm knows, by its comment (and this user's).
  Result<std::unique_ptr<Launch>> find(const LaunchSpec& spec) override;
  std::vector<std::optional<ExitInfo>> poll_all(const std::vector<Launch*>& launches) override;

  SlurmCallCounts call_counts() const;

 private:
  std::shared_ptr<SlurmService> service_;
};

}  // namespace culvert::agent::slurm
