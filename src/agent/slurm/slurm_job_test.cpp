// The pure parts of the Slurm launcher: run-config validation, conversions, the
// submission, and the decoding of squeue --json (as Slurm 22.05 and 23.02 write it),
// sacct -P and jobcomp records.
#include "agent/slurm/slurm_job.hpp"

#include <gtest/gtest.h>

namespace culvert::agent::slurm {
namespace {

TEST(SlurmRunConfig, ReadsEveryFieldAndConvertsDurationsAndMemory) {
  auto rc = parse_slurm_run_config(R"({"type":"slurm","partition":"gpu","account":"lab-1","qos":"high",
      "cpus":8,"memory":"16gb","time_limit":"2h","sbatch_options":["--gres=gpu:2","--exclusive"],
      "setup":["module load gcc/12"],"env":{"A":"1"}})");
  ASSERT_TRUE(rc) << rc.status().to_string();
  EXPECT_EQ(*rc->partition, "gpu");
  EXPECT_EQ(*rc->account, "lab-1");
  EXPECT_EQ(*rc->qos, "high");
  EXPECT_EQ(*rc->cpus, 8);
  EXPECT_EQ(*rc->memory, "16G");
  EXPECT_EQ(*rc->time_limit, "120");
  EXPECT_EQ(rc->sbatch_options.size(), 2u);
  EXPECT_EQ(rc->setup, std::vector<std::string>{"module load gcc/12"});
  auto empty = parse_slurm_run_config("{}");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->partition);
  EXPECT_FALSE(parse_slurm_run_config("[1]"));
}

TEST(SlurmRunConfig, TimeLimitsInEitherForm) {
  EXPECT_EQ(*slurm_time_limit("90s"), "2");
  EXPECT_EQ(*slurm_time_limit("30m"), "30");
  EXPECT_EQ(*slurm_time_limit("1d"), "1440");
  EXPECT_EQ(*slurm_time_limit("45"), "45");
  EXPECT_EQ(*slurm_time_limit("1:30:00"), "1:30:00");
  EXPECT_EQ(*slurm_time_limit("2-12"), "2-12");
  EXPECT_EQ(*slurm_time_limit("2-12:30:00"), "2-12:30:00");
  for (const char* bad : {"", "soon", "1h; id", "-1", "0s", "1:2:3:4"}) EXPECT_FALSE(slurm_time_limit(bad)) << bad;
  auto n = parse_slurm_run_config(R"({"time_limit":15})");
  ASSERT_TRUE(n);
  EXPECT_EQ(*n->time_limit, "15");
}

TEST(SlurmRunConfig, MemoryAmounts) {
  EXPECT_EQ(*slurm_memory("512M"), "512M");
  EXPECT_EQ(*slurm_memory("4g"), "4G");
  EXPECT_EQ(*slurm_memory("2TB"), "2T");
  EXPECT_EQ(*slurm_memory("100"), "100");
  for (const char* bad : {"", "0", "lots", "4 G", "4G --uid=0", "-4G"}) EXPECT_FALSE(slurm_memory(bad)) << bad;
}

TEST(SlurmRunConfig, ErrorsNameTheField) {
  auto r = parse_slurm_run_config(R"({"partition":7})");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("\"partition\""), std::string::npos);
  r = parse_slurm_run_config(R"({"sbatch_options":["--export=ALL"]})");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("sbatch_options\"[0]"), std::string::npos);
  EXPECT_NE(r.status().message().find("the agent sets --export itself"), std::string::npos);
}

TEST(SlurmOptions, OnlyLongFormsThatTheAgentDoesNotSetItself) {
  EXPECT_TRUE(check_sbatch_option("--exclusive", "x").is_ok());
  EXPECT_TRUE(check_sbatch_option("--constraint=haswell|broadwell", "x").is_ok());
  EXPECT_TRUE(check_sbatch_option("--chdir=/scratch/alice", "x").is_ok());
  for (const char* bad : {"-N2", "exclusive", "--", "--Export=ALL", "--export=ALL", "--job-name=x", "--output=/x",
                          "--error=/x", "--wrap=id", "--array=1-10", "--wait", "--comment=x", "--uid=0",
                          "--test-only", "--parsable"})
    EXPECT_FALSE(check_sbatch_option(bad, "x").is_ok()) << bad;
}

TEST(SlurmJobName, IsSafeAndNamesFlowAndRun) {
  EXPECT_EQ(job_name_for("etl", "0190-ab"), "culvert-etl-0190-ab");
  EXPECT_EQ(job_name_for("my flow; rm", "r"), "culvert-my_flow__rm-r");
  EXPECT_EQ(job_name_for("", "r"), "culvert-flow-r");
  EXPECT_EQ(job_name_for(std::string(300, 'a'), "r").size(), std::string("culvert--r").size() + 64);
}

