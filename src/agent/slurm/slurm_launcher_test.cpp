// The Slurm launcher against fake sbatch, squeue, sacct, scontrol and scancel: shell
// scripts the test writes first on the PATH, run by the launcher's real command runner.
// Each fake records its arguments (sbatch also its environment and stdin) and answers
// with what the test put in its answer files.
#include "agent/slurm/slurm_launcher.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent/launcher_registry.hpp"

namespace culvert::agent::slurm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// One job of a squeue --json answer, as Slurm 22.05 writes it (only the fields read).
json squeue_job(int id, const std::string& state, const std::string& run_id, int wait_status = 0,
                const std::string& reason = "None", bool mem = false) {
  json j = {{"job_id", id},          {"name", "culvert-etl-" + run_id}, {"comment", "culvert-run=" + run_id},
            {"user_name", "alice"},  {"job_state", state},              {"state_reason", reason},
            {"exit_code", wait_status}, {"flags", json::array()},       {"memory_per_node", nullptr}};
  if (mem) {
    j["flags"].push_back("JOB_MEM_SET");
    j["memory_per_node"] = 50;
  }
  return j;
}

class SlurmLauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("culvert-slurm-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "bin");
    fs::create_directories(dir_ / "out");
    for (const char* cmd : {"sbatch", "squeue", "sacct", "scontrol", "scancel"}) {
      std::string script = "#!/bin/sh\nd='" + dir_.string() + "'\nc=" + cmd +
                           "\n"
                           "n=$(cat \"$d/$c.count\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$d/$c.count\"\n"
                           "printf '%s\\n' \"$@\" > \"$d/$c.$n.args\"\n"
                           "if [ $c = sbatch ]; then env > \"$d/$c.$n.env\"; cat > \"$d/$c.$n.stdin\"; fi\n"
                           "[ -f \"$d/$c.err\" ] && cat \"$d/$c.err\" >&2\n"
                           "[ -f \"$d/$c.out\" ] && cat \"$d/$c.out\"\n"
                           "[ -f \"$d/$c.sleep\" ] && sleep \"$(cat \"$d/$c.sleep\")\"\n"
                           "exit $(cat \"$d/$c.rc\" 2>/dev/null || echo 0)\n";
      write(dir_ / "bin" / cmd, script);
      fs::permissions(dir_ / "bin" / cmd, fs::perms::owner_all);
    }
    write(dir_ / "sbatch.out", "101\n");
    write(dir_ / "scontrol.out", "AccountingStorageType   = accounting_storage/none\nJobCompType = jobcomp/filetxt\n"
                                 "JobCompLoc              = " + (dir_ / "jobcomp.txt").string() + "\n");
    set_jobs(json::array());
  }
  void TearDown() override { fs::remove_all(dir_); }

  SlurmLauncherOptions options() {
    SlurmLauncherOptions o;
    o.defaults.job_output_dir = (dir_ / "out").string();
    o.defaults.culvert_binary = "/opt/culvert/bin/culvert";
    o.command_env = {{"PATH", (dir_ / "bin").string() + ":/usr/bin:/bin"}, {"HOME", "/home/alice"}, {"USER", "alice"}};
    o.user = "alice";
    o.clock = &clock_;
    o.job_start_timeout = 10min;
    return o;
  }
  std::unique_ptr<SlurmLauncher> make(SlurmLauncherOptions o) { return std::make_unique<SlurmLauncher>(std::move(o)); }
  std::unique_ptr<SlurmLauncher> make() { return make(options()); }

  void set_jobs(const json& jobs) { write(dir_ / "squeue.out", json{{"jobs", jobs}, {"errors", json::array()}}.dump()); }
  void with_accounting() {
    write(dir_ / "scontrol.out", "AccountingStorageType = accounting_storage/slurmdbd\nJobCompType = jobcomp/none\n");
  }
  int calls(const std::string& cmd) {
    auto t = slurp(dir_ / (cmd + ".count"));
    return t.empty() ? 0 : std::stoi(t);
  }
  std::vector<std::string> args(const std::string& cmd, int n) {
    return lines_of(slurp(dir_ / (cmd + "." + std::to_string(n) + ".args")));
  }

  LaunchSpec spec(const std::string& run_id = "run-1", const std::string& run_config = R"({"type":"slurm"})") {
    LaunchSpec s;
    s.flow_run_id = run_id;
    s.flow_id = "flow-v1";
    s.flow_name = "etl";
    s.run_config_json = run_config;
    s.env = {{"CULVERT_API_URL", "http://127.0.0.1:4200"},
             {"CULVERT_API_TOKEN", "secret-run-token"},
             {"CULVERT_FLOW_RUN_ID", run_id},
             {"CULVERT_WORKERS", "2"}};
    return s;
  }

  // Launches spec(run_id) as job `id`.
  std::unique_ptr<Launch> launch(SlurmLauncher& l, const std::string& run_id, int id,
                                 const std::string& run_config = R"({"type":"slurm"})") {
    write(dir_ / "sbatch.out", std::to_string(id) + "\n");
    auto r = l.launch(spec(run_id, run_config));
    EXPECT_TRUE(r) << r.status().to_string();
    return r ? std::move(*r) : nullptr;
  }

  fs::path dir_;
  ManualClock clock_;
};

