// End to end: the real `culvert server start` (SQLite in a temporary directory, port 0,
// temporary HOME) driven by the real `culvert` binary — exit codes, --output json
// documents, error messages, the profile the server writes, --watch against a run that an
// agent (played by this test through the API client) claims and finishes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/api.hpp"
#include "client/profile.hpp"

extern char** environ;

namespace culvert::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kCulvert = std::string(CULVERT_BINARY_DIR) + "/culvert";

struct Outcome {
  int code = -1;
  std::string out, err;
};

// A child process with stdout/stderr on pipes (or files), started by this test and
// stopped by its pid.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
        const std::string& out_file = "", const std::string& err_file = "") {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      std::string k = kv.substr(0, kv.find('='));
      if (k.rfind("CULVERT_", 0) == 0 || env.count(k)) continue;
      envs.push_back(kv);
    }
    for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<char*> argv, envp;
    std::vector<std::string> a = args;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : envs) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      int o = out_file.empty() ? out_pipe[1] : ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = err_file.empty() ? err_pipe[1] : ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }
  pid_t pid() const { return pid_; }

  // Reads both pipes to EOF, then reaps the process.
  Outcome wait() {
    Outcome o;
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
      if (::poll(fds, 2, 120000) <= 0) break;  // a hung child fails the test below
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
        ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          fds[i].fd = -1;
          --open_fds;
        } else {
          (i == 0 ? o.out : o.err).append(buf, static_cast<size_t>(n));
        }
      }
    }
    int st = 0;
    if (::waitpid(pid_, &st, 0) == pid_) o.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
    return o;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
};

class CliE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "culvert-cli-e2e-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    home_ = dir_ / "home";
    fs::create_directories(home_);
    // Wait for the port file without sleeping: inotify on its directory.
    int in = ::inotify_init1(IN_CLOEXEC);
    ASSERT_GE(in, 0);
    ASSERT_GE(::inotify_add_watch(in, dir_.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE), 0);
    server_ = std::make_unique<Child>(
        std::vector<std::string>{kCulvert, "server", "start", "--db", "sqlite://" + (dir_ / "c.db").string(),
                                 "--listen", "127.0.0.1:0", "--port-file", (dir_ / "port").string()},
        std::map<std::string, std::string>{{"HOME", home_.string()}}, (dir_ / "server.out").string(),
        (dir_ / "server.err").string());
    bool ready = false;
    char buf[4096];
    while (!ready) {
      pollfd p{in, POLLIN, 0};
      if (::poll(&p, 1, 60000) <= 0) break;
      ssize_t n = ::read(in, buf, sizeof buf);
      for (ssize_t off = 0; off < n;) {
        auto* ev = reinterpret_cast<inotify_event*>(buf + off);
        if (ev->len > 0 && std::strcmp(ev->name, "port") == 0) ready = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    ::close(in);
    ASSERT_TRUE(ready) << "server did not start: " << slurp(dir_ / "server.err");
    std::ifstream pf(dir_ / "port");
    pf >> port_;
    ASSERT_GT(port_, 0);
    url_ = "http://127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  Outcome culvert(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), kCulvert);
    env.emplace("HOME", home_.string());
    return Child(args, env).wait();
  }

  json doc(const Outcome& o) {
    auto j = json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not one JSON document: " << o.out << o.err;
    return j;
  }

  // The admin token the server saved into the profile.
  std::string admin_token() {
    auto c = client::load_profile_config(home_ / ".culvert" / "config.toml");
    EXPECT_TRUE(c.is_ok());
    return c->profiles["default"].api_token;
  }

  client::ApiClient api() { return client::ApiClient({.api_url = url_, .api_token = admin_token()}); }

  // Registers flow `etl` in project `p` with a daily 06:00 Berlin schedule (what
  // `./etl register --project p` would send).
  std::string register_flow() {
    auto a = api();
    json body = {{"project", "p"}, {"name", "etl"},
                 {"artifact", {{"uri", "file:///tmp/flows/etl/abc"}, {"sha256", std::string(64, 'a')}}},
                 {"tasks", {{{"name", "extract"}, {"kind", "shell"}, {"command", "true"}}}},
                 {"edges", json::array()},
                 {"parameters", {{{"name", "rows"}, {"type", "int"}, {"default", 10}, {"required", false}}}},
                 {"run_config", {{"type", "local"}, {"labels", json::array()}}},
                 {"labels", json::array()},
                 {"schedule", {{"type", "cron"}, {"cron", "0 6 * * *"}, {"timezone", "Europe/Berlin"},
                               {"parameters", {{"rows", 7}}}, {"catchup", "skip"}, {"active", true}}}};
    auto r = a.register_flow(body);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? (*r)["id"].get<std::string>() : "";
  }

  fs::path dir_, home_;
  std::unique_ptr<Child> server_;
  int port_ = 0;
  std::string url_;
};

