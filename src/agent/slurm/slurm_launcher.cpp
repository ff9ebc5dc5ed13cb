#include "agent/slurm/slurm_launcher.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <charconv>
#include <mutex>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "agent/launcher_registry.hpp"
#include "agent/slurm/slurm_command.hpp"
#include "core/timefmt.hpp"

namespace culvert::agent::slurm {

namespace {
constexpr size_t kMaxSqueueOutput = 256 * 1024 * 1024;
constexpr size_t kMaxJobcompRead = 8 * 1024 * 1024;  // the tail of the jobcomp file
constexpr size_t kOutputTailLines = 50;
constexpr size_t kOutputTailBytes = 64 * 1024;
constexpr int kMissingPolls = 3;  // polls a job may be unknown to every source before it is gone

std::string first_lines(const std::string& s, size_t n = 3) {
  std::istringstream in(s);
  std::string out;
  size_t i = 0;
  for (std::string line; i < n && std::getline(in, line);) {
    if (line.empty()) continue;
    out += (out.empty() ? "" : "; ") + line;
    ++i;
  }
  return out.empty() ? "(no message)" : out;
}

std::string minutes_text(Millis d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s % 60 == 0) return fmt::format("{} min", s / 60);
  return fmt::format("{} s", s);
}

// The last lines of the job's output file, introduced by a line naming it.
std::vector<std::string> output_tail(const std::string& job_id, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {fmt::format("[slurm] job {} left no output file {} (is --job-output-dir on a filesystem the login node "
                        "shares with the compute nodes?)",
                        job_id, path)};
  }
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff from = size > static_cast<std::streamoff>(kOutputTailBytes) ? size - kOutputTailBytes : 0;
  in.seekg(from);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  std::istringstream ls(text);
  for (std::string line; std::getline(ls, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line.substr(0, 4096));
  }
  if (from > 0 && !lines.empty()) lines.erase(lines.begin());  // a partial first line
  if (lines.size() > kOutputTailLines) lines.erase(lines.begin(), lines.end() - kOutputTailLines);
  if (lines.empty()) return {fmt::format("[slurm] job {}'s output file {} is empty", job_id, path)};
  lines.insert(lines.begin(), fmt::format("[slurm] the run never reached Running; the last {} line(s) of job {}'s "
                                          "own output ({}):",
                                          lines.size(), job_id, path));
  return lines;
}
}  // namespace

// Runs the Slurm commands and remembers what it learnt of the cluster. Thread-safe.
class SlurmService {
 public:
  explicit SlurmService(SlurmLauncherOptions o) : options(std::move(o)) {
    if (!options.clock) options.clock = &system_clock();
  }

  Result<CommandOutput> run(std::vector<std::string> argv, const std::map<std::string, std::string>* env = nullptr,
                            const std::string& input = "", size_t max_output = 16 * 1024 * 1024) {
    {
      std::lock_guard lock(mu_);
      counts_.by_command[argv[0]]++;
    }
    CommandOptions co;
    co.env = env ? *env : options.command_env;
    co.input = input;
    co.timeout = options.command_timeout;
    co.max_output = max_output;
    return run_command(argv, co);
  }

  // Every job the controller knows (22.05's `squeue --json` ignores filters), by id.
  Result<std::map<std::string, JobRecord>> squeue_all() {
    auto r = run({"squeue", "--json"}, nullptr, "", kMaxSqueueOutput);
    if (!r) return r.status();
    if (r->exit_code != 0)
      return unavailable(fmt::format("squeue --json exited with code {}: {}", r->exit_code, first_lines(r->err)));
    auto jobs = parse_squeue_json(r->out);
    if (!jobs) return unavailable(jobs.status().message());
    std::map<std::string, JobRecord> by_id;
    for (auto& j : *jobs) by_id[j.id] = std::move(j);
    return by_id;
  }