TEST_F(SlurmLauncherTest, SubmitsWithItsNameCommentOutputAndTheEnvironmentByNameOnly) {
  auto l = make();
  auto r = l->launch(spec());
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ((*r)->infrastructure().kind, "slurm-job");
  EXPECT_EQ((*r)->infrastructure().id, "101");
  EXPECT_EQ((*r)->describe(), "Slurm job 101");
  ASSERT_EQ(calls("sbatch"), 1);
  auto a = args("sbatch", 1);
  EXPECT_EQ(a[0], "--parsable");
  EXPECT_TRUE(contains(a, "--job-name=culvert-etl-run-1"));
  EXPECT_TRUE(contains(a, "--comment=culvert-run=run-1"));
  EXPECT_TRUE(contains(a, "--output=" + (dir_ / "out").string() + "/run-1-%j.out"));
  EXPECT_TRUE(contains(a, "--export=PATH,HOME,USER,CULVERT_API_TOKEN,CULVERT_API_URL,CULVERT_FLOW_RUN_ID,CULVERT_WORKERS"))
      << slurp(dir_ / "sbatch.1.args");
  // The token: in sbatch's environment, on no command line.
  EXPECT_EQ(slurp(dir_ / "sbatch.1.args").find("secret-run-token"), std::string::npos);
  EXPECT_NE(slurp(dir_ / "sbatch.1.env").find("CULVERT_API_TOKEN=secret-run-token"), std::string::npos);
  std::string script = slurp(dir_ / "sbatch.1.stdin");
  EXPECT_EQ(script.find("secret-run-token"), std::string::npos);
  EXPECT_TRUE(script.starts_with("#!/bin/sh\n")) << script;
  EXPECT_NE(script.find("exec '/opt/culvert/bin/culvert' execute\n"), std::string::npos) << script;
}

TEST_F(SlurmLauncherTest, TheAgentsCredentialsNeverReachTheJobItsOtherSettingsDo) {
  auto o = options();
  o.command_env["CULVERT_API_TOKEN"] = "the-agents-own-token";
  o.command_env["CULVERT_API_URL"] = "http://agent-only";
  o.command_env["CULVERT_PROFILE"] = "prod";
  o.command_env["CULVERT_HEARTBEAT_SECONDS"] = "3";
  auto l = make(std::move(o));
  ASSERT_TRUE(l->launch(spec()));
  std::string env = slurp(dir_ / "sbatch.1.env");
  EXPECT_EQ(env.find("the-agents-own-token"), std::string::npos);
  EXPECT_EQ(env.find("agent-only"), std::string::npos);
  EXPECT_EQ(env.find("CULVERT_PROFILE"), std::string::npos);
  EXPECT_NE(env.find("CULVERT_HEARTBEAT_SECONDS=3"), std::string::npos);
  std::string export_arg;
  for (const auto& a : args("sbatch", 1))
    if (a.starts_with("--export=")) export_arg = a;
  EXPECT_NE(export_arg.find("CULVERT_HEARTBEAT_SECONDS"), std::string::npos) << export_arg;
}

