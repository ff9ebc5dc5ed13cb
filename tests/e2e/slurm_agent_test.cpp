// End to end with a Slurm agent on a real single-node Slurm 22.05 (scripts/testenv/
// slurm.sh: slurmctld + slurmd, and for the accounting cluster slurmdbd + MariaDB):
// `culvert server start`, `culvert agent start --type slurm`, the e2e flow registered
// with a `slurm` run config, runs submitted with sbatch and executed by `culvert execute`
// in the job. Skips, saying why, only when the daemons cannot start.
//
// The node has no cgroups (a test container), so memory is enforced by jobacct_gather
// with OverMemoryKill: a job over its --mem ends FAILED, killed by signal 9, instead of
// OUT_OF_MEMORY (which needs the cgroup plugin); the run's message says both.
#include <gtest/gtest.h>

#include <signal.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "cli_runs.hpp"
#include "harness.hpp"

namespace culvert::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The path of a Slurm client command (the harness runs argv[0] as given).
std::string slurm_cmd(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"})
    if (fs::exists(fs::path(dir) / name)) return (fs::path(dir) / name).string();
  return name;
}

class SlurmAgentE2E : public ::testing::Test {
 protected:
  // `var`: the environment variable naming the fixture's folder.
  // `heartbeat`: the server's --heartbeat-interval (runs are judged lost after three).
  void start(const char* var, const std::string& run_config, const std::string& heartbeat = "1s") {
    const char* dir = std::getenv(var);
    ASSERT_NE(dir, nullptr) << "run through ctest (the Slurm fixtures)";
    if (fs::exists(fs::path(dir) / "missing")) GTEST_SKIP() << trim(read_file(fs::path(dir) / "missing"));
    std::istringstream in(read_file(fs::path(dir) / "env"));
    for (std::string line; std::getline(in, line);)
      if (auto eq = line.find('='); eq != std::string::npos) slurm_env_[line.substr(0, eq)] = line.substr(eq + 1);
    ASSERT_FALSE(slurm_env_["SLURM_CONF"].empty()) << "no SLURM_CONF in " << dir;
    accounting_ = slurm_env_.count("SLURM_ACCOUNTING") > 0;
    slurm_env_.erase("SLURM_ACCOUNTING");
    server_ = std::make_unique<TestServer>(
        sandbox_, std::vector<std::string>{"--heartbeat-interval", heartbeat, "--submitted-deadline", "1h"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    register_flow(run_config);
  }

  void register_flow(const std::string& run_config) {
    auto r = sandbox_.culvert({"flow", "register", build_path("tests/e2e/e2e_flow"), "--project", "demo", "--storage",
                               "file://" + (sandbox_.dir() / "flows").string(), "--label", "hpc", "--run-config",
                               run_config},
                              api_env());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  std::map<std::string, std::string> api_env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()}};
  }
  // The environment of Slurm commands run by the test itself.
  std::map<std::string, std::string> slurm_env() const {
    auto env = sandbox_.env(slurm_env_);
    env["PATH"] = env["PATH"] + ":/usr/sbin";
    return env;
  }

  std::unique_ptr<Process> start_agent(int max_concurrent = 4, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", "slurm", "--name", "hpc-login",
                                     "--label", "hpc", "--max-concurrent", std::to_string(max_concurrent),
                                     "--heartbeat-seconds", "1", "--poll-interval", "500ms", "--job-output-dir",
                                     (sandbox_.dir() / "job-output").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto env = sandbox_.env(api_env());
    for (const auto& [k, v] : slurm_env_) env[k] = v;
    env["CULVERT_HEARTBEAT_SECONDS"] = "1";
    env["CULVERT_CANCEL_POLL_MS"] = "200";
    return std::make_unique<Process>(argv, env, sandbox_.dir() / ("agent-" + std::to_string(++agents_) + ".log"));
  }

  std::string create_run(const std::vector<std::string>& extra = {}) {
    std::string id = cli_create_run(sandbox_, api_env(), "e2e", "demo", extra);
    EXPECT_FALSE(id.empty());
    return id;
  }