  // What `scontrol show config` says of accounting and the jobcomp file, asked once.
  struct ClusterConfig {
    bool accounting = false;
    std::string jobcomp_file;  // "" : no jobcomp/filetxt
  };
  Result<ClusterConfig> config() {
    {
      std::lock_guard lock(mu_);
      if (config_) return *config_;
    }
    auto r = run({"scontrol", "show", "config"});
    if (!r) return r.status();
    if (r->exit_code != 0)
      return unavailable(fmt::format("scontrol show config exited with code {}: {}", r->exit_code, first_lines(r->err)));
    ClusterConfig c;
    std::string jobcomp_type;
    std::istringstream in(r->out);
    for (std::string line; std::getline(in, line);) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      auto trim = [](std::string s) {
        while (!s.empty() && s.back() == ' ') s.pop_back();
        while (!s.empty() && s.front() == ' ') s.erase(s.begin());
        return s;
      };
      std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
      if (key == "AccountingStorageType") c.accounting = value.find("slurmdbd") != std::string::npos;
      else if (key == "JobCompType") jobcomp_type = value;
      else if (key == "JobCompLoc") c.jobcomp_file = value;
    }
    if (jobcomp_type != "jobcomp/filetxt") c.jobcomp_file.clear();
    spdlog::info("Slurm: accounting {}; jobcomp file {}", c.accounting ? "on (sacct)" : "off",
                 c.jobcomp_file.empty() ? "none" : c.jobcomp_file);
    std::lock_guard lock(mu_);
    config_ = c;
    return c;
  }

  // Final records of `ids` from sacct (accounting) or the jobcomp file; jobs that neither
  // knows (yet) are absent. An error when the source cannot be read.
  Result<std::map<std::string, JobRecord>> final_records(const std::vector<std::string>& ids) {
    std::map<std::string, JobRecord> out;
    if (ids.empty()) return out;
    auto c = config();
    if (!c) return c.status();
    if (c->accounting) {
      std::string list;
      for (const auto& id : ids) list += (list.empty() ? "" : ",") + id;
      auto r = run({"sacct", "-X", "-P", "-n", "-j", list, "-o", "JobID,State,ExitCode,JobName,Comment,ReqMem"});
      if (!r) return r.status();
      if (r->exit_code != 0)
        return unavailable(fmt::format("sacct exited with code {}: {}", r->exit_code, first_lines(r->err)));
      for (auto& rec : parse_sacct(r->out))
        if (is_final_state(rec.state)) out[rec.id] = std::move(rec);
      return out;
    }
    if (c->jobcomp_file.empty()) return out;
    std::ifstream in(c->jobcomp_file, std::ios::binary);
    if (!in) return out;  // nothing ended yet
    in.seekg(0, std::ios::end);
    std::streamoff size = in.tellg();
    std::streamoff from = size > static_cast<std::streamoff>(kMaxJobcompRead) ? size - kMaxJobcompRead : 0;
    in.seekg(from);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto all = parse_jobcomp(text);
    for (const auto& id : ids)
      if (auto it = all.find(id); it != all.end() && is_final_state(it->second.state)) out[id] = it->second;
    return out;
  }

  Status scancel(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"scancel"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv);
    if (!r) return r.status();
    if (r->exit_code != 0) {
      // An ended job: nothing left to cancel.
      if (r->err.find("already completing or completed") != std::string::npos ||
          r->err.find("Invalid job id") != std::string::npos)
        return Status::ok();
      return unavailable(fmt::format("scancel exited with code {}: {}", r->exit_code, first_lines(r->err)));
    }
    return Status::ok();
  }

  SlurmCallCounts counts() const {
    std::lock_guard lock(mu_);
    return counts_;
  }

  SlurmLauncherOptions options;

 private:
  mutable std::mutex mu_;
  std::optional<ClusterConfig> config_;  // guarded by mu_
  SlurmCallCounts counts_;               // guarded by mu_
};

namespace {

class SlurmLaunch final : public Launch {
 public:
  SlurmLaunch(std::shared_ptr<SlurmService> service, std::string job_id, std::string run_id, std::string output_path)
      : service_(std::move(service)), job_id_(std::move(job_id)), run_id_(std::move(run_id)),
        output_path_(std::move(output_path)), started_(service_->options.clock->steady_now()) {}

  std::optional<ExitInfo> poll() override {
    std::vector<SlurmLaunch*> one = {this};
    auto jobs = service_->squeue_all();
    if (!jobs) {
      spdlog::warn("watching Slurm job {}: {}", job_id_, jobs.status().to_string());
      return exit_;
    }
    update_all(*service_, one, *jobs);
    return exit_;
  }