TEST_F(SlurmLauncherTest, TheRunConfigOverridesTheAgentsDefaultsAndItsOptionsComeLast) {
  auto o = options();
  o.defaults.partition = "batch";
  o.defaults.account = "lab";
  o.defaults.qos = "normal";
  o.defaults.sbatch_options = {"--constraint=haswell", "--time=10"};
  auto l = make(std::move(o));
  ASSERT_TRUE(l->launch(spec("run-1", R"({"type":"slurm","partition":"gpu","cpus":4,"memory":"4g",
      "time_limit":"90m","sbatch_options":["--gres=gpu:1","--time=120"],"setup":["module load cuda/12"]})")));
  auto a = args("sbatch", 1);
  EXPECT_TRUE(contains(a, "--partition=gpu"));
  EXPECT_FALSE(contains(a, "--partition=batch"));
  EXPECT_TRUE(contains(a, "--account=lab"));
  EXPECT_TRUE(contains(a, "--qos=normal"));
  EXPECT_TRUE(contains(a, "--cpus-per-task=4"));
  EXPECT_TRUE(contains(a, "--mem=4G"));
  EXPECT_TRUE(contains(a, "--time=90"));
  // Order: the agent's options, the typed fields, the run config's options (sbatch takes
  // the last of an option).
  auto pos = [&](const std::string& x) { return std::find(a.begin(), a.end(), x) - a.begin(); };
  EXPECT_LT(pos("--time=10"), pos("--time=90"));
  EXPECT_LT(pos("--time=90"), pos("--time=120"));
  EXPECT_LT(pos("--constraint=haswell"), pos("--partition=gpu"));
  std::string script = slurp(dir_ / "sbatch.1.stdin");
  EXPECT_LT(script.find("module load cuda/12\n"), script.find("exec "));
}

TEST_F(SlurmLauncherTest, ValuesThatCouldBeReadAsOtherOptionsAreRefusedAndNothingIsSubmitted) {
  auto l = make();
  for (const char* rc : {R"({"partition":"debug --uid=0"})", R"({"partition":"-pdebug"})", R"({"account":"a b"})",
                         R"({"qos":""})", R"({"sbatch_options":["--export=ALL"]})", R"({"sbatch_options":["-J x"]})",
                         R"({"sbatch_options":["--output=/tmp/x"]})", R"({"sbatch_options":["--mem=1G\n--uid=0"]})",
                         R"({"sbatch_options":["--wrap=id"]})", R"({"sbatch_options":"--mem=1G"})",
                         R"({"memory":"1G; rm -rf /"})", R"({"memory":"0"})", R"({"time_limit":"forever"})",
                         R"({"cpus":0})", R"({"cpus":"4"})", R"({"setup":["a\nb"]})", R"({"env":{"A B":"1"}})"}) {
    LaunchSpec s = spec("run-1", rc);
    if (std::string(rc).find("A B") != std::string::npos) s.env["A B"] = "1";
    auto r = l->launch(s);
    ASSERT_FALSE(r) << rc;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << rc << ": " << r.status().to_string();
  }
  EXPECT_EQ(calls("sbatch"), 0);
}

TEST_F(SlurmLauncherTest, ARefusalBySbatchIsAnErrorWithItsMessageAndIsNotRetried) {
  write(dir_ / "sbatch.rc", "1");
  write(dir_ / "sbatch.err", "sbatch: error: invalid partition specified: nope\n");
  auto l = make();
  auto r = l->launch(spec());
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("invalid partition specified: nope"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(calls("sbatch"), 1);
}

TEST_F(SlurmLauncherTest, ALostSbatchAnswerIsResolvedBySearchingNeverBySubmittingAgain) {
  write(dir_ / "sbatch.out", "sbatch: something odd\n");
  set_jobs(json::array({squeue_job(555, "PENDING", "run-1", 0, "Priority")}));
  auto l = make();
  auto r = l->launch(spec());
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ((*r)->infrastructure().id, "555");
  // Not found: an error, and still one sbatch.
  set_jobs(json::array());
  auto r2 = l->launch(spec("run-2"));
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.status().message().find("no job of the run"), std::string::npos) << r2.status().to_string();
  EXPECT_EQ(calls("sbatch"), 2);
}

TEST_F(SlurmLauncherTest, ASbatchThatHangsIsKilledAndTheJobLookedFor) {
  write(dir_ / "sbatch.sleep", "30");
  auto o = options();
  o.command_timeout = 300ms;
  set_jobs(json::array({squeue_job(556, "RUNNING", "run-1")}));
  auto l = make(std::move(o));
  auto r = l->launch(spec());
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ((*r)->infrastructure().id, "556");
  EXPECT_EQ(calls("sbatch"), 1);
}

TEST_F(SlurmLauncherTest, AllJobsAreWatchedWithOneSqueuePerPoll) {
  auto l = make();
  std::vector<std::unique_ptr<Launch>> launches;
  for (int i = 0; i < 5; ++i) launches.push_back(launch(*l, "run-" + std::to_string(i), 200 + i));
  json jobs = json::array();
  for (int i = 0; i < 5; ++i) jobs.push_back(squeue_job(200 + i, i % 2 ? "RUNNING" : "PENDING", "run-" + std::to_string(i)));
  set_jobs(jobs);
  std::vector<Launch*> ptrs;
  for (auto& p : launches) ptrs.push_back(p.get());
  for (int poll = 1; poll <= 3; ++poll) {
    auto exits = l->poll_all(ptrs);
    for (auto& e : exits) EXPECT_FALSE(e);
    EXPECT_EQ(calls("squeue"), poll);
  }
  EXPECT_EQ(calls("sacct") + calls("scontrol") + calls("scancel"), 0);
  EXPECT_EQ(l->call_counts().by_command["squeue"], 3);
}

// Each Slurm end, as squeue reports it without accounting, and what it becomes.
struct EndCase {
  std::string state;
  int wait_status;
  bool mem;
  std::string reason_has;
  bool timed_out;
  int exit_code;
};

TEST_F(SlurmLauncherTest, EverySlurmEndIsNamedInTheExit) {
  const std::vector<EndCase> cases = {
      {"COMPLETED", 0, false, "Slurm job 300 COMPLETED with exit code 0", false, 0},
      {"FAILED", 3 << 8, false, "Slurm job 301 FAILED with exit code 3", false, 3},
      {"FAILED", 9, true, "FAILED: killed by signal 9 (SIGKILL); it asked for --mem=50M", false, 0},
      {"OUT_OF_MEMORY", 0, true, "ended OUT_OF_MEMORY: it used more than the 50M it asked for", false, -1},
      {"TIMEOUT", 15, false, "ended TIMEOUT: Slurm killed it at its time limit", true, 0},
      {"NODE_FAIL", 0, false, "ended NODE_FAIL: its node failed", false, -1},
      {"PREEMPTED", 0, false, "ended PREEMPTED: another job preempted it", false, -1},
      {"BOOT_FAIL", 0, false, "ended BOOT_FAIL: its node failed to boot", false, -1},
      {"DEADLINE", 0, false, "ended DEADLINE", false, -1},
      {"CANCELLED", 0, false, "ended CANCELLED (scancel, not by this agent)", false, -1},
  };
  auto l = make();
  std::vector<std::unique_ptr<Launch>> launches;
  json jobs = json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string run = "run-" + std::to_string(i);
    launches.push_back(launch(*l, run, 300 + static_cast<int>(i)));
    jobs.push_back(squeue_job(300 + static_cast<int>(i), cases[i].state, run, cases[i].wait_status, "None", cases[i].mem));
  }
  set_jobs(jobs);
  std::vector<Launch*> ptrs;
  for (auto& p : launches) ptrs.push_back(p.get());
  auto exits = l->poll_all(ptrs);
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(exits[i]) << cases[i].state;
    EXPECT_NE(exits[i]->reason.find(cases[i].reason_has), std::string::npos) << exits[i]->reason;
    EXPECT_EQ(exits[i]->timed_out, cases[i].timed_out) << cases[i].state;
    if (cases[i].exit_code != 0) {
      EXPECT_EQ(exits[i]->exit_code, cases[i].exit_code) << cases[i].state;
    }
    EXPECT_EQ(exits[i]->success(), i == 0) << cases[i].state;
  }
  EXPECT_EQ(calls("squeue"), 1);
  EXPECT_EQ(calls("sacct"), 0);  // no accounting on this cluster
}

