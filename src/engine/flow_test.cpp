#include <culvert/culvert.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace culvert {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

Flow make_etl() {
  Flow flow("etl");
  flow.description("daily etl");
  auto rows = flow.parameter<int>("rows", 1000);
  auto day = flow.parameter<std::string>("day");
  auto table = flow.task("extract", [](int n, const std::string&) { return std::vector<int>(n); }, rows, day)
                   .retries(3, 10s)
                   .timeout(5min)
                   .tags({"db"})
                   .result("file:///tmp/r/{flow_run_id}/{task_name}");
  auto summary = flow.task("transform", [](const std::vector<int>& t) { return t.size(); }, table).cache_for(1h);
  auto load = flow.task("load", [](size_t) {}, summary);
  flow.shell("report", "python3 report.py").after(load).env("K", "V").working_dir("/tmp");
  flow.map("each", [](const int& x) { return x; }, table);
  flow.run_config(LocalRun{.env = {{"K", "V"}}, .labels = {"dev"}});
  flow.storage("s3://bucket/flows");
  flow.schedule(Cron("0 6 * * *", "Europe/Berlin"));
  flow.concurrency_limit("db", 2);
  return flow;
}

TEST(Flow, DescribeMatchesFormat) {
  Flow flow = make_etl();
  ASSERT_TRUE(flow.validate().is_ok()) << flow.validate().to_string();
  json d = json::parse(flow.describe_json());
  EXPECT_EQ(d["name"], "etl");
  EXPECT_EQ(d["description"], "daily etl");
  ASSERT_EQ(d["tasks"].size(), 5u);
  const auto& ex = d["tasks"][0];
  EXPECT_EQ(ex["name"], "extract");
  EXPECT_EQ(ex["kind"], "cpp");
  EXPECT_EQ(ex["tags"], json::array({"db"}));
  EXPECT_EQ(ex["retries"], 3);
  EXPECT_EQ(ex["retry_delay_ms"], 10000);
  EXPECT_EQ(ex["timeout_ms"], 300000);
  EXPECT_EQ(ex["trigger"], "all_successful");
  EXPECT_EQ(ex["mapped"], false);
  EXPECT_EQ(ex["reference"], false);
  EXPECT_EQ(ex["cache_for_ms"], 0);
  EXPECT_EQ(ex["result"], "file:///tmp/r/{flow_run_id}/{task_name}");
  EXPECT_TRUE(ex["target"].is_null());
  EXPECT_EQ(d["tasks"][1]["cache_for_ms"], 3600000);
  const auto& rep = d["tasks"][3];
  EXPECT_EQ(rep["kind"], "shell");
  EXPECT_EQ(rep["command"], "python3 report.py");
  EXPECT_EQ(rep["reference"], true);
  EXPECT_EQ(d["tasks"][4]["mapped"], true);
  EXPECT_EQ(d["edges"], json::parse(R"([
    {"from":"extract","to":"transform","data":true},
    {"from":"transform","to":"load","data":true},
    {"from":"load","to":"report","data":false},
    {"from":"extract","to":"each","data":true}])"));
  EXPECT_EQ(d["parameters"], json::parse(R"([
    {"name":"rows","type":"int","default":1000,"required":false},
    {"name":"day","type":"string","required":true}])"));
  EXPECT_EQ(d["run_config"], json::parse(R"({"type":"local","labels":["dev"],"env":{"K":"V"},"working_dir":null})"));
  EXPECT_EQ(d["storage"], "s3://bucket/flows");
  EXPECT_EQ(d["labels"], json::array({"dev"}));
  EXPECT_EQ(d["schedule"], json::parse(R"({"type":"cron","cron":"0 6 * * *","timezone":"Europe/Berlin",
                                          "parameters":{},"catchup":"skip","active":true})"));
  EXPECT_EQ(d["max_run_retries"], 0);
  EXPECT_EQ(d["concurrency_limits"], json::parse(R"({"db":2})"));
}