  json get_run(const std::string& id) { return cli_inspect_run(sandbox_, api_env(), id); }
  std::string state_of(const std::string& id) { return get_run(id).value("state", ""); }
  bool is_final(const std::string& s) { return is_final_state(s); }
  // The Slurm job id the agent reported for the run ("" until it did).
  std::string job_of(const std::string& id) {
    json run = get_run(id);
    for (const char* key : {"infrastructure", "infra"})
      if (run.contains(key) && run[key].is_object() && run[key].value("kind", "") == "slurm-job")
        return run[key].value("id", "");
    if (run.value("infrastructure_kind", "") == "slurm-job") return run.value("infrastructure_id", "");
    return "";
  }
  // The job's state as the controller has it (scontrol show job), "" once forgotten.
  std::string job_state(const std::string& job) {
    auto r = sandbox_.run({slurm_cmd("scontrol"), "show", "job", job}, slurm_env(), 30s);
    auto pos = r.out.find("JobState=");
    if (pos == std::string::npos) return "";
    return r.out.substr(pos + 9, r.out.find(' ', pos) - pos - 9);
  }
  std::string logs_of(const std::string& id) { return sandbox_.culvert({"get", "logs", id}, api_env()).out; }

  Sandbox sandbox_;
  std::unique_ptr<TestServer> server_;
  std::map<std::string, std::string> slurm_env_;
  bool accounting_ = false;
  int agents_ = 0;
};

TEST_F(SlurmAgentE2E, AFlowRunsAsAJobToSuccessWithItsLogsOnTheServer) {
  start("CULVERT_SLURM_ACCT_DIR", R"({"type":"slurm","cpus":1,"memory":"200M","time_limit":"10m"})");
  ASSERT_TRUE(accounting_);
  auto agent = start_agent();
  std::string id = create_run({"--param", "sleep_ms=200"});
  ASSERT_TRUE(wait_until([&] { return is_final(state_of(id)); }, 120s)) << state_of(id) << agent->output();
  json run = get_run(id);
  EXPECT_EQ(run.value("state", ""), "Success") << run.dump() << agent->output();
  std::string job = job_of(id);
  EXPECT_FALSE(job.empty()) << run.dump();
  std::string logs = logs_of(id);
  EXPECT_NE(logs.find("hello from the e2e flow, run " + id), std::string::npos) << logs;
  EXPECT_NE(logs.find("work done after 200 ms"), std::string::npos) << logs;
  // sacct has the job, by the name the agent gave it.
  // (Accounting lags a moment behind the job's end.)
  CommandResult sacct;
  EXPECT_TRUE(wait_until([&] {
    sacct = sandbox_.run({slurm_cmd("sacct"), "-X", "-P", "-n", "-j", job, "-o", "JobName,State"}, slurm_env(), 30s);
    return sacct.out.find("culvert-e2e-" + id + "|COMPLETED") != std::string::npos;
  }, 30s)) << sacct.out << sacct.err;
  // The run's token is on no command line, in no job name or comment.
  auto show = sandbox_.run({slurm_cmd("scontrol"), "show", "job", job}, slurm_env(), 30s);
  EXPECT_EQ(show.out.find("CULVERT_API_TOKEN="), std::string::npos) << show.out;
}

TEST_F(SlurmAgentE2E, WithoutAccountingTheEndComesFromTheController) {
  start("CULVERT_SLURM_DIR", R"({"type":"slurm"})");
  ASSERT_FALSE(accounting_);
  auto agent = start_agent();
  std::string ok = create_run();
  std::string failing = create_run({"--param", "fail=true"});
  ASSERT_TRUE(wait_until([&] { return is_final(state_of(ok)) && is_final(state_of(failing)); }, 120s))
      << agent->output();
  EXPECT_EQ(state_of(ok), "Success");
  EXPECT_EQ(state_of(failing), "Failed");  // reported by the run itself
}