  void stop(std::chrono::milliseconds grace) override {
    stopping_ = true;
    Clock& clock = *service_->options.clock;
    auto jobs = service_->squeue_all();
    const JobRecord* job = nullptr;
    if (jobs) {
      auto it = jobs->find(job_id_);
      if (it != jobs->end()) job = &it->second;
    }
    if (job && is_final_state(job->state)) return;
    if (job && is_pending_state(job->state)) {
      Status st = service_->scancel({job_id_});
      if (!st.is_ok()) spdlog::warn("run {}: scancel of pending Slurm job {} failed: {}", run_id_, job_id_, st.to_string());
      return;
    }
    Status st = service_->scancel({"--signal=TERM", "--full", job_id_});
    if (!st.is_ok()) spdlog::warn("run {}: scancel --signal=TERM of Slurm job {} failed: {}", run_id_, job_id_, st.to_string());
    const SteadyTime deadline = clock.steady_now() + grace;
    while (clock.steady_now() < deadline) {
      clock.sleep_for(std::min<Millis>(Millis(500), std::chrono::duration_cast<Millis>(deadline - clock.steady_now())));
      auto now = service_->squeue_all();
      if (!now) continue;
      auto it = now->find(job_id_);
      if (it == now->end() || is_final_state(it->second.state)) return;
    }
    st = service_->scancel({job_id_});
    if (!st.is_ok()) spdlog::warn("run {}: scancel of Slurm job {} failed: {}", run_id_, job_id_, st.to_string());
  }

  std::string describe() const override { return "Slurm job " + job_id_; }
  Infrastructure infrastructure() const override { return {"slurm-job", job_id_}; }
  const std::string& job_id() const { return job_id_; }
  bool ended() const { return exit_.has_value(); }
  const std::optional<ExitInfo>& exit() const { return exit_; }

  void finish(const JobRecord& job) {
    ExitInfo e = exit_of_job(job);
    if (job.state == "CANCELLED" && stopping_) e.reason = fmt::format("Slurm job {} ended CANCELLED (scancel by this agent)", job_id_);
    // Attached by the agent only when the run never reached Running.
    e.output_if_never_running = output_tail(job_id_, output_path_);
    exit_ = std::move(e);
  }

  // Updates `launches` from one squeue listing, then asks sacct (or the jobcomp file)
  // about those that ended or that squeue no longer knows, in one call.
  static void update_all(SlurmService& service, const std::vector<SlurmLaunch*>& launches,
                         const std::map<std::string, JobRecord>& jobs) {
    std::vector<SlurmLaunch*> need_final;
    std::map<std::string, const JobRecord*> seen_final;
    for (SlurmLaunch* l : launches) {
      if (l->ended()) continue;
      auto it = jobs.find(l->job_id_);
      if (it == jobs.end()) {
        need_final.push_back(l);
        continue;
      }
      l->missing_ = 0;
      const JobRecord& job = it->second;
      if (is_final_state(job.state)) {
        seen_final[l->job_id_] = &job;
        need_final.push_back(l);
        continue;
      }
      if (!is_pending_state(job.state)) {
        l->reached_running_ = true;
        continue;
      }
      l->check_start_timeout(service, job);
    }
    if (need_final.empty()) return;
    std::vector<std::string> ids;
    for (SlurmLaunch* l : need_final) ids.push_back(l->job_id_);
    auto finals = service.final_records(ids);
    if (!finals) spdlog::warn("reading the final state of {} Slurm job(s): {}", ids.size(), finals.status().to_string());
    for (SlurmLaunch* l : need_final) {
      const JobRecord* from_squeue = seen_final.count(l->job_id_) ? seen_final[l->job_id_] : nullptr;
      const JobRecord* from_final = nullptr;
      if (finals)
        if (auto it = finals->find(l->job_id_); it != finals->end()) from_final = &it->second;
      if (from_final) {
        JobRecord merged = *from_final;
        if (from_squeue) {  // squeue knows what the job asked for
          merged.memory_set = merged.memory_set || from_squeue->memory_set;
          if (merged.memory.empty()) merged.memory = from_squeue->memory;
        }
        l->finish(merged);
      } else if (from_squeue) {
        l->finish(*from_squeue);  // accounting lags a moment, or there is none
      } else if (++l->missing_ >= kMissingPolls) {
        l->exit_ = ExitInfo{.exit_code = -1,
                            .reason = fmt::format("Slurm job {} is gone: neither squeue nor {} knows it", l->job_id_,
                                                  "sacct or the jobcomp file")};
      }
    }
  }