TEST_F(SlurmLauncherTest, WithAccountingTheFinalStateComesFromOneSacctCall) {
  with_accounting();
  auto l = make();
  auto a = launch(*l, "run-a", 400);
  auto b = launch(*l, "run-b", 401);
  auto c = launch(*l, "run-c", 402);
  // squeue: a ended CANCELLED, b is gone (purged), c still runs.
  set_jobs(json::array({squeue_job(400, "CANCELLED", "run-a"), squeue_job(402, "RUNNING", "run-c")}));
  write(dir_ / "sacct.out", "400|CANCELLED by 1000|0:0|culvert-etl-run-a|culvert-run=run-a|0n\n"
                            "401|OUT_OF_MEMORY|0:125|culvert-etl-run-b|culvert-run=run-b|50M\n");
  auto exits = l->poll_all({a.get(), b.get(), c.get()});
  ASSERT_TRUE(exits[0]);
  EXPECT_NE(exits[0]->reason.find("CANCELLED by uid 1000"), std::string::npos) << exits[0]->reason;
  ASSERT_TRUE(exits[1]);
  EXPECT_NE(exits[1]->reason.find("OUT_OF_MEMORY: it used more than the 50M"), std::string::npos) << exits[1]->reason;
  EXPECT_FALSE(exits[2]);
  EXPECT_EQ(calls("sacct"), 1);
  auto sa = args("sacct", 1);
  EXPECT_TRUE(contains(sa, "400,401")) << slurp(dir_ / "sacct.1.args");
  EXPECT_EQ(calls("scontrol"), 1);  // the cluster's configuration, once
  l->poll_all({c.get()});
  EXPECT_EQ(calls("scontrol"), 1);
}

