// YAML flow files: what a file becomes (its description), every refusal naming file,
// line and field, and parameter values that reach commands without becoming shell syntax.
#include "yamlflow/yaml_flow.hpp"

#include <culvert/culvert.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/crypto.hpp"

namespace culvert::yamlflow {
namespace {

using nlohmann::json;

json describe(const std::string& text) {
  auto flow = parse_yaml_flow(text, "nightly.yaml");
  EXPECT_TRUE(flow) << flow.status().message();
  if (!flow) return nullptr;
  return json::parse(flow->describe_json());
}

const json* task(const json& d, const std::string& name) {
  for (const auto& t : d["tasks"])
    if (t["name"] == name) return &t;
  return nullptr;
}

TEST(YamlFlow, TheIssuesExampleBecomesItsDescription) {
  json d = describe(R"(name: nightly
parameters: {day: {type: string, required: true}}
run_config: {type: docker, image: etl:1, labels: [dev]}
schedule: {cron: "0 2 * * *", timezone: Europe/Berlin}
tasks:
  extract: {command: "python3 extract.py --day {{ day }}", retries: 2, timeout: 10m}
  load:    {command: "./load.sh", after: [extract], env: {MODE: full}}
)");
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["name"], "nightly");
  ASSERT_EQ(d["parameters"].size(), 1u);
  EXPECT_EQ(d["parameters"][0]["name"], "day");
  EXPECT_EQ(d["parameters"][0]["type"], "string");
  EXPECT_EQ(d["parameters"][0]["required"], true);
  EXPECT_EQ(d["run_config"]["type"], "docker");
  EXPECT_EQ(d["run_config"]["image"], "etl:1");
  EXPECT_EQ(d["labels"], json({"dev"}));
  EXPECT_EQ(d["schedule"]["type"], "cron");
  EXPECT_EQ(d["schedule"]["cron"], "0 2 * * *");
  EXPECT_EQ(d["schedule"]["timezone"], "Europe/Berlin");
  const json* extract = task(d, "extract");
  ASSERT_NE(extract, nullptr);
  EXPECT_EQ((*extract)["kind"], "shell");
  EXPECT_EQ((*extract)["command"], "python3 extract.py --day \"${CULVERT_PARAM_day}\"");
  EXPECT_EQ((*extract)["retries"], 2);
  EXPECT_EQ((*extract)["timeout_ms"], 600000);
  const json* load = task(d, "load");
  ASSERT_NE(load, nullptr);
  EXPECT_EQ((*load)["command"], "./load.sh");
  EXPECT_EQ((*load)["env"], json({{"MODE", "full"}}));
  ASSERT_EQ(d["edges"].size(), 1u);
  EXPECT_EQ(d["edges"][0]["from"], "extract");
  EXPECT_EQ(d["edges"][0]["to"], "load");
}

TEST(YamlFlow, EveryFieldOfTheReferenceIsRead) {
  json d = describe(R"(name: full
description: every field
storage: s3://bucket/flows
max_run_retries: 2
concurrency_limits: {db: 3}
parameters:
  rows: {type: int, default: 1000}
  ratio: {type: float, default: 0.5}
  dry: {type: bool, default: false}
  label: {type: string, default: "x y", description: shown nowhere}
run_config:
  type: ecs
  image: etl:2
  cpu: 1024
  memory: "2048"
  cluster: c1
  subnets: [s1, s2]
  security_groups: [g1]
  assign_public_ip: true
  run_task_kwargs: {enableExecuteCommand: true, tags: [{key: a, value: "1"}]}
  env: {A: "1"}
  labels: [fargate]
schedule: {interval: 1h, anchor: "2026-01-01T00:00:00Z", parameters: {rows: 5}, catchup: latest, active: false}
tasks:
  a:
    command: |
      echo one
      echo two
    retries: 3
    retry_delay: 30s
    retry_backoff: 2
    retry_max_delay: 5m
    retry_jitter: 0.25
    timeout: 1h30m
    kill_grace: 2s
    working_dir: /srv
    tags: [db]
    env: {N: 5, FLAG: true}
  b: {command: "exit 0", after: a, trigger: all_finished, reference: true}
)");
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["description"], "every field");
  EXPECT_EQ(d["storage"], "s3://bucket/flows");
  EXPECT_EQ(d["max_run_retries"], 2);
  EXPECT_EQ(d["concurrency_limits"], json({{"db", 3}}));
  EXPECT_EQ(d["parameters"][0]["default"], 1000);
  EXPECT_EQ(d["parameters"][1]["default"], 0.5);
  EXPECT_EQ(d["parameters"][2]["default"], false);
  EXPECT_EQ(d["parameters"][3]["default"], "x y");
  EXPECT_EQ(d["run_config"]["cpu"], "1024");
  EXPECT_EQ(d["run_config"]["subnets"], json({"s1", "s2"}));
  EXPECT_EQ(d["run_config"]["assign_public_ip"], true);
  EXPECT_EQ(d["run_config"]["run_task_kwargs"],
            json::parse(R"({"enableExecuteCommand":true,"tags":[{"key":"a","value":"1"}]})"));
  EXPECT_EQ(d["schedule"]["type"], "interval");
  EXPECT_EQ(d["schedule"]["interval_seconds"], 3600);
  EXPECT_EQ(d["schedule"]["catchup"], "latest");
  EXPECT_EQ(d["schedule"]["active"], false);
  EXPECT_EQ(d["schedule"]["parameters"], json({{"rows", "5"}}));
  const json* a = task(d, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ((*a)["command"], "echo one\necho two\n");
  EXPECT_EQ((*a)["retries"], 3);
  EXPECT_EQ((*a)["retry_delay_ms"], 30000);
  EXPECT_EQ((*a)["retry_backoff"], 2.0);
  EXPECT_EQ((*a)["retry_max_delay_ms"], 300000);
  EXPECT_EQ((*a)["retry_jitter"], 0.25);
  EXPECT_EQ((*a)["timeout_ms"], 5400000);
  EXPECT_EQ((*a)["working_dir"], "/srv");
  EXPECT_EQ((*a)["tags"], json({"db"}));
  EXPECT_EQ((*a)["env"], json({{"N", "5"}, {"FLAG", "true"}}));
  const json* b = task(d, "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ((*b)["trigger"], "all_finished");
  EXPECT_EQ((*b)["reference"], true);
}

// Each refusal: the file, the line, the field and what is wrong.
TEST(YamlFlow, EveryErrorNamesTheFileLineAndField) {
  struct Case {
    std::string text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", "nightly.yaml: the file: is empty"},
      {"name: n\ntasks: {a: {command: x}\n", "nightly.yaml:3: not valid YAML"},
      {"- a\n- b\n", "nightly.yaml:1: the file: must be a mapping"},
      {"tasks: {a: {command: x}}\n", "nightly.yaml:1: name: is required"},
      {"name: n\n", "nightly.yaml:1: tasks: is required"},
      {"name: n\nname: m\ntasks: {a: {command: x}}\n", "nightly.yaml:2: name: is given twice"},
      {"name: n\ntask:\n  a: {command: x}\n", "nightly.yaml:2: task: unknown key 'task' (top-level keys: name,"},
      {"name: 'a b'\ntasks: {a: {command: x}}\n", "nightly.yaml:1: name: a flow name is 1-128"},
      {"name: [n]\ntasks: {a: {command: x}}\n", "nightly.yaml:1: name: must be a string, not a list"},
      {"name: n\ntasks: {}\n", "nightly.yaml:2: tasks: needs at least one task"},
      {"name: n\ntasks: [a]\n", "nightly.yaml:2: tasks: must be a mapping"},
      {"name: n\ntasks:\n  a: {comand: x}\n", "nightly.yaml:3: tasks.a.comand: unknown key 'comand' (tasks.a takes: command,"},
      {"name: n\ntasks:\n  a: {retries: 1}\n", "nightly.yaml:3: tasks.a: needs a command"},
      {"name: n\ntasks:\n  a: echo hi\n", "nightly.yaml:3: tasks.a: must be a mapping with a command"},
      {"name: n\ntasks:\n  a: {command: \"  \"}\n", "nightly.yaml:3: tasks.a.command: must not be empty"},
      {"name: n\ntasks:\n  a:\n    command: x\n    retries: two\n",
       "nightly.yaml:5: tasks.a.retries: must be a whole number from 0 to 1000, got 'two'"},
      {"name: n\ntasks:\n  a:\n    command: x\n    retries: 5000\n", "nightly.yaml:5: tasks.a.retries: must be a whole number"},
      {"name: n\ntasks:\n  a:\n    command: x\n    timeout: soon\n", "nightly.yaml:5: tasks.a.timeout: must be a duration"},
      {"name: n\ntasks:\n  a:\n    command: x\n    timeout: 0s\n", "nightly.yaml:5: tasks.a.timeout: must be longer than 0"},
      {"name: n\ntasks:\n  a:\n    command: x\n    retry_delay: [1]\n", "nightly.yaml:5: tasks.a.retry_delay: must be a duration"},
      {"name: n\ntasks:\n  a:\n    command: x\n    retry_jitter: 2\n", "nightly.yaml:5: tasks.a.retry_jitter: must be a number from 0 to 1"},
      {"name: n\ntasks:\n  a:\n    command: x\n    retry_backoff: 0.5\n", "nightly.yaml:5: tasks.a.retry_backoff: must be a number from 1 to 100"},
      {"name: n\ntasks:\n  a:\n    command: x\n    trigger: sometimes\n", "nightly.yaml:5: tasks.a.trigger: must be one of"},
      {"name: n\ntasks:\n  a:\n    command: x\n    reference: maybe\n", "nightly.yaml:5: tasks.a.reference: must be true or false"},
      {"name: n\ntasks:\n  a:\n    command: x\n    tags: db\n", "nightly.yaml:5: tasks.a.tags: must be a list"},
      {"name: n\ntasks:\n  a:\n    command: x\n    env: {1X: a}\n", "nightly.yaml:5: tasks.a.env.1X: '1X' is not an environment variable name"},
      {"name: n\ntasks:\n  a:\n    command: x\n    env: {X: }\n", "nightly.yaml:5: tasks.a.env.X: needs a value"},
      {"name: n\ntasks:\n  a:\n    command: x\n    env: [X]\n", "nightly.yaml:5: tasks.a.env: must be a mapping"},
      {"name: n\ntasks:\n  a:\n    command: x\n    after: [b]\n", "nightly.yaml:5: tasks.a.after: names no task 'b'"},
      {"name: n\ntasks:\n  a:\n    command: x\n    after: a\n", "nightly.yaml:5: tasks.a.after: a task cannot run after itself"},
      {"name: n\ntasks:\n  a:\n    command: x\n    after: [c]\n  b: {command: y, after: [a]}\n  c: {command: z, after: [b]}\n",
       "nightly.yaml:5: tasks.a.after: makes a cycle (a -> c -> b -> a)"},
      {"name: n\ntasks:\n  'a b': {command: x}\n", "nightly.yaml:3: tasks.a b: a task name is 1-128"},
      {"name: n\ntasks:\n  a: {command: x}\n  a: {command: y}\n", "nightly.yaml:4: tasks.a: is given twice"},
      {"name: n\nparameters:\n  day: string\ntasks: {a: {command: x}}\n", "nightly.yaml:3: parameters.day: must be a mapping"},
      {"name: n\nparameters:\n  day: {type: date}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:3: parameters.day.type: must be string, int, float or bool"},
      {"name: n\nparameters:\n  day: {typ: string}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:3: parameters.day.typ: unknown key 'typ'"},
      {"name: n\nparameters:\n  rows:\n    type: int\n    default: many\ntasks: {a: {command: x}}\n",
       "nightly.yaml:5: parameters.rows.default: must be a whole number"},
      {"name: n\nparameters:\n  on: {type: bool, default: 1}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:3: parameters.on.default: must be true or false"},
      {"name: n\nparameters:\n  d: {type: string, required: true, default: x}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:3: parameters.d.default: a required parameter has no default"},
      {"name: n\nparameters:\n  d: {type: string, required: false}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:3: parameters.d: an optional parameter (required: false) needs a default"},
      {"name: n\nparameters:\n  my-day: {type: string}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:3: parameters.my-day: a parameter name is 1-64"},
      {"name: n\ntasks:\n  a: {command: 'echo {{ dya }}'}\n",
       "nightly.yaml:3: tasks.a.command: {{ dya }} names no parameter of the flow (it has none)"},
      {"name: n\nparameters: {day: {type: string}}\ntasks:\n  a: {command: \"echo '{{ day }}'\"}\n",
       "nightly.yaml:4: tasks.a.command: {{ day }} is inside single quotes"},
      {"name: n\nparameters: {day: {type: string}}\ntasks:\n  a: {command: x, env: {D: \"{{ day }}\"}}\n",
       "nightly.yaml:4: tasks.a.env.D: env values are taken as written"},
      {"name: n\nrun_config: {image: x}\ntasks: {a: {command: x}}\n", "nightly.yaml:2: run_config.type: is required"},
      {"name: n\nrun_config: {type: k8s}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:2: run_config.type: must be local, docker, ecs or slurm, not 'k8s'"},
      {"name: n\nrun_config: {type: docker}\ntasks: {a: {command: x}}\n", "nightly.yaml:2: run_config.image: is required"},
      {"name: n\nrun_config:\n  type: local\n  image: x\ntasks: {a: {command: x}}\n",
       "nightly.yaml:4: run_config.image: unknown key 'image' (run_config takes: type, labels, env, working_dir)"},
      {"name: n\nrun_config: {type: local, labels: dev}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:2: run_config.labels: must be a list"},
      {"name: n\nschedule: {cron: \"0 2 * * *\", interval: 1h}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:2: schedule: has both cron and interval"},
      {"name: n\nschedule: {timezone: UTC}\ntasks: {a: {command: x}}\n", "nightly.yaml:2: schedule: needs cron"},
      {"name: n\nschedule:\n  cron: \"0 2 * * *\"\n  catchup: never\ntasks: {a: {command: x}}\n",
       "nightly.yaml:4: schedule.catchup: must be skip, latest or all"},
      {"name: n\nschedule:\n  interval: 1h\n  anchor: yesterday\ntasks: {a: {command: x}}\n",
       "nightly.yaml:4: schedule.anchor: must be an RFC 3339 time"},
      {"name: n\nschedule: {cron: \"61 * * * *\"}\ntasks: {a: {command: x}}\n", "nightly.yaml: "},
      {"name: n\nstorage: /tmp/flows\ntasks: {a: {command: x}}\n", "nightly.yaml:2: storage: must be file:///DIR or s3://"},
      {"name: n\nmax_run_retries: -1\ntasks: {a: {command: x}}\n", "nightly.yaml:2: max_run_retries: must be a whole number"},
      {"name: n\nconcurrency_limits: {db: 0}\ntasks: {a: {command: x}}\n",
       "nightly.yaml:2: concurrency_limits.db: must be a whole number from 1"},
  };
  for (const auto& c : cases) {
    auto flow = parse_yaml_flow(c.text, "nightly.yaml");
    ASSERT_FALSE(flow) << c.text;
    EXPECT_EQ(flow.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(flow.status().message().find(c.expected), std::string::npos)
        << c.text << "\n  -> " << flow.status().message() << "\n  expected: " << c.expected;
  }
}

TEST(YamlFlow, InputsAreBounded) {
  std::string big = "name: n\ntasks: {a: {command: x}}\n# " + std::string(kMaxFileBytes, 'x') + "\n";
  auto r = parse_yaml_flow(big, "big.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("big.yaml: is larger than 1048576 bytes"), std::string::npos)
      << r.status().message();
  std::string long_command = "name: n\ntasks:\n  a: {command: \"" + std::string(kMaxStringBytes + 1, 'x') + "\"}\n";
  r = parse_yaml_flow(long_command, "long.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("long.yaml:3: tasks.a.command: is longer than 65536 bytes"), std::string::npos)
      << r.status().message();
  std::string deep = "name: n\ntasks: {a: {command: x}}\nrun_config: {type: ecs, image: i, run_task_kwargs: " +
                     std::string(200, '[') + std::string(200, ']') + "}\n";
  r = parse_yaml_flow(deep, "deep.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("deep.yaml"), std::string::npos) << r.status().message();
  std::string many = "name: n\ntasks:\n";
  for (size_t i = 0; i <= kMaxTasks; ++i) many += "  t" + std::to_string(i) + ": {command: x}\n";
  r = parse_yaml_flow(many, "many.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("tasks: has more than 10000 entries"), std::string::npos) << r.status().message();
}

TEST(YamlFlow, PlaceholdersBecomeQuotedVariableReferences) {
  json d = describe(R"(name: n
parameters: {day: {type: string}, n: {type: int, default: 3}}
tasks:
  a: {command: "echo {{day}} \"at {{ day }}\" {{  n  }} '{{.Id}}' {{ not a placeholder"}
)");
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["tasks"][0]["command"],
            "echo \"${CULVERT_PARAM_day}\" \"at ${CULVERT_PARAM_day}\" \"${CULVERT_PARAM_n}\" '{{.Id}}' {{ not a "
            "placeholder");
}

class Lines final : public RunObserver {
 public:
  void on_log(const LogEvent& ev) override {
    std::lock_guard lk(mu);
    lines.emplace_back(ev.message);
  }
  std::mutex mu;
  std::vector<std::string> lines;
};

// A parameter value full of shell syntax arrives as one word, exactly as given, and
// runs nothing: the marker file the injected command would create does not appear.
TEST(YamlFlow, AParameterValueCannotInjectShellSyntax) {
  auto dir = std::filesystem::temp_directory_path() / ("culvert-yaml-" + new_uuid());
  std::filesystem::create_directories(dir);
  const std::string marker = (dir / "pwned").string();
  auto flow = parse_yaml_flow(R"(name: safe
parameters: {day: {type: string, required: true}}
tasks:
  show: {command: "printf '[%s]\\n' {{ day }} \"in quotes: {{ day }}\""}
)",
                              "safe.yaml");
  ASSERT_TRUE(flow) << flow.status().message();
  for (const std::string& hostile : std::vector<std::string>{"x; touch " + marker, "$(touch " + marker + ")", "`touch " + marker + "`", "x' ; touch " + marker + " ; '",
        "x\" ; touch " + marker + " ; \"", "a b\n touch " + marker, std::string("*")}) {
    Lines lines;
    Executor ex;
    auto r = ex.run(*flow, {.parameters = {{"day", hostile}}, .observers = {&lines}});
    ASSERT_TRUE(r) << r.status().message();
    EXPECT_EQ(r->state, State::kSuccess) << hostile << ": " << r->to_text();
    std::vector<std::string> expected;
    {
      // printf prints each argument on its line(s): the value is one argument each time.
      std::string first = "[" + hostile + "]", second = "[in quotes: " + hostile + "]";
      for (const std::string& s : std::vector<std::string>{first, second}) {
        size_t start = 0;
        for (size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1)
          expected.push_back(s.substr(start, nl - start));
        expected.push_back(s.substr(start));
      }
    }
    EXPECT_EQ(lines.lines, expected) << hostile;
    EXPECT_FALSE(std::filesystem::exists(marker)) << hostile << " ran a command";
  }
  std::filesystem::remove_all(dir);
}

TEST(YamlFlow, RunsOnTheEngineWithRetriesAndAfter) {
  auto flow = parse_yaml_flow(R"(name: order
parameters: {rows: {type: int, default: 2}}
tasks:
  second: {command: "echo second {{ rows }}", after: [first]}
  first: {command: "echo first"}
  flaky: {command: "exit 3", retries: 2}
)",
                              "order.yaml");
  ASSERT_TRUE(flow) << flow.status().message();
  Lines lines;
  Executor ex;
  auto r = ex.run(*flow, {.observers = {&lines}});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->state, State::kFailed) << r->to_text();
  for (const auto& t : r->task_runs) {
    if (t.task == "flaky") {
      EXPECT_EQ(t.state, State::kFailed);
      EXPECT_EQ(t.attempts, 3);
      EXPECT_EQ(t.message, "command exited with status 3");
    } else {
      EXPECT_EQ(t.state, State::kSuccess) << t.task;
    }
  }
  std::vector<std::string> echoed;
  for (const auto& l : lines.lines)
    if (l.starts_with("first") || l.starts_with("second")) echoed.push_back(l);
  EXPECT_EQ(echoed, (std::vector<std::string>{"first", "second 2"}));
}

TEST(YamlFlow, LoadNamesAFileItCannotRead) {
  auto r = load_yaml_flow("/nonexistent/nightly.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("/nonexistent/nightly.yaml"), std::string::npos);
  EXPECT_TRUE(is_yaml_flow_path("a/nightly.yaml"));
  EXPECT_TRUE(is_yaml_flow_path("n.yml"));
  EXPECT_FALSE(is_yaml_flow_path("etl"));
  EXPECT_FALSE(is_yaml_flow_path("etl.py"));
}

}  // namespace
}  // namespace culvert::yamlflow