TEST_F(CliE2E, ServerWritesTheProfileTheCliUses) {
  auto o = culvert({"config", "show", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto j = doc(o);
  EXPECT_EQ(j["api_url"], url_);
  EXPECT_EQ(j["api_token_set"], true);
  EXPECT_EQ(j["api_token_source"], "profile default");
  o = culvert({"get", "agents", "-o", "json"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(doc(o)["agents"].empty());
}

TEST_F(CliE2E, ProjectsAndErrors) {
  auto o = culvert({"project", "create", "etl", "--description", "nightly", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["name"], "etl");
  o = culvert({"project", "create", "etl"});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("etl"), std::string::npos) << o.err;
  o = culvert({"project", "create", "etl", "--skip-if-exists", "-o", "json"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["description"], "nightly");
  o = culvert({"project", "list"});
  EXPECT_EQ(o.code, 0);
  EXPECT_NE(o.out.find("etl"), std::string::npos);
  // Bad usage, bad token, no server.
  o = culvert({"project", "list", "--colour"});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("--colour"), std::string::npos);
  o = culvert({"project", "list"}, {{"CULVERT_API_TOKEN", "cvt_wrong"}});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("error: "), std::string::npos);
  o = culvert({"project", "list", "--api-url", "http://127.0.0.1:1"});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("cannot connect to the Culvert server at http://127.0.0.1:1"), std::string::npos) << o.err;
}

TEST_F(CliE2E, Tokens) {
  auto o = culvert({"auth", "create-token", "--name", "ci", "--scope", "user", "--expires", "30d", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto t = doc(o);
  std::string id = t["id"], secret = t["token"];
  ASSERT_FALSE(secret.empty());
  o = culvert({"auth", "list-tokens", "-o", "json"});
  ASSERT_EQ(o.code, 0);
  bool found = false;
  json listed = doc(o);
  for (const auto& x : listed["tokens"]) found = found || x["id"].get<std::string>() == id;
  EXPECT_TRUE(found) << id << "\n" << o.out;
  EXPECT_EQ(o.out.find(secret), std::string::npos);  // secrets are never listed
  // The user token works for user routes, not for token management.
  o = culvert({"project", "create", "x"}, {{"CULVERT_API_TOKEN", secret}});
  EXPECT_EQ(o.code, 0) << o.err;
  o = culvert({"auth", "list-tokens"}, {{"CULVERT_API_TOKEN", secret}});
  EXPECT_EQ(o.code, 1);
  o = culvert({"auth", "revoke-token", id});
  EXPECT_EQ(o.code, 0) << o.err;
  o = culvert({"project", "list"}, {{"CULVERT_API_TOKEN", secret}});
  EXPECT_EQ(o.code, 1);
  // auth login stores a token in another profile
  o = culvert({"auth", "login", "--token", "cvt_x", "--profile", "other"});
  EXPECT_EQ(o.code, 0) << o.err;
  auto c = client::load_profile_config(home_ / ".culvert" / "config.toml");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->profiles["other"].api_token, "cvt_x");
  EXPECT_EQ(c->active_profile, "default");
}

TEST_F(CliE2E, FlowsSchedulesAndBackfill) {
  std::string flow_id = register_flow();
  ASSERT_FALSE(flow_id.empty());
  auto o = culvert({"flow", "list"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("0 6 * * * Europe/Berlin"), std::string::npos) << o.out;
  o = culvert({"flow", "show", "etl", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto j = doc(o);
  EXPECT_EQ(j["id"], flow_id);
  EXPECT_EQ(j["next_fire_times"].size(), 5u);
  o = culvert({"flow", "set-schedule", "etl", "--paused", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["schedule_active"], false);
  o = culvert({"flow", "set-schedule", flow_id, "--active"});
  EXPECT_EQ(o.code, 0) << o.err;
  // Backfill 2026-03-27..31 across the spring-forward night: 5 days, 5 fire times at 06:00.
  std::vector<std::string> args = {"flow", "backfill", "etl", "--project", "p", "--from", "2026-03-27T00:00:00+01:00",
                                   "--to", "2026-04-01T00:00:00+02:00", "-o", "json"};
  o = culvert(args);
  ASSERT_EQ(o.code, 0) << o.err;
  j = doc(o);
  ASSERT_EQ(j["runs"].size(), 5u);
  EXPECT_EQ(j["runs"][1]["scheduled_start_time"], "2026-03-28T05:00:00.000Z");
  EXPECT_EQ(j["runs"][2]["scheduled_start_time"], "2026-03-29T04:00:00.000Z");
  EXPECT_EQ(j["runs"][2]["parameters"]["rows"], 7);
  EXPECT_EQ(j["runs"][2]["idempotency_key"], "sched:" + flow_id + ":2026-03-29T04:00:00Z");
  // Repeating it creates nothing new: the same runs come back.
  o = culvert(args);
  ASSERT_EQ(o.code, 0) << o.err;
  auto again = doc(o);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(again["runs"][i]["id"], j["runs"][i]["id"]);
  o = culvert({"get", "runs", "--flow", "etl", "--limit", "100", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["runs"].size(), 5u);
  o = culvert({"flow", "backfill", "etl", "--from", "2026-03-27T00:00:00Z", "--to", "2099-01-01T00:00:00Z"});
  EXPECT_EQ(o.code, 2);
  o = culvert({"flow", "show", "nope"});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("flow 'nope' not found"), std::string::npos);
}

TEST_F(CliE2E, RunInspectCancelRetry) {
  ASSERT_FALSE(register_flow().empty());
  auto o = culvert({"run", "etl", "--project", "p", "--param", "rows=3", "--label", "gpu", "--label", "s3",
                    "--idempotency-key", "k1", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto run = doc(o);
  std::string id = run["id"];
  EXPECT_EQ(run["parameters"]["rows"], 3);
  EXPECT_EQ(run["labels"], (json{"gpu", "s3"}));
  o = culvert({"run", "etl", "--project", "p", "--idempotency-key", "k1", "-o", "json"});
  EXPECT_EQ(doc(o)["id"], id);  // same key, same run
  o = culvert({"run", "etl", "--project", "p", "--param", "rows=many"});
  EXPECT_EQ(o.code, 1);  // the server checks the type
  EXPECT_NE(o.err.find("rows"), std::string::npos) << o.err;

  o = culvert({"run", "inspect", id});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("no agent is registered"), std::string::npos) << o.out;
  auto a = api();
  auto agent = a.register_agent("cpu-box", "local", {"gpu"});
  ASSERT_TRUE(agent.is_ok()) << agent.status().to_string();
  ASSERT_TRUE(a.heartbeat_agent((*agent)["id"].get<std::string>()).is_ok());
  o = culvert({"run", "inspect", id, "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto diag = doc(o)["diagnosis"];
  ASSERT_EQ(diag["agents"].size(), 1u);
  EXPECT_EQ(diag["agents"][0]["missing_labels"], (json{"s3"}));
  o = culvert({"run", "inspect", id});
  EXPECT_NE(o.out.find("agent 'cpu-box' lacks label s3"), std::string::npos) << o.out;

  o = culvert({"run", "cancel", id, "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["state"], "Cancelled");
  o = culvert({"get", "runs", "--state", "Cancelled", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["runs"].size(), 1u);
  o = culvert({"run", "retry", id, "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::string state = doc(o)["state"];
  EXPECT_TRUE(state == "Scheduled" || state == "Pending") << state;
  o = culvert({"run", "cancel", "00000000-0000-0000-0000-000000000000"});
  EXPECT_EQ(o.code, 1);
}

// A distributed map's fan-out against the real server: the parent (played by this test
// with its run token through the API client) creates 60 child runs; `run inspect` shows
// them by state, bounded, with each child's chunk, indexes and infrastructure, and a
// child shows its parent.
TEST_F(CliE2E, RunInspectShowsAParentsChildrenAndAChildsParent) {
  auto a = api();
  json body = {{"project", "p"}, {"name", "fan"},
               {"artifact", {{"uri", "file:///tmp/flows/fan/abc"}, {"sha256", std::string(64, 'b')}}},
               {"tasks", {{{"name", "items"}},
                          {{"name", "score"}, {"mapped", true},
                           {"distributed", {{"max_workers", 20}, {"chunk_size", 10}, {"storage", "file:///shared/maps"}}}}}},
               {"edges", {{{"from", "items"}, {"to", "score"}}}},
               {"run_config", {{"type", "local"}, {"labels", json::array()}}}};
  auto flow = a.register_flow(body);
  ASSERT_TRUE(flow.is_ok()) << flow.status().to_string();
  auto o = culvert({"run", "fan", "--project", "p", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::string parent = doc(o)["id"];
  auto agent = a.register_agent("worker", "local", {});
  ASSERT_TRUE(agent.is_ok()) << agent.status().to_string();
  std::string agent_id = (*agent)["id"];
  auto claim = [&]() -> json {
    auto c = a.claim_runs(agent_id, 1, std::chrono::milliseconds(10000));
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() && !(*c)["runs"].empty() ? (*c)["runs"][0] : json();
  };
  json p = claim();
  ASSERT_EQ(p.value("id", ""), parent);
  client::ApiClient as_parent({.api_url = url_, .api_token = p["token"]});
  ASSERT_TRUE(as_parent.set_flow_run_state(parent, "Running", "started").is_ok());
  json chunks = json::array();
  for (int i = 0; i < 60; ++i) chunks.push_back({{"chunk", i}, {"start", 10 * i}, {"end", 10 * i + 10}});
  auto made = as_parent.create_child_runs(parent, "score", chunks);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  ASSERT_EQ((*made)["children"].size(), 60u);
  auto not_distributed = as_parent.create_child_runs(parent, "items", json::array({chunks[0]}));
  EXPECT_EQ(not_distributed.status().code(), StatusCode::kUnprocessable);
  // One child runs on the agent and ends; the parent's long poll sees it.
  json kid = claim();
  std::string child = kid.value("id", "");
  ASSERT_EQ(child, (*made)["children"][0]["id"]);
  client::ApiClient as_child({.api_url = url_, .api_token = kid["token"]});
  json infra = {{"kind", "process"}, {"id", "424242"}};
  ASSERT_TRUE(a.call("POST", "/api/v1/flow-runs/" + child + "/infrastructure", &infra).is_ok());
  ASSERT_TRUE(as_child.set_flow_run_state(child, "Running", "chunk 0").is_ok());
  json element = json::array({{{"flow_run_id", parent}, {"task", "score"}, {"map_index", 0}, {"map_count", 10},
                               {"state", "Success"}}});
  ASSERT_TRUE(as_child.set_task_run_states(element).is_ok());
  ASSERT_TRUE(as_child.set_flow_run_state(child, "Success", "chunk 0 done").is_ok());
  auto waited = as_parent.list_child_runs(parent, "score", 0, 0, std::chrono::milliseconds(10000));
  ASSERT_TRUE(waited.is_ok()) << waited.status().to_string();
  EXPECT_EQ((*waited)["final"], 1);
  EXPECT_EQ((*waited)["by_state"], (json{{"Scheduled", 59}, {"Success", 1}}));

  o = culvert({"run", "inspect", parent});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("children:    60 (attempt 1: Scheduled 59, Success 1)"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("CHUNK"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("0..9"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("490..499"), std::string::npos) << o.out;   // chunk 49: the 50th row
  EXPECT_EQ(o.out.find("500..509"), std::string::npos) << o.out;   // chunk 50: not listed
  EXPECT_NE(o.out.find("... 10 more (culvert get runs --parent " + parent + " --all)"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("process 424242"), std::string::npos) << o.out;
  o = culvert({"run", "inspect", parent, "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto j = doc(o);
  EXPECT_EQ(j["children"]["count"], 60);
  EXPECT_EQ(j["child_runs"]["children"].size(), 60u);
  EXPECT_EQ(j["child_runs"]["children"][0]["infrastructure"]["id"], "424242");
  o = culvert({"run", "inspect", child});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("parent:      " + parent + " (task score, chunk 0, map indexes 0..9, its attempt 1)"),
            std::string::npos)
      << o.out;
  EXPECT_EQ(o.out.find("children:"), std::string::npos) << o.out;
  o = culvert({"get", "runs", "--parent", parent, "--all", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["runs"].size(), 60u);
  // Cancelling the parent ends every child that has not ended.
  o = culvert({"run", "cancel", parent});
  ASSERT_EQ(o.code, 0) << o.err;
  o = culvert({"run", "inspect", parent});
  EXPECT_NE(o.out.find("(attempt 1: Success 1, Cancelled 59)"), std::string::npos) << o.out;
}

TEST_F(CliE2E, WatchFollowsARunToSuccess) {
  ASSERT_FALSE(register_flow().empty());
  // The CLI creates and watches; this test plays the agent.
  Child watcher({kCulvert, "run", "etl", "--project", "p", "--watch"}, {{"HOME", home_.string()}});
  auto a = api();
  auto agent = a.register_agent("worker", "local", {});
  ASSERT_TRUE(agent.is_ok()) << agent.status().to_string();
  std::string agent_id = (*agent)["id"];
  json claimed = json::array();
  while (claimed.empty()) {  // long poll: returns as soon as the run is created
    auto c = a.claim_runs(agent_id, 1, std::chrono::milliseconds(10000));
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    claimed = (*c)["runs"];
  }
  std::string run_id = claimed[0]["id"];
  client::ApiClient as_run({.api_url = url_, .api_token = claimed[0]["token"]});
  ASSERT_TRUE(as_run.set_flow_run_state(run_id, "Running", "started").is_ok());
  json logs = json::array({{{"flow_run_id", run_id}, {"level", "INFO"}, {"message", "hello from extract"},
                            {"timestamp", "2026-11-28T06:00:00Z"}}});
  auto w = as_run.write_logs(logs);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  ASSERT_TRUE(as_run.set_flow_run_state(run_id, "Success", "all done").is_ok());
  auto o = watcher.wait();
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("state: Running"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("hello from extract"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("finished: Success"), std::string::npos) << o.out;

  o = culvert({"get", "logs", run_id, "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(doc(o)["logs"].size(), 1u);
  o = culvert({"get", "logs", run_id, "--follow"});  // final already: prints and returns
  EXPECT_EQ(o.code, 0);
  EXPECT_NE(o.out.find("INFO hello from extract"), std::string::npos) << o.out;
  o = culvert({"get", "agents"});
  EXPECT_NE(o.out.find("worker"), std::string::npos);
}


TEST_F(CliE2E, VersionAndFlowRegisterTakeTheOutputOption) {
  // One vocabulary, table|json, with --output and -o alike.
  for (const char* flag : {"-o", "--output"}) {
    auto o = culvert({"version", flag, "json"});
    ASSERT_EQ(o.code, 0) << o.err;
    EXPECT_FALSE(doc(o)["version"].get<std::string>().empty());
    o = culvert({"version", flag, "table"});
    ASSERT_EQ(o.code, 0) << o.err;
    EXPECT_EQ(o.out.rfind("culvert ", 0), 0u) << o.out;
  }
  auto o = culvert({"version", "-o", "yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("--output"), std::string::npos) << o.err;

  const std::string flow_binary = std::string(CULVERT_BINARY_DIR) + "/tests/e2e/e2e_flow";
  const std::string storage = "file://" + (dir_ / "flows").string();
  o = culvert({"flow", "register", flow_binary, "--project", "p", "--storage", storage, "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  auto j = doc(o);
  EXPECT_FALSE(j["id"].get<std::string>().empty());
  EXPECT_EQ(j["project"], "p");
  EXPECT_TRUE(j["version"].is_number_integer());
  o = culvert({"flow", "register", flow_binary, "--project", "p", "--storage", storage, "--output", "table"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("registered flow '"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" in project 'p'"), std::string::npos) << o.out;
  o = culvert({"flow", "register", flow_binary, "--project", "p", "--storage", storage, "-o", "yaml"});
  EXPECT_EQ(o.code, 2);
  // Errors in the CLI's one form: `error: <message>`, 2 for bad usage, 1 for a failure.
  o = culvert({"flow", "register", (dir_ / "missing").string(), "--project", "p"});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("error: '" + (dir_ / "missing").string() + " describe' failed"), std::string::npos) << o.err;
  // A "flow binary" whose describe never ends is cut off at the description limit.
  const auto endless = dir_ / "endless";
  {
    std::ofstream f(endless);
    f << "#!/bin/sh\nexec yes '{\"flow\":0}'\n";
  }
  std::filesystem::permissions(endless, std::filesystem::perms::owner_all);
  o = culvert({"flow", "register", endless.string(), "--project", "p", "--storage", storage});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("describe' printed more than 4194304 bytes"), std::string::npos) << o.err;
  o = culvert({"flow", "register", flow_binary, "--project", "p", "--storage", storage, "--api-url",
               "http://127.0.0.1:1"});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("error: "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("http://127.0.0.1:1"), std::string::npos) << o.err;
}

TEST_F(CliE2E, CreateAdminTokenTakesTheOutputOption) {
  auto o = culvert({"server", "create-admin-token", "--db", "sqlite://" + (dir_ / "c.db").string(), "--name",
                    "recovery", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  auto j = doc(o);  // the document of `auth create-token -o json`
  EXPECT_EQ(j["name"], "recovery");
  EXPECT_EQ(j["scope"], "admin");
  std::string secret = j["token"];
  ASSERT_EQ(secret.rfind("cvt_", 0), 0u) << secret;
  o = culvert({"auth", "list-tokens", "-o", "json"}, {{"CULVERT_API_TOKEN", secret}});
  EXPECT_EQ(o.code, 0) << o.err;
  o = culvert({"server", "create-admin-token", "--db", "sqlite://" + (dir_ / "c.db").string(), "--name", "x",
               "-o", "yaml"});
  EXPECT_EQ(o.code, 2);
}

TEST_F(CliE2E, GetRunsPagesThroughTheServersCursors) {
  ASSERT_FALSE(register_flow().empty());
  auto a = api();
  std::set<std::string> created;
  for (int i = 0; i < 7; ++i) {
    auto r = a.create_flow_run({{"project", "p"}, {"flow", "etl"}, {"parameters", json::object()}});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    created.insert((*r)["id"].get<std::string>());
  }
  // Pages of 3: the table names the next cursor, and that cursor gives the next page.
  auto o = culvert({"get", "runs", "--limit", "3"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto at = o.out.find("next cursor: ");
  ASSERT_NE(at, std::string::npos) << o.out;
  std::string cursor = o.out.substr(at + 13, o.out.find(' ', at + 13) - (at + 13));
  o = culvert({"get", "runs", "--limit", "3", "--cursor", cursor, "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto page = doc(o);
  EXPECT_EQ(page["runs"].size(), 3u);
  EXPECT_TRUE(page["next_cursor"].is_string());
  // --all: every run once, in one document.
  o = culvert({"get", "runs", "--all", "--limit", "3", "-o", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto all = doc(o);
  std::set<std::string> listed;
  for (const auto& r : all["runs"]) listed.insert(r["id"].get<std::string>());
  EXPECT_EQ(all["runs"].size(), 7u);
  EXPECT_EQ(listed, created);
  EXPECT_TRUE(all["next_cursor"].is_null());
  o = culvert({"get", "runs", "--all", "--limit", "2"});
  ASSERT_EQ(o.code, 0) << o.err;
  for (const auto& id : created) EXPECT_NE(o.out.find(id), std::string::npos) << id << "\n" << o.out;
  EXPECT_EQ(o.out.find("next cursor"), std::string::npos) << o.out;
}

}  // namespace
}  // namespace culvert::cli