TEST_F(SlurmLauncherTest, WithAccountingLaggingSqueuesFinalRecordIsUsed) {
  with_accounting();
  auto l = make();
  auto a = launch(*l, "run-a", 410);
  set_jobs(json::array({squeue_job(410, "TIMEOUT", "run-a", 15)}));
  write(dir_ / "sacct.out", "410|RUNNING|0:0|culvert-etl-run-a|culvert-run=run-a|0n\n");
  auto exits = l->poll_all({a.get()});
  ASSERT_TRUE(exits[0]);
  EXPECT_TRUE(exits[0]->timed_out);
}

TEST_F(SlurmLauncherTest, WithoutAccountingAJobSlurmForgotIsReadFromTheJobcompFile) {
  auto l = make();
  auto a = launch(*l, "run-a", 420);
  write(dir_ / "jobcomp.txt",
        "JobId=419 UserId=alice(1000) Name=x JobState=COMPLETED ExitCode=0:0\n"
        "JobId=420 UserId=alice(1000) GroupId=alice(1000) Name=culvert-etl-run-a JobState=FAILED Partition=debug "
        "Tres=cpu=1,mem=50M,node=1 DerivedExitCode=0:0 ExitCode=0:9\n");
  auto exits = l->poll_all({a.get()});  // squeue lists nothing
  ASSERT_TRUE(exits[0]);
  EXPECT_NE(exits[0]->reason.find("Slurm job 420 FAILED: killed by signal 9 (SIGKILL)"), std::string::npos)
      << exits[0]->reason;
  EXPECT_EQ(calls("sacct"), 0);
}