TEST(Flow, RunConfigsAndInterval) {
  Flow flow("rc");
  flow.task("t", [] {});
  flow.run_config(EcsRun{.image = "img", .cpu = "1024", .memory = "2048", .labels = {"fargate-dev"}});
  flow.schedule(Interval(std::chrono::hours(1)));
  json d = json::parse(flow.describe_json());
  EXPECT_EQ(d["run_config"]["type"], "ecs");
  EXPECT_EQ(d["run_config"]["image"], "img");
  EXPECT_EQ(d["run_config"]["cpu"], "1024");
  EXPECT_EQ(d["labels"], json::array({"fargate-dev"}));
  EXPECT_EQ(d["schedule"]["type"], "interval");
  EXPECT_EQ(d["schedule"]["interval_seconds"], 3600);
  EXPECT_EQ(d["schedule"]["anchor"], "1970-01-01T00:00:00.000Z");
  flow.run_config(DockerRun{.image = "i", .volumes = {"/a:/b"}, .labels = {"x"}});
  EXPECT_EQ(json::parse(flow.describe_json())["run_config"]["volumes"], json::array({"/a:/b"}));
  flow.run_config(SlurmRun{.partition = "gpu", .cpus = 4, .time_limit = "01:00:00"});
  d = json::parse(flow.describe_json());
  EXPECT_EQ(d["run_config"]["type"], "slurm");
  EXPECT_EQ(d["run_config"]["cpus"], 4);
}

TEST(Flow, ValidationErrors) {
  struct Case {
    std::function<void(Flow&)> build;
    std::string expected;
  };
  std::vector<Case> cases = {
      {[](Flow& f) { f.schedule(Cron("0 6 * *", "UTC")); }, "must have 5 fields"},
      {[](Flow& f) { f.schedule(Cron("0 6 * * *", "Mars/Base")); }, "unknown time zone 'Mars/Base'"},
      {[](Flow& f) { f.task("t", [] {}); f.task("t", [] {}); }, "two tasks are named 't'"},
      {[](Flow& f) {
         auto a = f.task("a", [] {});
         auto b = f.task("b", [] {}).after(a);
         a.after(b);
       }, "cycle through: a, b"},
      {[](Flow& f) { f.concurrency_limit("x", 0); }, "at least 1"},
      {[](Flow& f) { f.task("t", [] { return 1; }).result("file:///x/{nope}"); }, "unknown placeholder {nope}"},
      {[](Flow& f) { f.storage("ftp://x"); }, "must be file:///dir or s3://"},
      {[](Flow& f) { f.task("t", [] {}).retries(-1); }, "must not be negative"},
      {[](Flow& f) { f.parameter<int>("p", 1); f.parameter<int>("p", 2); }, "two parameters are named 'p'"},
  };
  for (auto& c : cases) {
    Flow f("v");
    c.build(f);
    Status s = f.validate();
    EXPECT_FALSE(s.is_ok()) << c.expected;
    EXPECT_NE(s.message().find(c.expected), std::string::npos) << s.message();
  }
  Flow ok("ok");
  ok.schedule(Cron("@daily"));
  EXPECT_TRUE(ok.validate().is_ok());
}

TEST(Flow, GraphDot) {
  Flow flow = make_etl();
  std::string dot = flow.graph_dot();
  EXPECT_NE(dot.find("digraph \"etl\" {"), std::string::npos);
  EXPECT_NE(dot.find("\"extract\" -> \"transform\";"), std::string::npos);
  EXPECT_NE(dot.find("\"load\" -> \"report\" [style=dashed];"), std::string::npos);
  EXPECT_NE(dot.find("\"report\" [shape=box];"), std::string::npos);
}

TEST(Flow, SummaryJson) {
  Flow flow("s");
  flow.task("a", [] { return 1; });
  Executor ex;
  ManualClock clock;
  auto r = ex.run(flow, {.flow_run_id = "id-1", .clock = &clock});
  ASSERT_TRUE(r);
  json j = json::parse(r->to_json());
  EXPECT_EQ(j["flow"], "s");
  EXPECT_EQ(j["state"], "Success");
  EXPECT_EQ(j["flow_run_id"], "id-1");
  EXPECT_EQ(j["task_runs"], json::parse(R"([{"task":"a","map_index":-1,"state":"Success","attempts":1,
                                              "duration_ms":0,"message":""}])"));
}

}  // namespace
}  // namespace culvert
