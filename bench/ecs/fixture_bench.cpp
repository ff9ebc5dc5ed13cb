// ecs_fixture_bench [--runs N] [--max-concurrent M] [--max-starting S] [--phases LIST]:
// end-to-end throughput of the ECS agent against the test-only ECS-compatible endpoint
// (tests/support/ecs_fixture.py), and of the Docker agent on the same runs, in the same
// benchmark run, on the same dockerd, image and server, beside the machine's own ceiling
// for containers. Four phases (LIST: a comma-separated subset of them, default all, in
// this order):
//   docker-bare     no Culvert at all: N containers of the same image, each running
//                   `culvert --version` (the cheapest command the image has) with the
//                   host network, the memory limit, the environment and the host volume
//                   of the ecs-containers phase, created, started, waited for and
//                   removed through the Docker Engine client, at most S (default 8, the
//                   fixture's default) being created or started, or removed, at once,
//                   as the fixture does: what dockerd alone allows; "docker-bare:K"
//                   runs it with K at once instead (it may be listed more than once);
//   ecs-processes   the fixture runs each task's command as a plain local process
//                   (its --task-mode processes): the agent, server, fixture and
//                   `culvert execute` path without Docker's cost per container;
//   ecs-containers  the fixture runs each task as a Docker container, as ECS would;
//   docker          the Docker agent, each run a container on the same dockerd.
// --max-starting S is also the fixture's --max-starting in the ecs phases.
// For each it prints the CPU seconds the agent, the server and the fixture used, so
// the agent's cost can be told from the containers'. The flow binary registered is
// tests/e2e/e2e_flow with its debug information stripped (objcopy --strip-debug), as a
// release build ships it; --as-built-artifact registers it as built (a debug build's is
// over 20 times larger, and each run's `culvert execute` fetches and hashes it).
//
// Each phase queues N runs of a flow that does nothing (its tasks return at once: the
// container exits as soon as `culvert execute` has fetched the flow from s3rver, run it
// and reported Success), then starts one agent with --max-concurrent M and times from
// the agent's start until every run is final. It checks that every run ended Success and
// that each executed exactly once, counted by the flows themselves (each appends its run
// id to a file on a host volume), and for ECS one task per run and one task-definition
// revision. Run it through bench/ecs/run_fixture_bench.sh (starts dockerd and s3rver).
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <condition_variable>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "agent/docker/docker_client.hpp"
#include "ecs_fixture.hpp"
#include "harness.hpp"
#include "runner_image.hpp"

using namespace culvert;
using namespace culvert::e2e;
using nlohmann::json;
using Clk = std::chrono::steady_clock;