TEST_F(SlurmLauncherTest, AJobNoSourceKnowsIsGoneAfterAFewPolls) {
  write(dir_ / "scontrol.out", "AccountingStorageType = accounting_storage/none\nJobCompType = jobcomp/none\n");
  auto l = make();
  auto a = launch(*l, "run-a", 430);
  EXPECT_FALSE(l->poll_all({a.get()})[0]);
  EXPECT_FALSE(l->poll_all({a.get()})[0]);
  auto e = l->poll_all({a.get()})[0];
  ASSERT_TRUE(e);
  EXPECT_NE(e->reason.find("Slurm job 430 is gone"), std::string::npos) << e->reason;
}

TEST_F(SlurmLauncherTest, AFailingSqueueIsRetriedOnTheNextPoll) {
  auto l = make();
  auto a = launch(*l, "run-a", 440);
  write(dir_ / "squeue.rc", "1");
  write(dir_ / "squeue.err", "squeue: error: slurm_receive_msg: Socket timed out\n");
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(l->poll_all({a.get()})[0]);
  fs::remove(dir_ / "squeue.rc");
  set_jobs(json::array({squeue_job(440, "COMPLETED", "run-a")}));
  EXPECT_TRUE(l->poll_all({a.get()})[0]);
}

TEST_F(SlurmLauncherTest, AJobPendingPastTheStartTimeoutIsCancelledWithSlurmsReason) {
  auto l = make();
  auto a = launch(*l, "run-a", 450);
  set_jobs(json::array({json(squeue_job(450, "PENDING", "run-a", 0, "PartitionTimeLimit"))}));
  EXPECT_FALSE(l->poll_all({a.get()})[0]);
  clock_.advance(9min);
  EXPECT_FALSE(l->poll_all({a.get()})[0]);
  EXPECT_EQ(calls("scancel"), 0);
  clock_.advance(1min);
  auto e = l->poll_all({a.get()})[0];
  ASSERT_TRUE(e);
  EXPECT_NE(e->reason.find("Slurm job 450 was still PENDING after 10 min (--job-start-timeout); Slurm's reason: "
                           "PartitionTimeLimit; Culvert cancelled it"),
            std::string::npos)
      << e->reason;
  ASSERT_EQ(calls("scancel"), 1);
  EXPECT_EQ(args("scancel", 1), std::vector<std::string>{"450"});
}

TEST_F(SlurmLauncherTest, ARunningJobIsStartedOnlyOnceTheStartTimeoutNeverFires) {
  auto l = make();
  auto a = launch(*l, "run-a", 451);
  set_jobs(json::array({squeue_job(451, "RUNNING", "run-a")}));
  l->poll_all({a.get()});
  clock_.advance(1h);
  EXPECT_FALSE(l->poll_all({a.get()})[0]);
  EXPECT_EQ(calls("scancel"), 0);
}