TEST_F(SlurmAgentE2E, AJobOverItsMemoryIsCrashedNamingWhatSlurmDid) {
  start("CULVERT_SLURM_DIR", R"({"type":"slurm","memory":"60M"})");
  auto agent = start_agent();
  std::string id = create_run({"--param", "alloc_mb=400"});
  ASSERT_TRUE(wait_until([&] { return is_final(state_of(id)); }, 120s)) << state_of(id) << agent->output();
  json run = get_run(id);
  EXPECT_EQ(run.value("state", ""), "Crashed") << run.dump();
  std::string msg = run.value("state_message", "");
  // Without cgroups: FAILED, killed by signal 9, over its --mem (with cgroups: OUT_OF_MEMORY).
  EXPECT_TRUE(msg.find("OUT_OF_MEMORY") != std::string::npos ||
              (msg.find("FAILED: killed by signal 9 (SIGKILL); it asked for --mem=60M") != std::string::npos))
      << msg;
}

TEST_F(SlurmAgentE2E, AJobOverItsTimeLimitIsTimedOut) {
  // Slurm's time limits are whole minutes, and the controller checks them every 30 s.
  start("CULVERT_SLURM_ACCT_DIR", R"({"type":"slurm","time_limit":"1"})");
  auto agent = start_agent();
  std::string id = create_run({"--param", "sleep_ms=600000"});
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Running"; }, 60s)) << state_of(id) << agent->output();
  ASSERT_TRUE(wait_until([&] { return is_final(state_of(id)); }, 240s)) << state_of(id) << agent->output();
  json run = get_run(id);
  EXPECT_EQ(run.value("state", ""), "TimedOut") << run.dump() << agent->output();
  EXPECT_NE(run.value("state_message", "").find("TIMEOUT"), std::string::npos) << run.dump();
}

TEST_F(SlurmAgentE2E, CancelEndsTheJob) {
  start("CULVERT_SLURM_ACCT_DIR", R"({"type":"slurm"})");
  auto agent = start_agent();
  std::string id = create_run({"--param", "sleep_ms=600000"});
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Running"; }, 60s)) << state_of(id) << agent->output();
  std::string job = job_of(id);
  ASSERT_FALSE(job.empty());
  EXPECT_EQ(job_state(job), "RUNNING");
  auto c = sandbox_.culvert({"run", "cancel", id}, api_env());
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "Cancelled"; }, 60s)) << state_of(id) << agent->output();
  ASSERT_TRUE(wait_until([&] {
    std::string s = job_state(job);
    return s == "CANCELLED" || s == "COMPLETED" || s == "FAILED" || s.empty();
  }, 60s)) << job_state(job);
  auto q = sandbox_.run({slurm_cmd("squeue"), "-h", "-j", job, "-t", "PENDING,RUNNING,COMPLETING"}, slurm_env(), 30s);
  EXPECT_EQ(trim(q.out), "") << "job " << job << " still in the queue";
}

TEST_F(SlurmAgentE2E, AnAgentKilledMidRunAndRestartedStillEndsTheRunRight) {
  // The server's own judgement (no heartbeats for 60 s) comes after the agent's: what is
  // checked is that the restarted agent learns the job's end from Slurm.
  start("CULVERT_SLURM_ACCT_DIR", R"({"type":"slurm"})", "20s");
  auto agent = start_agent();
  fs::path marker = sandbox_.dir() / "executions";
  // One run that ends on its own while the agent is down, one killed behind its back.
  std::string ok = create_run({"--param", "sleep_ms=4000", "--param", "marker=" + marker.string()});
  std::string killed = create_run({"--param", "sleep_ms=600000", "--param", "marker=" + marker.string()});
  ASSERT_TRUE(wait_until([&] { return state_of(ok) == "Running" && state_of(killed) == "Running"; }, 60s))
      << agent->output();
  std::string killed_job = job_of(killed);
  ASSERT_FALSE(killed_job.empty());
  agent->signal(SIGKILL);
  agent->wait(10s);
  // The job is killed with no agent watching: the run never reports its own end.
  auto sig = sandbox_.run({slurm_cmd("scancel"), "--signal=KILL", "--full", killed_job}, slurm_env(), 30s);
  ASSERT_EQ(sig.exit_code, 0) << sig.err;
  ASSERT_TRUE(wait_until([&] { return state_of(ok) == "Success"; }, 60s)) << state_of(ok);
  auto again = start_agent();
  ASSERT_TRUE(wait_until([&] { return is_final(state_of(killed)); }, 60s)) << state_of(killed) << again->output();
  json run = get_run(killed);
  EXPECT_EQ(run.value("state", ""), "Crashed") << run.dump();
  EXPECT_NE(run.value("state_message", "").find("Slurm job " + killed_job), std::string::npos) << run.dump();
  EXPECT_EQ(state_of(ok), "Success");
  // Each run was executed once: nothing was submitted again.
  std::string s = read_file(marker);
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 2) << s;
}