namespace {

bool is_bare(const std::string& phase) { return phase == "docker-bare" || phase.starts_with("docker-bare:"); }

// The K of "docker-bare:K" (a positive number), `def` for "docker-bare", 0 when K is not one.
int bare_max_starting(const std::string& phase, int def) {
  if (phase == "docker-bare") return def;
  std::string k = phase.substr(std::strlen("docker-bare:"));
  if (k.empty() || k.size() > 4 || k.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::atoi(k.c_str());
}

int arg(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return def;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// CPU seconds (user + system) process `pid` used so far, from /proc/PID/stat: its own
// (utime, stime), or with `children` those of its children it has waited for (cutime,
// cstime). 0 when there is no such process.
double cpu_seconds(pid_t pid, bool children = false) {
  if (pid <= 0) return 0;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  // Fields after the name, from 3 (state): utime 14, stime 15, cutime 16, cstime 17.
  const int first = children ? 16 : 14;
  for (int i = 3; i <= first + 1 && in >> field; ++i)
    if (i == first || i == first + 1) ticks += std::atof(field.c_str());
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The own CPU seconds of `pid` and of the processes whose parent it is (dockerd and its
// containerd).
double cpu_seconds_with_children_alive(pid_t pid) {
  if (pid <= 0) return 0;
  double total = cpu_seconds(pid);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string stat = read_file(entry.path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(stat.substr(close + 2));
    std::string state, ppid;
    if (in >> state >> ppid && std::atol(ppid.c_str()) == pid) total += cpu_seconds(std::atol(name.c_str()));
  }
  return total;
}

pid_t pid_in(const char* dir_variable) {
  const char* dir = std::getenv(dir_variable);
  if (!dir) return -1;
  std::string text = read_file(fs::path(dir) / "pid");
  return text.empty() ? -1 : static_cast<pid_t>(std::atol(text.c_str()));
}

struct Phase {
  std::string name;
  double seconds = 0;
  double agent_cpu = 0, server_cpu = 0, fixture_cpu = 0;
  double tasks_cpu = 0;  // the fixture's task processes (process mode only)
  double s3rver_cpu = 0, dockerd_cpu = 0;
  int finished = 0, success = 0, executed_once = 0, executed_twice = 0;
  double client_cpu = 0;  // this benchmark's own (docker-bare: the Docker client's)
  int max_starting = 0;    // docker-bare: its containers created or started, or removed, at once
  std::string note;
};

// At most `n` holders at once; a release wakes one waiter (as Python's
// threading.BoundedSemaphore, the fixture's, does: libstdc++'s std::counting_semaphore
// wakes every waiter on each release, which with hundreds waiting costs the benchmark
// seconds of CPU that dockerd would otherwise have).
class Slots {
 public:
  explicit Slots(int n) : free_(n) {}
  void acquire() {
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      ++free_;
    }
    freed_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable freed_;
  int free_;
};

// CPU seconds (user + system) this process has used so far, all its threads.
double own_cpu_seconds() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

class Bench {
 public:
  Bench(int runs, int max_concurrent, int max_starting, std::vector<std::string> phases, bool as_built)
      : runs_(runs),
        max_concurrent_(max_concurrent),
        max_starting_(max_starting),
        phases_(std::move(phases)),
        as_built_(as_built) {}

  int main() {
    const char* dd = std::getenv("CULVERT_DOCKERD_DIR");
    const char* s3 = std::getenv("CULVERT_S3RVER_DIR");
    if (!dd || !s3) return fail("run through bench/ecs/run_fixture_bench.sh (it starts dockerd and s3rver)");
    for (const auto& p : phases_)
      if (is_bare(p) ? bare_max_starting(p, max_starting_) <= 0
                     : p != "ecs-processes" && p != "ecs-containers" && p != "docker")
        return fail("--phases: unknown phase '" + p +
                    "' (docker-bare, docker-bare:K with K > 0 the containers started at once, ecs-processes, "
                    "ecs-containers, docker)");
    socket_ = trim(read_file(fs::path(dd) / "socket"));
    s3_endpoint_ = "http://127.0.0.1:" + trim(read_file(fs::path(s3) / "port"));
    docker_ = std::make_unique<docker::DockerClient>(docker::DockerClient::Options{.host = socket_});
    if (!docker_->ping().is_ok()) return fail("dockerd does not answer at " + socket_);
    if (Status st = build_runner_image(sandbox_, *docker_, kImage, {build_path("tests/e2e/e2e_flow")}); !st.is_ok())
      return fail(st.to_string());
    server_ = std::make_unique<TestServer>(sandbox_, std::vector<std::string>{"--heartbeat-interval", "5s"});
    if (!server_->ok()) return fail("the server did not start: " + read_file(sandbox_.dir() / "server.log"));
    flow_binary_ = build_path("tests/e2e/e2e_flow");
    if (!as_built_) {
      fs::path stripped = sandbox_.dir() / "e2e_flow";
      auto st = sandbox_.run({"/usr/bin/objcopy", "--strip-debug", flow_binary_, stripped.string()});
      if (st.exit_code != 0) return fail("objcopy --strip-debug " + flow_binary_ + ": " + st.err);
      flow_binary_ = stripped.string();
    }
    fmt::print("flow artifact: {} ({:.1f} MB)\n", flow_binary_, fs::file_size(flow_binary_) / 1e6);

    std::vector<Phase> done;
    bool ok = true;
    fmt::print("{} runs each, --max-concurrent {}, --max-starting {}, on {} cores\n", runs_, max_concurrent_,
               max_starting_, cores());
    for (const auto& name : phases_) {
      if (is_bare(name)) {
        Phase p = bare(name, bare_max_starting(name, max_starting_));
        print_bare(p);
        ok = ok && p.success == runs_;
        done.push_back(p);
        continue;
      }
      std::unique_ptr<EcsFixture> fixture;
      if (name != "docker") {
        fixture = std::make_unique<EcsFixture>(sandbox_, socket_, "fixture-" + name,
                                               name == "ecs-processes" ? EcsFixture::TaskMode::kProcesses
                                                                       : EcsFixture::TaskMode::kContainers,
                                               max_starting_);
        if (!fixture->ok()) return fail(fixture->error());
      }
      Phase p = phase(name, fixture.get());
      print(p);
      ok = ok && p.success == runs_ && p.executed_once == runs_;
      if (fixture) {
        json s = fixture->state();
        int tasks = static_cast<int>(s["tasks"].size());
        int revisions = 0;
        for (const auto& [family, n] : s["revisions"].items()) revisions += n.get<int>();
        fmt::print("  fixture ({}): {} tasks, {} task-definition revision(s), calls {}, invalid requests {}\n",
                   s.value("task_mode", "?"), tasks, revisions, s["calls"].dump(), s["invalid"].size());
        ok = ok && tasks == runs_ && revisions == 1 && s["invalid"].empty();
      }
      done.push_back(p);
    }
    (void)docker_->remove_image(kImage);
    auto rate = [](const Phase& p) { return p.seconds > 0 ? p.finished / p.seconds : 0.0; };
    for (const auto& a : done)
      for (const auto& b : done)
        if (!is_bare(a.name) && is_bare(b.name) && rate(b) > 0)
          fmt::print("{} / {} throughput: {:.2f}\n", a.name, b.name, rate(a) / rate(b));
    for (const auto& a : done)
      for (const auto& b : done)
        if (&a != &b && !is_bare(a.name) && b.name == "docker" && rate(b) > 0)
          fmt::print("{} / docker throughput: {:.2f}\n", a.name, rate(a) / rate(b));
    for (const auto& a : done)
      if (a.name == "ecs-processes")
        for (const auto& b : done)
          if (b.name == "ecs-containers")
            fmt::print("ecs-processes / ecs-containers throughput: {:.2f}\n", rate(a) / rate(b));
    fmt::print("{}\n", ok ? "all launched and finished, none twice" : "FAILED: see above");
    return ok ? 0 : 1;
  }

 private:
  static constexpr const char* kImage = "culvert-ecs-bench-runner:bench";

  void print(const Phase& p) {
    fmt::print("{:>14}: {} finished ({} Success) in {:.1f} s = {:.1f} runs/s; executed once: {}, twice or more: {}; "
               "CPU s: agent {:.1f}, server {:.1f}, fixture {:.1f}, task processes {:.1f}, s3rver {:.1f}, dockerd+containerd {:.1f}{}\n",
               p.name, p.finished, p.success, p.seconds, p.seconds > 0 ? p.finished / p.seconds : 0.0,
               p.executed_once, p.executed_twice, p.agent_cpu, p.server_cpu, p.fixture_cpu, p.tasks_cpu,
               p.s3rver_cpu, p.dockerd_cpu, p.note);
    std::fflush(stdout);
  }

  void print_bare(const Phase& p) {
    fmt::print("{:>14}: {} containers run (exited 0: {}) in {:.1f} s = {:.1f} runs/s (a run: create, start, wait, "
               "remove; {} at once); CPU s: this benchmark (the Docker client) {:.1f}, "
               "dockerd+containerd {:.1f}{}\n",
               p.name, p.finished, p.success, p.seconds, p.seconds > 0 ? p.finished / p.seconds : 0.0, p.max_starting,
               p.client_cpu, p.dockerd_cpu, p.note);
    std::fflush(stdout);
  }

  static int cores() {
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
  }
  int fail(const std::string& why) {
    std::fprintf(stderr, "ecs_fixture_bench: %s\n", why.c_str());
    return 2;
  }

  std::map<std::string, std::string> env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()},
            {"CULVERT_S3_ENDPOINT", s3_endpoint_}, {"AWS_ACCESS_KEY_ID", "S3RVER"},
            {"AWS_SECRET_ACCESS_KEY", "S3RVER"}, {"AWS_REGION", "us-east-1"},
            {"AWS_EC2_METADATA_DISABLED", "true"}};
  }

  // Queues the runs of project `name`, starts its agent, waits for every run to end.
  // `fixture`: the ECS fixture of an ecs phase (null for docker).
  Phase phase(const std::string& name, EcsFixture* fixture) {
    Phase p{name};
    const bool ecs = fixture != nullptr;
    const std::string type = ecs ? "ecs" : "docker";
    fs::path markers = sandbox_.dir() / ("markers-" + name);
    fs::create_directories(markers);
    ::chmod(markers.c_str(), 0777);
    // A task run as a local process sees the host's paths, a container the volume's.
    const std::string marker = name == "ecs-processes" ? (markers / "executions").string() : "/markers/executions";
    json rc = {{"type", type}, {"image", kImage}, {"env", {{"CULVERT_ARTIFACT_CACHE", "/tmp/artifacts"}}}};
    if (ecs) {
      rc["cpu"] = 256;
      rc["memory"] = 512;
      json volume = {{"name", "markers"}, {"host", {{"sourcePath", markers.string()}}}};
      json mount = {{"sourceVolume", "markers"}, {"containerPath", "/markers"}};
      json flow = {{"name", "flow"}, {"mountPoints", json::array({mount})}};
      rc["task_definition"] = {{"volumes", json::array({volume})}, {"containerDefinitions", json::array({flow})}};
    } else {
      rc["network_mode"] = "host";
      rc["memory"] = "512m";
      rc["volumes"] = json::array({markers.string() + ":/markers"});
    }
    auto reg = sandbox_.culvert({"flow", "register", flow_binary_, "--project", name, "--storage",
                                 "s3://culvert-e2e/bench-" + sandbox_.dir().filename().string() + "/flows",
                                 "--run-config", rc.dump(), "--output", "json"},
                                env());
    if (reg.exit_code != 0) {
      p.note = " (register failed: " + reg.err + ")";
      return p;
    }
    std::set<std::string> ids;
    for (int i = 0; i < runs_; ++i) {
      auto r = sandbox_.culvert({"run", "e2e", "--project", name, "--param", "marker=" + marker, "--output", "json"},
                                env());
      auto j = json::parse(r.out, nullptr, false);
      if (j.is_object() && j.contains("flow_run")) j = j["flow_run"];
      if (j.is_object() && j.contains("id")) ids.insert(j["id"].get<std::string>());
    }
    std::vector<std::string> argv = {culvert_binary(), "agent", "start", "--type", type, "--name", "bench-" + name,
                                     "--max-concurrent", std::to_string(max_concurrent_)};
    for (const char* k : {"CULVERT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                          "AWS_EC2_METADATA_DISABLED"})
      argv.insert(argv.end(), {"--env", std::string(k) + "=" + env().at(k)});
    if (ecs)
      argv.insert(argv.end(), {"--endpoint-url", fixture->url(), "--region", "us-east-1", "--launch-type", "EC2",
                               "--subnet", "subnet-fixture-a", "--security-group", "sg-fixture", "--poll-interval", "1s"});
    else
      argv.insert(argv.end(), {"--docker-host", socket_});
    auto agent_env = sandbox_.env({{"CULVERT_API_URL", server_->url()},
                                   {"CULVERT_API_TOKEN", server_->admin_token()},
                                   {"AWS_ACCESS_KEY_ID", "AKIDBENCH"},
                                   {"AWS_SECRET_ACCESS_KEY", "bench-secret"},
                                   {"AWS_EC2_METADATA_DISABLED", "true"}});
    const double server_cpu0 = cpu_seconds(server_->process().pid());
    const double fixture_cpu0 = ecs ? cpu_seconds(fixture->pid()) : 0;
    const double tasks_cpu0 = ecs ? cpu_seconds(fixture->pid(), true) : 0;
    const double s3rver_cpu0 = cpu_seconds(pid_in("CULVERT_S3RVER_DIR"));
    const double dockerd_cpu0 = cpu_seconds_with_children_alive(pid_in("CULVERT_DOCKERD_DIR"));
    auto t0 = Clk::now();
    Process agent(argv, agent_env, sandbox_.dir() / ("agent-" + name + ".log"));
    std::map<std::string, std::string> final_states;
    auto deadline = t0 + std::chrono::minutes(30);
    while (Clk::now() < deadline) {
      final_states = finished(name);
      if (final_states.size() >= ids.size()) break;
      if (!agent.running()) {
        p.note = " (the agent ended: " + agent.output().substr(0, 2000) + ")";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the pace of the polls
    }
    p.seconds = std::chrono::duration<double>(Clk::now() - t0).count();
    p.agent_cpu = cpu_seconds(agent.pid());
    p.server_cpu = cpu_seconds(server_->process().pid()) - server_cpu0;
    p.fixture_cpu = ecs ? cpu_seconds(fixture->pid()) - fixture_cpu0 : 0;
    p.tasks_cpu = ecs ? cpu_seconds(fixture->pid(), true) - tasks_cpu0 : 0;
    p.s3rver_cpu = cpu_seconds(pid_in("CULVERT_S3RVER_DIR")) - s3rver_cpu0;
    p.dockerd_cpu = cpu_seconds_with_children_alive(pid_in("CULVERT_DOCKERD_DIR")) - dockerd_cpu0;
    p.finished = static_cast<int>(final_states.size());
    for (const auto& [id, state] : final_states)
      if (state == "Success") ++p.success;
    std::map<std::string, int> executions;
    std::istringstream in(read_file(markers / "executions"));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) ++executions[line];
    for (const auto& id : ids) {
      if (executions[id] == 1) ++p.executed_once;
      if (executions[id] > 1) ++p.executed_twice;
    }
    agent.signal(SIGTERM);
    (void)agent.wait(std::chrono::seconds(60));
    return p;
  }

  // The docker-bare phase: runs_ containers of the runner image through the Docker
  // Engine client and nothing else, in the shape the fixture gives an ecs-containers
  // task (host network, a 512 MiB limit, the run's environment, the markers volume), each
  // on a thread of its own as the fixture's tasks are: at most `max_starting` being
  // created or started, or removed, at once, the waits not limited. The fixture's own
  // extra calls (an image inspect before, a container inspect after) are left out.
  Phase bare(const std::string& name, int max_starting) {
    Phase p{name};
    p.max_starting = max_starting;
    fs::path markers = sandbox_.dir() / "markers-docker-bare";
    fs::create_directories(markers);
    ::chmod(markers.c_str(), 0777);
    docker::ContainerSpec spec;
    spec.image = kImage;
    spec.cmd = {"culvert", "--version"};
    spec.network_mode = "host";
    spec.binds = {markers.string() + ":/markers"};
    spec.memory_bytes = 512LL * 1024 * 1024;
    spec.env = env();
    spec.env["CULVERT_ARTIFACT_CACHE"] = "/tmp/artifacts";
    spec.labels = {{"culvert-ecs-bench", name}};
    Slots slots(max_starting);
    std::atomic<int> ran{0}, exited_zero{0};
    std::mutex error_mutex;
    std::string first_error;
    auto failed = [&](const std::string& what, const Status& st) {
      std::lock_guard lock(error_mutex);
      if (first_error.empty()) first_error = what + ": " + st.to_string();
    };
    const double dockerd_cpu0 = cpu_seconds_with_children_alive(pid_in("CULVERT_DOCKERD_DIR"));
    const double client_cpu0 = own_cpu_seconds();
    auto t0 = Clk::now();
    std::vector<std::thread> threads;
    threads.reserve(runs_);
    for (int i = 0; i < runs_; ++i)
      threads.emplace_back([&] {
        std::string id;
        slots.acquire();
        auto created = docker_->create(spec);
        Status started = created.is_ok() ? docker_->start(*created) : created.status();
        slots.release();
        if (created.is_ok()) id = *created;
        if (!started.is_ok()) {
          failed(created.is_ok() ? "start" : "create", started);
        } else if (auto code = docker_->wait(id); !code.is_ok()) {
          failed("wait", code.status());
        } else {
          ++ran;
          if (*code == 0) ++exited_zero;
        }
        if (id.empty()) return;
        slots.acquire();
        if (Status st = docker_->remove(id); !st.is_ok()) failed("remove", st);
        slots.release();
      });
    for (auto& t : threads) t.join();
    p.seconds = std::chrono::duration<double>(Clk::now() - t0).count();
    p.client_cpu = own_cpu_seconds() - client_cpu0;
    p.dockerd_cpu = cpu_seconds_with_children_alive(pid_in("CULVERT_DOCKERD_DIR")) - dockerd_cpu0;
    p.finished = ran;
    p.success = exited_zero;
    if (!first_error.empty()) p.note = " (first failure: " + first_error + ")";
    return p;
  }

  // The final runs of project `project`: id -> state.
  std::map<std::string, std::string> finished(const std::string& project) {
    auto r = sandbox_.run({"/usr/bin/curl", "-sf", "-H", "Authorization: Bearer " + server_->admin_token(),
                           server_->url() + "/api/v1/flow-runs?limit=1000&project=" + project +
                               "&state=Success&state=Failed&state=Crashed&state=Cancelled"});
    auto j = json::parse(r.out, nullptr, false);
    const json& list = j.is_array() ? j : (j.is_object() && j.contains("runs") ? j["runs"] : json::array());
    std::map<std::string, std::string> out;
    for (const auto& run : list)
      if (run.is_object()) out[run.value("id", "")] = run.value("state", "");
    return out;
  }

  int runs_, max_concurrent_, max_starting_;
  std::vector<std::string> phases_;
  bool as_built_;
  std::string flow_binary_;
  Sandbox sandbox_;
  std::string socket_, s3_endpoint_;
  std::unique_ptr<docker::DockerClient> docker_;
  std::unique_ptr<TestServer> server_;
};

}  // namespace

int main(int argc, char** argv) {
  const int runs = std::max(1, arg(argc, argv, "--runs", 500));
  const int max_concurrent = std::max(1, arg(argc, argv, "--max-concurrent", 500));
  const int max_starting = std::max(1, arg(argc, argv, "--max-starting", 8));
  std::vector<std::string> phases;
  std::string list = "docker-bare,ecs-processes,ecs-containers,docker";
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--phases") == 0) list = argv[i + 1];
  for (size_t at = 0; at <= list.size();) {
    size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    if (comma > at) phases.push_back(list.substr(at, comma - at));
    at = comma + 1;
  }
  bool as_built = false;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--as-built-artifact") == 0) as_built = true;
  return Bench(runs, max_concurrent, max_starting, std::move(phases), as_built).main();
}