 private:
  void check_start_timeout(SlurmService& service, const JobRecord& job) {
    const Millis timeout = service.options.job_start_timeout;
    if (timeout.count() <= 0 || service.options.clock->steady_now() - started_ < timeout) return;
    std::string why = fmt::format("Slurm job {} was still {} after {} (--job-start-timeout); Slurm's reason: {}",
                                  job_id_, job.state, minutes_text(timeout), job.reason.empty() ? "none given" : job.reason);
    Status st = service.scancel({job_id_});
    if (!st.is_ok()) spdlog::warn("run {}: scancel of Slurm job {} failed: {}", run_id_, job_id_, st.to_string());
    exit_ = ExitInfo{.exit_code = -1, .reason = why + "; Culvert cancelled it"};
  }

  std::shared_ptr<SlurmService> service_;
  std::string job_id_;
  std::string run_id_;
  std::string output_path_;
  SteadyTime started_;
  bool reached_running_ = false;
  bool stopping_ = false;
  int missing_ = 0;
  std::optional<ExitInfo> exit_;
};

std::string output_path_of(const std::string& pattern, const std::string& job_id) {
  std::string out = pattern;
  if (auto p = out.find("%j"); p != std::string::npos) out.replace(p, 2, job_id);
  return out;
}

// The job whose comment names `run_id` (or, without a comment, whose name ends in it).
const JobRecord* job_of_run(const std::map<std::string, JobRecord>& jobs, const std::string& run_id,
                            const std::string& user) {
  const JobRecord* best = nullptr;
  for (const auto& [id, j] : jobs) {
    if (!user.empty() && !j.user.empty() && j.user != user) continue;
    bool mine = j.comment == job_comment_for(run_id) || (j.comment.empty() && j.name.ends_with("-" + run_id) &&
                                                         j.name.starts_with("culvert-"));
    if (!mine) continue;
    // Of two (never submitted twice by us, but a user may), the newest, unless ended.
    if (!best || (is_final_state(best->state) && !is_final_state(j.state)) || std::stoll(j.id) > std::stoll(best->id))
      best = &j;
  }
  return best;
}

}  // namespace

SlurmLauncher::SlurmLauncher(SlurmLauncherOptions options)
    : service_(std::make_shared<SlurmService>(std::move(options))) {}

SlurmLauncher::~SlurmLauncher() = default;

std::chrono::milliseconds SlurmLauncher::poll_interval() const { return service_->options.poll_interval; }

int SlurmLauncher::launch_parallelism() const { return service_->options.submit_parallelism; }

SlurmCallCounts SlurmLauncher::call_counts() const { return service_->counts(); }

Result<std::unique_ptr<Launch>> SlurmLauncher::launch(const LaunchSpec& spec) {
  auto rc = parse_slurm_run_config(spec.run_config_json);
  if (!rc) return rc.status();
  auto sub = build_submission(service_->options.defaults, *rc, spec, service_->options.command_env);
  if (!sub) return sub.status();
  auto r = service_->run(sub->argv, &sub->env, sub->script);
  std::string job_id;
  if (r && r->exit_code == 0) {
    std::string out = r->out;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
    job_id = out.substr(0, out.find(';'));  // "12" or "12;cluster"
    if (job_id.empty() || !std::all_of(job_id.begin(), job_id.end(), ::isdigit)) job_id.clear();
  } else if (r) {
    // sbatch refused it: nothing was submitted.
    return Status(StatusCode::kUnavailable,
                  fmt::format("sbatch refused the job (exit code {}): {}", r->exit_code, first_lines(r->err)));
  }
  if (job_id.empty()) {
    // The answer was lost (sbatch timed out, or printed something else): the job may
    // exist. Look for it before saying it does not, so a run never has two jobs.
    std::string why = r ? fmt::format("sbatch printed '{}' instead of a job id", r->out.substr(0, 200))
                        : r.status().message();
    auto jobs = service_->squeue_all();
    if (jobs) {
      if (const JobRecord* j = job_of_run(*jobs, spec.flow_run_id, service_->options.user)) {
        spdlog::warn("run {}: {}; found its job {} by its comment", spec.flow_run_id, why, j->id);
        return std::unique_ptr<Launch>(std::make_unique<SlurmLaunch>(service_, j->id, spec.flow_run_id,
                                                                     output_path_of(sub->output_pattern, j->id)));
      }
      return unavailable(why + "; no job of the run is known to Slurm");
    }
    return unavailable(why + "; and whether a job was submitted is unknown: " + jobs.status().message());
  }
  return std::unique_ptr<Launch>(
      std::make_unique<SlurmLaunch>(service_, job_id, spec.flow_run_id, output_path_of(sub->output_pattern, job_id)));
}