TEST_F(SlurmLauncherTest, StopSendsTermThenKillsAfterTheGrace) {
  auto l = make();
  auto a = launch(*l, "run-a", 460);
  set_jobs(json::array({squeue_job(460, "RUNNING", "run-a")}));
  a->stop(2s);  // the fake job ignores TERM: still RUNNING through the grace
  ASSERT_EQ(calls("scancel"), 2);
  EXPECT_EQ(args("scancel", 1), (std::vector<std::string>{"--signal=TERM", "--full", "460"}));
  EXPECT_EQ(args("scancel", 2), std::vector<std::string>{"460"});
  set_jobs(json::array({squeue_job(460, "CANCELLED", "run-a")}));
  auto e = l->poll_all({a.get()})[0];
  ASSERT_TRUE(e);
  EXPECT_NE(e->reason.find("CANCELLED (scancel by this agent)"), std::string::npos) << e->reason;
}

TEST_F(SlurmLauncherTest, StopOfAJobThatEndsOnTermDoesNotKill) {
  auto l = make();
  auto a = launch(*l, "run-a", 461);
  set_jobs(json::array({squeue_job(461, "RUNNING", "run-a")}));
  // The fake scancel ends the job: squeue lists it CANCELLED afterwards.
  write(dir_ / "bin" / "scancel",
        "#!/bin/sh\nd='" + dir_.string() + "'\nn=$(cat $d/scancel.count 2>/dev/null || echo 0); n=$((n+1)); echo $n > "
        "$d/scancel.count\nprintf '%s\\n' \"$@\" > $d/scancel.$n.args\n"
        "echo '{\"jobs\":[{\"job_id\":461,\"job_state\":\"CANCELLED\",\"comment\":\"culvert-run=run-a\"}]}' > "
        "$d/squeue.out\n");
  a->stop(10s);
  EXPECT_EQ(calls("scancel"), 1);
}

TEST_F(SlurmLauncherTest, StopOfAPendingJobCancelsItAtOnce) {
  auto l = make();
  auto a = launch(*l, "run-a", 462);
  set_jobs(json::array({squeue_job(462, "PENDING", "run-a", 0, "Resources")}));
  a->stop(10s);
  ASSERT_EQ(calls("scancel"), 1);
  EXPECT_EQ(args("scancel", 1), std::vector<std::string>{"462"});
}

TEST_F(SlurmLauncherTest, TheJobsOwnOutputComesWithItsExit) {
  auto l = make();
  auto a = launch(*l, "run-a", 470);
  write(dir_ / "out" / "run-a-470.out", "loading modules\nmodule: command not found\n");
  set_jobs(json::array({squeue_job(470, "FAILED", "run-a", 127 << 8)}));
  auto e = l->poll_all({a.get()})[0];
  ASSERT_TRUE(e);
  ASSERT_EQ(e->output_if_never_running.size(), 3u);
  EXPECT_NE(e->output_if_never_running[0].find("job 470's own output"), std::string::npos);
  EXPECT_EQ(e->output_if_never_running[2], "module: command not found");
  // No file: a line saying so.
  auto b = launch(*l, "run-b", 471);
  set_jobs(json::array({squeue_job(471, "FAILED", "run-b", 1 << 8)}));
  e = l->poll_all({b.get()})[0];
  ASSERT_TRUE(e);
  ASSERT_EQ(e->output_if_never_running.size(), 1u);
  EXPECT_NE(e->output_if_never_running[0].find("left no output file"), std::string::npos);
}

TEST_F(SlurmLauncherTest, AdoptsTheReportedJobCheckedAgainstItsComment) {
  auto l = make();
  set_jobs(json::array({squeue_job(480, "RUNNING", "run-a"), squeue_job(481, "RUNNING", "run-other")}));
  auto a = l->adopt(spec("run-a"), {"slurm-job", "480"});
  ASSERT_TRUE(a) << a.status().to_string();
  EXPECT_EQ((*a)->describe(), "Slurm job 480");
  auto wrong = l->adopt(spec("run-a"), {"slurm-job", "481"});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnprocessable);
  EXPECT_NE(wrong.status().message().find("not the job of run run-a"), std::string::npos);
  auto kind = l->adopt(spec("run-a"), {"process", "480"});
  ASSERT_FALSE(kind);
  EXPECT_EQ(kind.status().code(), StatusCode::kUnprocessable);
  EXPECT_FALSE(l->adopt(spec("run-a"), {"slurm-job", "48; rm"}));
  // Gone from squeue and unknown to the jobcomp file: NotFound.
  auto gone = l->adopt(spec("run-a"), {"slurm-job", "479"});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  // Gone from squeue, ended in the jobcomp file: adopted as ended, with its end.
  write(dir_ / "jobcomp.txt", "JobId=478 Name=culvert-etl-run-a JobState=TIMEOUT ExitCode=0:15\n");
  auto ended = l->adopt(spec("run-a"), {"slurm-job", "478"});
  ASSERT_TRUE(ended) << ended.status().to_string();
  auto e = l->poll_all({ended->get()})[0];
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->timed_out);
  EXPECT_EQ(calls("sbatch"), 0);
}