TEST(SlurmSubmission, ExportsNamesAndQuotesTheBinary) {
  SlurmDefaults d;
  d.job_output_dir = "/scratch/out";
  d.culvert_binary = "/opt/it's/culvert";
  LaunchSpec spec;
  spec.flow_run_id = "r1";
  spec.flow_name = "etl\nx";
  spec.env = {{"CULVERT_API_TOKEN", "tok"}, {"PATH", "/run/path"}};
  auto s = build_submission(d, SlurmRunConfig{}, spec, {{"PATH", "/agent/path"}, {"HOME", "/h"}, {"SECRET", "s"}});
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_EQ(s->env.at("PATH"), "/run/path");  // the run's own wins
  EXPECT_EQ(s->env.at("SECRET"), "s");         // in sbatch's environment, but not exported
  bool found = false;
  for (const auto& a : s->argv)
    if (a.starts_with("--export=")) {
      found = true;
      EXPECT_EQ(a, "--export=HOME,CULVERT_API_TOKEN,PATH");
    }
  EXPECT_TRUE(found);
  EXPECT_NE(s->script.find("exec '/opt/it'\\''s/culvert' execute"), std::string::npos) << s->script;
  EXPECT_NE(s->script.find("of flow etl?x.\n"), std::string::npos) << s->script;  // no line break in the comment
  EXPECT_EQ(s->output_pattern, "/scratch/out/r1-%j.out");
}

TEST(SqueueJson, Slurm2205) {
  const char* text = R"({"meta":{},"errors":[],"jobs":[
    {"job_id":1,"name":"j","comment":"c","user_name":"root","job_state":"FAILED","state_reason":"JobLaunchFailure",
     "exit_code":9,"flags":["TRES_STR_CALC","JOB_MEM_SET"],"memory_per_node":50},
    {"job_id":2,"name":"k","job_state":"FAILED","state_reason":"NonZeroExitCode","exit_code":768,"flags":[],
     "memory_per_node":null},
    {"job_id":3,"job_state":"PENDING","state_reason":"Resources"},
    {"name":"no id"}]})";
  auto jobs = parse_squeue_json(text);
  ASSERT_TRUE(jobs) << jobs.status().to_string();
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].signal, 9);
  EXPECT_EQ((*jobs)[0].exit_code, 0);
  EXPECT_TRUE((*jobs)[0].memory_set);
  EXPECT_EQ((*jobs)[0].memory, "50M");
  EXPECT_EQ((*jobs)[1].exit_code, 3);
  EXPECT_EQ((*jobs)[1].signal, 0);
  EXPECT_FALSE((*jobs)[1].memory_set);
  EXPECT_EQ((*jobs)[2].reason, "Resources");
  EXPECT_FALSE(parse_squeue_json("not json"));
  EXPECT_FALSE(parse_squeue_json(R"({"jobs":{}})"));
}

TEST(SqueueJson, Slurm2302) {
  const char* text = R"({"jobs":[{"job_id":5,"job_state":["FAILED"],"exit_code":{"status":["FAILED"],
    "return_code":{"set":true,"infinite":false,"number":2},"signal":{"id":{"set":true,"infinite":false,"number":0}}},
    "memory_per_node":{"set":true,"infinite":false,"number":100}}]})";
  auto jobs = parse_squeue_json(text);
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].state, "FAILED");
  EXPECT_EQ((*jobs)[0].exit_code, 2);
  EXPECT_EQ((*jobs)[0].memory, "100M");
}

TEST(Sacct, ParsesStatesExitCodesAndWhoCancelled) {
  auto jobs = parse_sacct("12|CANCELLED by 1000|0:15|n|c|4G\n13|FAILED|3:0|n||0n\nnot a job\n|x|y\n");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].state, "CANCELLED");
  EXPECT_EQ(jobs[0].cancelled_by, "1000");
  EXPECT_EQ(jobs[0].signal, 15);
  EXPECT_TRUE(jobs[0].memory_set);
  EXPECT_EQ(jobs[1].exit_code, 3);
  EXPECT_FALSE(jobs[1].memory_set);
}

TEST(Jobcomp, TheLastRecordOfAJobWins) {
  auto jobs = parse_jobcomp(
      "JobId=7 Name=a JobState=NODE_FAIL ExitCode=0:0\n"
      "garbage\n"
      "JobId=7 Name=a JobState=COMPLETED Tres=cpu=1,mem=64M,node=1 ExitCode=1:0\n");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs["7"].state, "COMPLETED");
  EXPECT_EQ(jobs["7"].exit_code, 1);
  EXPECT_EQ(jobs["7"].memory, "64M");
}

TEST(SlurmStates, PendingAndFinal) {
  for (const char* s : {"PENDING", "CONFIGURING", "REQUEUED"}) EXPECT_TRUE(is_pending_state(s)) << s;
  for (const char* s : {"RUNNING", "COMPLETING", "SUSPENDED"}) {
    EXPECT_FALSE(is_pending_state(s)) << s;
    EXPECT_FALSE(is_final_state(s)) << s;
  }
  for (const char* s : {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                        "BOOT_FAIL", "DEADLINE"})
    EXPECT_TRUE(is_final_state(s)) << s;
}

}  // namespace
}  // namespace culvert::agent::slurm