Result<std::unique_ptr<Launch>> SlurmLauncher::adopt(const LaunchSpec& spec, const Infrastructure& infra) {
  if (infra.kind != "slurm-job")
    return Status(StatusCode::kUnprocessable, "a slurm agent cannot adopt " + infra.kind + " " + infra.id);
  if (infra.id.empty() || !std::all_of(infra.id.begin(), infra.id.end(), ::isdigit))
    return Status(StatusCode::kUnprocessable, "'" + infra.id + "' is not a Slurm job id");
  const std::string output =
      service_->options.defaults.job_output_dir + "/" + spec.flow_run_id + "-" + infra.id + ".out";
  auto jobs = service_->squeue_all();
  if (!jobs) return jobs.status();
  auto launch = std::make_unique<SlurmLaunch>(service_, infra.id, spec.flow_run_id, output);
  if (auto it = jobs->find(infra.id); it != jobs->end()) {
    const JobRecord& j = it->second;
    if (j.comment != job_comment_for(spec.flow_run_id) && !j.name.ends_with("-" + spec.flow_run_id))
      return Status(StatusCode::kUnprocessable,
                    fmt::format("Slurm job {} is not the job of run {} (its comment is '{}', its name '{}')", infra.id,
                                spec.flow_run_id, j.comment, j.name));
    std::vector<SlurmLaunch*> one = {launch.get()};
    SlurmLaunch::update_all(*service_, one, *jobs);
    return std::unique_ptr<Launch>(std::move(launch));
  }
  // Slurm's controller forgot it (it ended over MinJobAge ago): its end, if recorded.
  auto finals = service_->final_records({infra.id});
  if (!finals) return finals.status();
  if (auto it = finals->find(infra.id); it != finals->end()) {
    launch->finish(it->second);
    return std::unique_ptr<Launch>(std::move(launch));
  }
  return not_found(fmt::format("the run's Slurm job {} is gone (neither squeue nor sacct or the jobcomp file knows it)",
                               infra.id));
}

Result<std::unique_ptr<Launch>> SlurmLauncher::find(const LaunchSpec& spec) {
  auto jobs = service_->squeue_all();
  if (!jobs) return jobs.status();
  const JobRecord* j = job_of_run(*jobs, spec.flow_run_id, service_->options.user);
  if (!j) return not_found("no Slurm job of run " + spec.flow_run_id + " is known to squeue");
  auto launch = std::make_unique<SlurmLaunch>(
      service_, j->id, spec.flow_run_id,
      service_->options.defaults.job_output_dir + "/" + spec.flow_run_id + "-" + j->id + ".out");
  std::vector<SlurmLaunch*> one = {launch.get()};
  SlurmLaunch::update_all(*service_, one, *jobs);
  return std::unique_ptr<Launch>(std::move(launch));
}

std::vector<std::optional<ExitInfo>> SlurmLauncher::poll_all(const std::vector<Launch*>& launches) {
  std::vector<SlurmLaunch*> mine;
  std::vector<SlurmLaunch*> open;
  for (Launch* l : launches) {
    auto* s = dynamic_cast<SlurmLaunch*>(l);
    mine.push_back(s);
    if (s && !s->ended()) open.push_back(s);
  }
  if (!open.empty()) {
    auto jobs = service_->squeue_all();
    if (jobs) SlurmLaunch::update_all(*service_, open, *jobs);
    else spdlog::warn("watching {} Slurm job(s): {}", open.size(), jobs.status().to_string());
  }
  std::vector<std::optional<ExitInfo>> out;
  out.reserve(launches.size());
  for (size_t i = 0; i < launches.size(); ++i) out.push_back(mine[i] ? mine[i]->exit() : launches[i]->poll());
  return out;
}

}  // namespace culvert::agent::slurm

