#include "agent/ecs/task_definition.hpp"

#include <gtest/gtest.h>

namespace culvert::agent::ecs {
namespace {

using nlohmann::json;

TEST(EcsTaskDefinition, CpuAndMemoryUnits) {
  struct Case {
    json in;
    std::optional<std::string> cpu, mem;
  };
  const Case cases[] = {
      {256, "256", "256"},
      {"1024", "1024", "1024"},
      {"0.25 vCPU", "256", std::nullopt},
      {"1vcpu", "1024", std::nullopt},
      {"2 GB", std::nullopt, "2048"},
      {"0.5GiB", std::nullopt, "512"},
      {"512 MiB", std::nullopt, "512"},
      {"lots", std::nullopt, std::nullopt},
      {-5, std::nullopt, std::nullopt},
      {0.3, std::nullopt, std::nullopt},
      {json::array(), std::nullopt, std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(cpu_units(c.in), c.cpu) << c.in.dump();
    EXPECT_EQ(memory_mib(c.in), c.mem) << c.in.dump();
  }
}

TEST(EcsTaskDefinition, FargateSizesAreValidatedListingTheValidMemory) {
  EXPECT_TRUE(validate_fargate_size("256", "512").is_ok());
  EXPECT_TRUE(validate_fargate_size("1024", "8192").is_ok());
  EXPECT_TRUE(validate_fargate_size("16384", "122880").is_ok());
  Status st = validate_fargate_size("256", "4096");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "Fargate cpu 256 takes memory 512, 1024, 2048 MiB, not 4096");
  st = validate_fargate_size("4096", "8000");
  EXPECT_NE(st.message().find("8192, 9216"), std::string::npos) << st.message();
  st = validate_fargate_size("300", "1024");
  EXPECT_NE(st.message().find("256, 512, 1024, 2048, 4096, 8192, 16384"), std::string::npos) << st.message();
}

TEST(EcsTaskDefinition, RunConfigFieldsAreTypeChecked) {
  const char* bad[] = {
      R"({"image": 3})",          R"({"cpu": "fast"})",          R"({"memory": true})",
      R"({"subnets": 3})",        R"({"subnets": [1]})",         R"({"assign_public_ip": "maybe"})",
      R"({"task_definition": 1})", R"({"run_task_kwargs": []})", R"({"command": []})",
      R"([1])",
  };
  for (const char* b : bad) {
    auto r = parse_ecs_run_config(b);
    EXPECT_FALSE(r) << b;
    if (!r) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << b;
    }
  }
  auto ok = parse_ecs_run_config(R"({"type":"ecs","image":"i","cpu":"0.5 vCPU","memory":"1 GB",
      "subnets":"subnet-a, subnet-b","security_groups":["sg-1"],"assign_public_ip":"ENABLED"})");
  ASSERT_TRUE(ok) << ok.status().to_string();
  EXPECT_EQ(*ok->cpu, "512");
  EXPECT_EQ(*ok->memory, "1024");
  EXPECT_EQ(*ok->subnets, (std::vector<std::string>{"subnet-a", "subnet-b"}));
  EXPECT_EQ(*ok->assign_public_ip, true);
}

// What the C++ SDK's EcsRun writes in a flow's describe (src/engine/flow.cpp) for a run
// config that sets only the image and cpu: unset strings are null, unset lists [].
TEST(EcsTaskDefinition, ReadsTheSdksEcsRunWithUnsetFieldsAsNotGiven) {
  auto rc = parse_ecs_run_config(R"({"type":"ecs","labels":["fargate-dev"],"env":{},"image":"acme/etl:1",
      "cpu":"1024","memory":null,"task_role_arn":null,"execution_role_arn":null,"cluster":null,"subnets":[],
      "security_groups":[],"assign_public_ip":null,"task_definition":null,"run_task_kwargs":{}})");
  ASSERT_TRUE(rc) << rc.status().to_string();
  EXPECT_EQ(rc->image, "acme/etl:1");
  EXPECT_EQ(*rc->cpu, "1024");
  EXPECT_FALSE(rc->memory || rc->cluster || rc->subnets || rc->security_groups || rc->assign_public_ip);
  EcsDefaults d;
  d.subnets = {"subnet-agent"};
  d.memory = "2048";
  auto td = build_task_definition(d, *rc, "etl");
  ASSERT_TRUE(td) << td.status().to_string();
  auto req = build_run_task(d, *rc, *td, "arn:td", {}, {"r1", "a1", "tok"});
  ASSERT_TRUE(req) << req.status().to_string();
  EXPECT_EQ((*req)["networkConfiguration"]["awsvpcConfiguration"]["subnets"], json::array({"subnet-agent"}));
  EXPECT_EQ(td->request["memory"], "2048");
}