TEST_F(SlurmLauncherTest, FindsAJobNeverReportedByItsCommentAmongTheUsersJobs) {
  auto l = make();
  json other = squeue_job(490, "RUNNING", "run-a");
  other["user_name"] = "mallory";
  set_jobs(json::array({other}));
  EXPECT_EQ(l->find(spec("run-a")).status().code(), StatusCode::kNotFound);
  set_jobs(json::array({other, squeue_job(491, "RUNNING", "run-a")}));
  auto f = l->find(spec("run-a"));
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ((*f)->infrastructure().id, "491");
}

TEST_F(SlurmLauncherTest, ASlurmCommandMissingFromThePathIsAClearError) {
  auto o = options();
  o.command_env["PATH"] = (dir_ / "nothing").string();
  auto l = make(std::move(o));
  auto r = l->launch(spec());
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("sbatch is not on the PATH"), std::string::npos) << r.status().to_string();
}

TEST(SlurmLauncherType, IsRegisteredWithItsFlagsAndChecksThem) {
  const auto* t = find_launcher_type("slurm");
  ASSERT_NE(t, nullptr);
  std::set<std::string> names;
  for (const auto& f : t->flags) names.insert(f.name);
  for (const char* f : {"partition", "account", "qos", "sbatch-option", "job-output-dir", "job-start-timeout",
                        "poll-interval", "culvert-binary", "submit-parallelism"})
    EXPECT_TRUE(names.count(f)) << f;
  auto dir = fs::temp_directory_path() / ("culvert-slurm-type-" + std::to_string(::getpid()));
  LauncherContext ctx;
  ctx.culvert_binary = "/usr/bin/culvert";
  ctx.flags = {{"partition", "debug"}, {"job-output-dir", dir.string()}, {"job-start-timeout", "90s"}};
  ctx.repeated_flags = {{"sbatch-option", {"--constraint=x"}}};
  auto ok = t->factory(ctx);
  ASSERT_TRUE(ok) << ok.status().to_string();
  EXPECT_EQ((*ok)->type(), "slurm");
  EXPECT_EQ((*ok)->launch_parallelism(), 8);  // sbatch calls at once for one claim, by default
  {
    LauncherContext four = ctx;
    four.flags["submit-parallelism"] = "4";
    auto r = t->factory(four);
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ((*r)->launch_parallelism(), 4);
  }
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
  for (auto [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"partition", "debug --uid=0"}, {"qos", "-q"}, {"job-start-timeout", "soon"}, {"poll-interval", "0s"},
           {"submit-parallelism", "0"}, {"submit-parallelism", "65"}, {"submit-parallelism", "4x"}}) {
    LauncherContext bad = ctx;
    bad.flags[flag] = value;
    auto r = t->factory(bad);
    ASSERT_FALSE(r) << flag;
    EXPECT_NE(r.status().message().find("--" + flag), std::string::npos) << r.status().to_string();
  }
  LauncherContext bad = ctx;
  bad.repeated_flags = {{"sbatch-option", {"--export=ALL"}}};
  auto r = t->factory(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("--sbatch-option"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace culvert::agent::slurm