TEST_F(SlurmAgentE2E, AHundredRunsAreAHundredJobsEachExecutedOnce) {
  constexpr int kRuns = 100;
  start("CULVERT_SLURM_ACCT_DIR", R"({"type":"slurm","memory":"20M"})");
  fs::path marker = sandbox_.dir() / "executions";
  auto agent = start_agent(20);
  std::set<std::string> ids;
  std::ostringstream script;
  script << "for i in $(seq 1 " << kRuns << "); do curl -sf -X POST -H 'Authorization: Bearer "
         << server_->admin_token() << "' -H 'Content-Type: application/json' -d '{\"project\":\"demo\",\"flow\":\"e2e\","
         << "\"parameters\":{\"marker\":\"" << marker.string() << "\"}}' " << server_->url()
         << "/api/v1/flow-runs || exit 1; echo; done";
  auto created = sandbox_.run({"/bin/sh", "-c", script.str()}, {}, 300s);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::istringstream lines(created.out);
  for (std::string line; std::getline(lines, line);) {
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("id")) ids.insert(j["id"].get<std::string>());
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kRuns));
  ASSERT_TRUE(wait_until([&] {
    for (const auto& id : ids)
      if (!is_final(state_of(id))) return false;
    return true;
  }, 900s)) << agent->output();
  std::set<std::string> jobs;
  for (const auto& id : ids) {
    EXPECT_EQ(state_of(id), "Success") << id;
    jobs.insert(job_of(id));
  }
  EXPECT_EQ(jobs.size(), static_cast<size_t>(kRuns));
  std::map<std::string, int> executions;
  std::istringstream in(read_file(marker));
  for (std::string id; std::getline(in, id);) executions[id]++;
  EXPECT_EQ(executions.size(), static_cast<size_t>(kRuns));
  for (const auto& [id, n] : executions) EXPECT_EQ(n, 1) << "run " << id << " executed " << n << " times";
  // Slurm's own count: one job named for each run.
  auto sacct = sandbox_.run({slurm_cmd("sacct"), "-X", "-P", "-n", "-S", "now-1hour", "-o", "JobName"}, slurm_env(), 60s);
  std::map<std::string, int> per_name;
  std::istringstream sl(sacct.out);
  for (std::string name; std::getline(sl, name);) per_name[name]++;
  for (const auto& id : ids) EXPECT_EQ(per_name["culvert-e2e-" + id], 1) << id;
}

TEST_F(SlurmAgentE2E, ASetupLineThatFailsAttachesTheJobsOwnOutput) {
  start("CULVERT_SLURM_DIR",
        R"({"type":"slurm","setup":["echo loading the toolchain","module load gcc/12 || no-such-module-command gcc"]})");
  auto agent = start_agent();
  std::string id = create_run();
  ASSERT_TRUE(wait_until([&] { return is_final(state_of(id)); }, 120s)) << state_of(id) << agent->output();
  json run = get_run(id);
  EXPECT_EQ(run.value("state", ""), "Crashed") << run.dump();
  EXPECT_NE(run.value("state_message", "").find("FAILED with exit code 127"), std::string::npos) << run.dump();
  std::string logs = logs_of(id);
  EXPECT_NE(logs.find("loading the toolchain"), std::string::npos) << logs;
  EXPECT_NE(logs.find("no-such-module-command"), std::string::npos) << logs;
}

}  // namespace
}  // namespace culvert::e2e