EcsRunConfig rc_of(const std::string& j) {
  auto r = parse_ecs_run_config(j);
  EXPECT_TRUE(r) << r.status().to_string();
  return r ? *r : EcsRunConfig{};
}

TEST(EcsTaskDefinition, BuiltFromTheRunConfigWithAFlowContainer) {
  EcsDefaults d;
  d.execution_role_arn = "arn:aws:iam::1:role/exec";
  d.task_role_arn = "arn:aws:iam::1:role/task";
  d.log_group = "/culvert/flows";
  d.region = "eu-west-1";
  auto td = build_task_definition(d, rc_of(R"({"image":"acme/etl:1","cpu":512,"memory":1024})"), "etl daily");
  ASSERT_TRUE(td) << td.status().to_string();
  const json& r = td->request;
  EXPECT_EQ(r["networkMode"], "awsvpc");
  EXPECT_EQ(r["requiresCompatibilities"], json::array({"FARGATE"}));
  EXPECT_EQ(r["cpu"], "512");
  EXPECT_EQ(r["memory"], "1024");
  EXPECT_EQ(r["executionRoleArn"], d.execution_role_arn);
  EXPECT_EQ(r["taskRoleArn"], d.task_role_arn);
  ASSERT_EQ(r["containerDefinitions"].size(), 1u);
  const json& c = r["containerDefinitions"][0];
  EXPECT_EQ(c["name"], "flow");
  EXPECT_EQ(c["image"], "acme/etl:1");
  EXPECT_EQ(c["memory"], 1024);
  EXPECT_EQ(c["essential"], true);
  EXPECT_EQ(c["logConfiguration"]["logDriver"], "awslogs");
  EXPECT_EQ(c["logConfiguration"]["options"]["awslogs-group"], "/culvert/flows");
  EXPECT_EQ(c["logConfiguration"]["options"]["awslogs-create-group"], "true");
  EXPECT_FALSE(c.contains("environment"));  // the run's environment goes in RunTask's overrides
  EXPECT_EQ(td->family, "culvert-etl-daily-" + td->hash.substr(0, 16));
  EXPECT_EQ(r["family"], td->family);
  EXPECT_EQ(r["tags"][0]["key"], "culvert:task-definition-hash");
  EXPECT_EQ(r["tags"][0]["value"], td->hash);
  EXPECT_EQ(td->cluster, "default");
}

TEST(EcsTaskDefinition, SameContentSameHashWhateverTheKeyOrder) {
  EcsDefaults d;
  auto a = build_task_definition(d, rc_of(R"({"image":"i","cpu":256,"memory":512,"env":{"A":"1"}})"), "f");
  auto b = build_task_definition(d, rc_of(R"({"memory":"512","env":{"A":"2"},"cpu":"256","image":"i"})"), "f");
  auto c = build_task_definition(d, rc_of(R"({"image":"i","cpu":256,"memory":1024})"), "f");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->hash, b->hash);  // env is not part of the definition
  EXPECT_EQ(a->family, b->family);
  EXPECT_NE(a->hash, c->hash);
  EXPECT_NE(a->family, c->family);
}

TEST(EcsTaskDefinition, FamilyIsSanitizedAndBounded) {
  EcsDefaults d;
  auto td = build_task_definition(d, rc_of(R"({"image":"i"})"), std::string(400, 'x') + "/é");
  ASSERT_TRUE(td);
  EXPECT_EQ(td->family.size(), 255u);
  EXPECT_TRUE(td->family.ends_with("-" + td->hash.substr(0, 16)));
  EXPECT_EQ(sanitize_name("a b/c:d_e-f"), "a-b-c-d_e-f");
}