namespace culvert::agent {

LauncherType slurm_launcher_type() {
  using Kind = LauncherFlag::Kind;
  return LauncherType{
      .type = "slurm",
      .description = "runs each flow run as a Slurm batch job (sbatch), from a cluster's login node",
      .flags =
          {{"partition", "slurm: the partition of the jobs (default: Slurm's; the run config's partition wins)"},
           {"account", "slurm: the account the jobs are charged to (the run config's account wins)"},
           {"qos", "slurm: the quality of service of the jobs (the run config's qos wins)"},
           {"sbatch-option", "slurm: an extra sbatch option, --name=value (repeatable; the run config's come after)",
            Kind::kRepeated},
           {"job-output-dir",
            "slurm: where each job's own stdout/stderr goes, on a filesystem the compute nodes share "
            "(default ~/.culvert/slurm)"},
           {"job-start-timeout", "slurm: cancel a job, and crash its run, when still pending after this (default 10m)"},
           {"poll-interval", "slurm: how often the jobs are listed, one squeue call for all (default 5s)"},
           {"culvert-binary", "slurm: the culvert the jobs run, as the compute nodes see it (default: this one)"},
           {"submit-parallelism",
            "slurm: how many sbatch calls run at once for the runs of one claim (default 8; 1: one after another)"}},
      .factory = [](const LauncherContext& ctx) -> Result<std::unique_ptr<Launcher>> {
        auto flag = [&](const std::string& name) -> std::string {
          auto it = ctx.flags.find(name);
          return it == ctx.flags.end() ? std::string() : it->second;
        };
        slurm::SlurmLauncherOptions o;
        slurm::SlurmDefaults& d = o.defaults;
        for (auto [name, into] : {std::pair{"partition", &d.partition}, std::pair{"account", &d.account},
                                  std::pair{"qos", &d.qos}}) {
          *into = flag(name);
          if (into->empty()) continue;
          Status st = slurm::check_slurm_name(*into, std::string("--") + name);
          if (!st.is_ok()) return st;
        }
        if (auto it = ctx.repeated_flags.find("sbatch-option"); it != ctx.repeated_flags.end())
          for (const auto& opt : it->second) {
            Status st = slurm::check_sbatch_option(opt, "--sbatch-option");
            if (!st.is_ok()) return st;
            d.sbatch_options.push_back(opt);
          }
        for (auto [name, value] : {std::pair{"job-start-timeout", &o.job_start_timeout},
                                   std::pair{"poll-interval", &o.poll_interval}}) {
          if (flag(name).empty()) continue;
          auto dur = parse_duration(flag(name));
          if (!dur || dur->count() <= 0)
            return invalid_argument(fmt::format("--{} '{}' is not a duration above 0 (e.g. 90s, 10m)", name, flag(name)));
          *value = *dur;
        }
        if (std::string p = flag("submit-parallelism"); !p.empty()) {
          int n = 0;
          auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
          if (ec != std::errc() || end != p.data() + p.size() || n < 1 || n > 64)
            return invalid_argument(fmt::format("--submit-parallelism '{}' is not a whole number from 1 to 64", p));
          o.submit_parallelism = n;
        }
        std::map<std::string, std::string> env = slurm::process_environment();
        if (ctx.getenv) {
          // The agent's own variables as its context sees them (tests give their own).
          for (const char* k : {"PATH", "HOME", "SLURM_CONF", "USER"})
            if (auto v = ctx.getenv(k)) env[k] = *v;
        }
        for (auto it = env.begin(); it != env.end();) {
          if (slurm::is_agent_credential(it->first)) it = env.erase(it);
          else ++it;
        }
        o.command_env = env;
        std::string dir = flag("job-output-dir");
        if (dir.empty()) {
          auto home = env.find("HOME");
          if (home == env.end() || home->second.empty())
            return invalid_argument("--job-output-dir is needed: HOME is not set");
          dir = home->second + "/.culvert/slurm";
        }
        std::error_code ec;
        dir = std::filesystem::absolute(dir, ec).lexically_normal().string();
        if (!dir.empty() && dir.size() > 1 && dir.back() == '/') dir.pop_back();
        std::filesystem::create_directories(dir, ec);
        if (ec) return invalid_argument("--job-output-dir " + dir + ": " + ec.message());
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, ec);
        d.job_output_dir = dir;
        d.culvert_binary = flag("culvert-binary").empty() ? ctx.culvert_binary : flag("culvert-binary");
        if (d.culvert_binary.empty()) return invalid_argument("--culvert-binary is needed: the agent's own path is unknown");
        if (auto u = env.find("USER"); u != env.end()) o.user = u->second;
        if (o.user.empty())
          if (passwd* pw = ::getpwuid(::geteuid())) o.user = pw->pw_name;
        return std::unique_ptr<Launcher>(std::make_unique<slurm::SlurmLauncher>(std::move(o)));
      }};
}

}  // namespace culvert::agent