TEST(EcsTaskDefinition, PrecedenceRunConfigThenTemplateThenAgentThenBuiltIn) {
  EcsDefaults d;  // built-in: cpu 256, memory 512, cluster default
  d.cpu = "512";  // as if the agent's default
  d.memory = "1024";
  d.cluster = "agent-cluster";
  d.execution_role_arn = "agent-exec";
  // Template only: the template's values win over the agent's.
  auto t = build_task_definition(
      d, rc_of(R"({"task_definition":{"cpu":"1024","memory":"2048","executionRoleArn":"tmpl-exec",
         "containerDefinitions":[{"name":"flow","image":"tmpl/image","environment":[{"name":"X","value":"1"}]},
                                  {"name":"sidecar","image":"envoy"}],"family":"ignored","tags":[{"key":"team","value":"data"}]}})"),
      "f");
  ASSERT_TRUE(t) << t.status().to_string();
  EXPECT_EQ(t->request["cpu"], "1024");
  EXPECT_EQ(t->request["memory"], "2048");
  EXPECT_EQ(t->request["executionRoleArn"], "tmpl-exec");
  EXPECT_EQ(t->request["containerDefinitions"].size(), 2u);
  EXPECT_EQ(t->request["containerDefinitions"][0]["image"], "tmpl/image");
  EXPECT_EQ(t->request["containerDefinitions"][0]["environment"][0]["name"], "X");
  EXPECT_NE(t->request["family"], "ignored");
  EXPECT_EQ(t->request["tags"].size(), 2u);
  EXPECT_EQ(t->cluster, "agent-cluster");
  // Run config fields win over the template.
  auto r = build_task_definition(
      d, rc_of(R"({"image":"rc/image","cpu":2048,"memory":4096,"execution_role_arn":"rc-exec","cluster":"rc-cluster",
         "task_definition":{"cpu":"1024","memory":"2048","executionRoleArn":"tmpl-exec"}})"),
      "f");
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->request["cpu"], "2048");
  EXPECT_EQ(r->request["memory"], "4096");
  EXPECT_EQ(r->request["executionRoleArn"], "rc-exec");
  EXPECT_EQ(r->request["containerDefinitions"][0]["image"], "rc/image");
  EXPECT_EQ(r->cluster, "rc-cluster");
  // Nothing given: the agent's, then the built-in defaults.
  auto a = build_task_definition(d, rc_of(R"({"image":"i"})"), "f");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->request["cpu"], "512");
  EXPECT_EQ(a->request["executionRoleArn"], "agent-exec");
  auto b = build_task_definition(EcsDefaults{}, rc_of(R"({"image":"i"})"), "f");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->request["cpu"], "256");
  EXPECT_EQ(b->request["memory"], "512");
  EXPECT_FALSE(b->request.contains("executionRoleArn"));
  EXPECT_EQ(b->cluster, "default");
}

TEST(EcsTaskDefinition, TheAgentsTemplateServesRunConfigsWithoutOne) {
  EcsDefaults d;
  d.task_definition_template = json::parse(R"({"cpu":"512","memory":"1024","ephemeralStorage":{"sizeInGiB":50},
      "containerDefinitions":[{"name":"flow","image":"agent/default:1","stopTimeout":60}]})");
  auto a = build_task_definition(d, rc_of(R"({})"), "f");
  ASSERT_TRUE(a) << a.status().to_string();
  EXPECT_EQ(a->request["ephemeralStorage"]["sizeInGiB"], 50);
  EXPECT_EQ(a->request["cpu"], "512");
  EXPECT_EQ(a->request["containerDefinitions"][0]["image"], "agent/default:1");
  EXPECT_EQ(a->request["containerDefinitions"][0]["stopTimeout"], 60);
  // The run config's image still wins over the template's.
  auto b = build_task_definition(d, rc_of(R"({"image":"rc/image"})"), "f");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->request["containerDefinitions"][0]["image"], "rc/image");
  // A run config's own template replaces the agent's.
  auto c = build_task_definition(d, rc_of(R"({"image":"i","task_definition":{"cpu":"1024","memory":"2048"}})"), "f");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->request.contains("ephemeralStorage"));
  EXPECT_EQ(c->request["cpu"], "1024");
}

TEST(EcsTaskDefinition, RefusesBeforeAnyCall) {
  EcsDefaults d;
  auto no_image = build_task_definition(d, rc_of(R"({"cpu":256})"), "f");
  ASSERT_FALSE(no_image);
  EXPECT_NE(no_image.status().message().find("no image"), std::string::npos);
  auto bad_size = build_task_definition(d, rc_of(R"({"image":"i","cpu":256,"memory":4096})"), "f");
  ASSERT_FALSE(bad_size);
  EXPECT_NE(bad_size.status().message().find("takes memory 512, 1024, 2048"), std::string::npos);
  d.launch_type = LaunchType::kEc2;  // EC2 has no Fargate size table
  auto ec2 = build_task_definition(d, rc_of(R"({"image":"i","cpu":256,"memory":4096})"), "f");
  ASSERT_TRUE(ec2);
  EXPECT_EQ(ec2->request["requiresCompatibilities"], json::array({"EC2"}));
}

TEST(EcsTaskDefinition, StoppedTasksNameWhyTheyStopped) {
  struct Case {
    const char* task;
    int exit_code;
    bool oom;
    const char* reason;
  };
  const Case cases[] = {
      {R"({"lastStatus":"STOPPED","stopCode":"EssentialContainerExited","stoppedReason":"Essential container in task exited",
          "containers":[{"name":"flow","exitCode":3}]})",
       3, false, "task stopped (EssentialContainerExited): Essential container in task exited; container flow exited with code 3"},
      {R"({"lastStatus":"STOPPED","stopCode":"TaskFailedToStart","stoppedReason":"CannotPullContainerError: pull image manifest has been retried 5 time(s): not found",
          "containers":[{"name":"flow","reason":"CannotPullContainerError: not found"}]})",
       -1, false,
       "task stopped (TaskFailedToStart): CannotPullContainerError: pull image manifest has been retried 5 time(s): not found; "
       "container flow did not start (CannotPullContainerError: not found); ECS could not pull the image: check its name "
       "and tag, and that the execution role may pull it (ECR) and the task can reach the registry"},
      // Fargate gives the task and the container the same reason: said once, with the image.
      {R"({"lastStatus":"STOPPED","stopCode":"TaskFailedToStart","stoppedReason":"CannotPullContainerError: acme/etl:9: not found",
          "containers":[{"name":"flow","image":"acme/etl:9","reason":"CannotPullContainerError: acme/etl:9: not found"}]})",
       -1, false,
       "task stopped (TaskFailedToStart): CannotPullContainerError: acme/etl:9: not found; container flow did not start; "
       "ECS could not pull the image acme/etl:9: check its name and tag, and that the execution role may pull it (ECR) and "
       "the task can reach the registry"},
      // The container's hard limit, when DescribeTasks reports it.
      {R"({"lastStatus":"STOPPED","stopCode":"EssentialContainerExited","stoppedReason":"Essential container in task exited",
          "containers":[{"name":"flow","exitCode":137,"memory":"128","reason":"OutOfMemoryError: Container killed due to memory usage"}]})",
       137, true,
       "task stopped (EssentialContainerExited): Essential container in task exited; container flow exited with code 137 "
       "(OutOfMemoryError: Container killed due to memory usage); killed for using more memory than its limit of 128 MiB"},
      {R"({"lastStatus":"STOPPED","stopCode":"EssentialContainerExited","stoppedReason":"Essential container in task exited",
          "containers":[{"name":"flow","exitCode":137,"reason":"OutOfMemoryError: Container killed due to memory usage"}]})",
       137, true,
       "task stopped (EssentialContainerExited): Essential container in task exited; container flow exited with code 137 "
       "(OutOfMemoryError: Container killed due to memory usage); killed for using more memory than its limit"},
      {R"({"lastStatus":"STOPPED","stopCode":"TaskFailedToStart","stoppedReason":"ResourceInitializationError: unable to pull secrets"})",
       -1, false, "task stopped (TaskFailedToStart): ResourceInitializationError: unable to pull secrets; no container started"},
      // moto: no stopCode, exit code 0, the reason StopTask was given.
      {R"({"lastStatus":"STOPPED","stoppedReason":"Scaling activity","containers":[{"name":"flow","exitCode":0}]})", 0, false,
       "task stopped: Scaling activity; container flow exited with code 0"},
  };
  for (const auto& c : cases) {
    ExitInfo e = exit_of_stopped_task(json::parse(c.task));
    EXPECT_EQ(e.exit_code, c.exit_code) << c.task;
    EXPECT_EQ(e.oom_killed, c.oom) << c.task;
    EXPECT_EQ(e.reason, c.reason);
  }
}

TEST(EcsTaskDefinition, ClusterOfTaskArn) {
  EXPECT_EQ(cluster_of_task_arn("arn:aws:ecs:eu-west-1:123:task/prod/0abc"), "prod");
  EXPECT_EQ(cluster_of_task_arn("arn:aws:ecs:eu-west-1:123:task/0abc"), "");
  EXPECT_EQ(cluster_of_task_arn("nonsense"), "");
  EXPECT_EQ(started_by("a very long agent name that goes on and on"), "culvert-a-very-long-agent-name-that-");
  EXPECT_EQ(started_by("a very long agent name that goes on and on").size(), 36u);
}

}  // namespace
}  // namespace culvert::agent::ecs
