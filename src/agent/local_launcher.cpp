#include "agent/local_launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "agent/launcher_registry.hpp"
#include "client/api.hpp"
#include "storage/artifact_cache.hpp"
#include "storage/artifacts.hpp"

extern char** environ;

namespace culvert::agent {
namespace {

class LocalLaunch final : public Launch {
 public:
  explicit LocalLaunch(pid_t pid) : pid_(pid) {}
  ~LocalLaunch() override {
    // Never leave a zombie behind; a still-running child keeps running (the agent
    // decides whether to stop it).
    if (!exit_) poll();
  }

  std::optional<ExitInfo> poll() override {
    if (exit_) return exit_;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) exit_ = exit_info_from_wait_status(status);
    else if (r < 0 && errno == ECHILD) exit_ = ExitInfo{.exit_code = -1, .reason = "process vanished"};
    return exit_;
  }

  void stop(std::chrono::milliseconds grace) override {
    if (poll()) {
      ::kill(-pid_, SIGKILL);  // stragglers of the group, if any
      return;
    }
    ::kill(-pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (!poll() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ::kill(-pid_, SIGKILL);
    if (!exit_) {
      int status = 0;
      if (::waitpid(pid_, &status, 0) == pid_) exit_ = exit_info_from_wait_status(status);
    }
  }

  std::string describe() const override { return fmt::format("pid {}", pid_); }
  Infrastructure infrastructure() const override { return {"process", std::to_string(pid_)}; }

 private:
  pid_t pid_;
  std::optional<ExitInfo> exit_;
};

// A process a previous agent started: watched through a pidfd (readable once it ended,
// and never confused with a later process that reuses the pid), stopped by signalling its
// process group. Not its parent, this agent never learns its exit status.
class AdoptedProcess final : public Launch {
 public:
  AdoptedProcess(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  ~AdoptedProcess() override {
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  std::optional<ExitInfo> poll() override {
    if (exit_) return exit_;
    bool ended;
    if (pidfd_ >= 0) {
      struct pollfd p {pidfd_, POLLIN, 0};
      ended = ::poll(&p, 1, 0) > 0;
    } else {
      ended = ::kill(pid_, 0) != 0 && errno == ESRCH;
    }
    if (ended)
      exit_ = ExitInfo{.exit_code = -1,
                       .reason = "the process ended; its exit status is unknown to an agent that adopted it"};
    return exit_;
  }

  void stop(std::chrono::milliseconds grace) override {
    if (poll()) return;
    ::kill(-pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (!poll() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!exit_) {
      ::kill(-pid_, SIGKILL);
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (!poll() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (exit_) exit_->reason = "stopped; its exit status is unknown to an agent that adopted it";
  }

  std::string describe() const override { return fmt::format("pid {} (adopted)", pid_); }
  Infrastructure infrastructure() const override { return {"process", std::to_string(pid_)}; }

 private:
  pid_t pid_;
  int pidfd_;
  std::optional<ExitInfo> exit_;
};

// Whether process `pid`'s environment holds KEY=VALUE. nullopt when it cannot be read.
std::optional<bool> environment_has(pid_t pid, const std::string& entry) {
  std::ifstream in(fmt::format("/proc/{}/environ", pid), std::ios::binary);
  if (!in) return std::nullopt;
  std::string item;
  size_t total = 0;
  while (std::getline(in, item, '\0')) {
    if (item == entry) return true;
    total += item.size();
    if (total > (1u << 22)) break;  // bounded: a few MiB of environment at most
  }
  if (in.bad()) return std::nullopt;
  return false;
}

}  // namespace

ExitInfo exit_info_from_wait_status(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) {
    info.exit_code = WEXITSTATUS(status);
    info.reason = fmt::format("exited with code {}", info.exit_code);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(info.signal);
    info.reason = fmt::format("killed by signal {} (SIG{})", info.signal, abbrev ? abbrev : "?");
  } else {
    info.exit_code = -1;
    info.reason = "ended with unknown status";
  }
  return info;
}

LocalLauncher::LocalLauncher(LocalLauncherOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Launch>> LocalLauncher::launch(const LaunchSpec& spec) {
  std::vector<std::string> args = options_.command;
  int exec_fd = -1;
  if (options_.verified_binary)
    if (auto fd = options_.verified_binary(spec)) {
      exec_fd = *fd;
      args = {fmt::format("/proc/self/fd/{}", exec_fd), "execute"};
      // argv[0] names the file: the cached artifact (readlink of the descriptor).
      char target[4096];
      ssize_t n = ::readlink(args[0].c_str(), target, sizeof(target) - 1);
      if (n > 0) args[0].assign(target, static_cast<size_t>(n));
    }
  struct FdCloser {
    int& fd;
    ~FdCloser() {
      if (fd >= 0) ::close(fd);
    }
  } close_exec_fd{exec_fd};
  if (args.empty()) return invalid_argument("local launcher: empty command");
  std::string working_dir = options_.working_dir;
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto rc = nlohmann::json::parse(spec.run_config_json, nullptr, false);
  if (rc.is_discarded() || !rc.is_object())
    return invalid_argument("local launcher: run config is not a JSON object");
  if (auto it = rc.find("working_dir"); it != rc.end() && it->is_string()) working_dir = it->get<std::string>();
  // The run's environment (merged by the agent) over the agent's own.
  for (const auto& [k, v] : spec.env) env[k] = v;

  // Everything the child needs is prepared before fork: only async-signal-safe calls
  // happen between fork and exec.
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string out_path;
  if (!options_.output_dir.empty()) out_path = options_.output_dir + "/" + spec.flow_run_id + ".log";

  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0)
    return unavailable(fmt::format("local launcher: pipe: {}", std::strerror(errno)));
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    return unavailable(fmt::format("local launcher: fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int stage = 0;
    if (!working_dir.empty() && ::chdir(working_dir.c_str()) != 0) stage = 1;
    if (stage == 0 && !out_path.empty()) {
      int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd < 0) {
        stage = 2;
      } else {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
    }
    if (stage == 0) {
      if (exec_fd >= 0) ::fexecve(exec_fd, argv.data(), envp.data());
      else ::execvpe(argv[0], argv.data(), envp.data());
      stage = 3;
    }
    int e[2] = {stage, errno};
    ssize_t ignored = ::write(err_pipe[1], e, sizeof(e));
    (void)ignored;
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent: no race with an early kill(-pid)
  ::close(err_pipe[1]);
  int e[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(err_pipe[0], e, sizeof(e));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(e))) {
    int status;
    ::waitpid(pid, &status, 0);
    std::string detail = e[0] == 1   ? fmt::format("cannot enter working directory '{}'", working_dir)
                         : e[0] == 2 ? fmt::format("cannot open output file '{}'", out_path)
                                     : fmt::format("cannot execute '{}'", args[0]);
    return unavailable(fmt::format("local launcher: {}: {}", detail, std::strerror(e[1])));
  }
  spdlog::info("run {}: started `{}` as pid {}", spec.flow_run_id, fmt::join(args, " "), pid);
  return std::unique_ptr<Launch>(std::make_unique<LocalLaunch>(pid));
}

Result<std::unique_ptr<Launch>> LocalLauncher::adopt(const LaunchSpec& spec, const Infrastructure& infra) {
  if (infra.kind != "process")
    return Status(StatusCode::kUnprocessable, "a local agent cannot adopt " + infra.kind + " " + infra.id);
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(infra.id.data(), infra.id.data() + infra.id.size(), pid);
  if (ec != std::errc() || end != infra.id.data() + infra.id.size() || pid <= 1)
    return Status(StatusCode::kUnprocessable, "'" + infra.id + "' is not a process id");
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0 && errno == ESRCH) return not_found(fmt::format("the run's process (pid {}) is gone", pid));
  auto has = environment_has(pid, "CULVERT_FLOW_RUN_ID=" + spec.flow_run_id);
  if (!has) {
    if (pidfd >= 0) ::close(pidfd);
    if (::kill(pid, 0) != 0 && errno == ESRCH) return not_found(fmt::format("the run's process (pid {}) is gone", pid));
    return Status(StatusCode::kUnprocessable,
                  fmt::format("cannot read the environment of pid {} to check that it is the run's process", pid));
  }
  if (!*has) {
    if (pidfd >= 0) ::close(pidfd);
    return not_found(fmt::format("the run's process (pid {}) is gone (that pid now belongs to another process)", pid));
  }
  auto launch = std::make_unique<AdoptedProcess>(pid, pidfd);
  if (launch->poll()) return not_found(fmt::format("the run's process (pid {}) is gone", pid));
  return std::unique_ptr<Launch>(std::move(launch));
}

namespace {

std::string flag_or(const LauncherContext& ctx, const std::string& name, std::string dflt = "") {
  auto it = ctx.flags.find(name);
  return it == ctx.flags.end() ? dflt : it->second;
}

}  // namespace

LauncherType local_launcher_type() {
  return LauncherType{
      .type = "local",
      .description = "runs each flow run as a process on this machine",
      .flags = {{"working-dir", "local: working directory of runs (default: the agent's own)"},
                {"run-output-dir", "local: write each run's stdout/stderr to DIR/<run-id>.log (default: the agent's own)"}},
      .factory = [](const LauncherContext& ctx) -> Result<std::unique_ptr<Launcher>> {
        LocalLauncherOptions o;
        o.working_dir = flag_or(ctx, "working-dir");
        o.output_dir = flag_or(ctx, "run-output-dir");
        if (!o.output_dir.empty()) {
          std::error_code ec;
          std::filesystem::create_directories(o.output_dir, ec);
          if (ec) return invalid_argument("cannot create --run-output-dir '" + o.output_dir + "': " + ec.message());
        }
        // Local runs start this very binary's `execute`, which fetches and verifies the
        // flow binary. One already in the cache `culvert execute` uses is started
        // directly (one process start and two API calls fewer per run), from a
        // descriptor whose bytes were just hashed. Versions are immutable, so the
        // artifact hash of each is asked for once.
        o.command = {ctx.culvert_binary, "execute"};
        // The folder `culvert execute` picks, with the environment it will have (the
        // agent's --env over the agent's own).
        auto env = [&ctx](const std::string& k) -> std::optional<std::string> {
          if (auto it = ctx.agent_env.find(k); it != ctx.agent_env.end()) return it->second;
          return ctx.getenv ? ctx.getenv(k) : std::nullopt;
        };
        auto cache = storage::artifact_cache_dir(env);
        // None writable: no cached start; `culvert execute` reports why for each run.
        // Nor from an image layer (CULVERT_LAYER): there a flow binary must be started
        // by the layer's loader, which `culvert execute` does.
        std::string cache_dir = cache && !env("CULVERT_LAYER") ? *cache : std::string();
        auto flows_api = std::make_shared<client::ApiClient>(
            client::ClientOptions{.api_url = ctx.api_url, .api_token = ctx.api_token});
        auto sha_of = std::make_shared<std::map<std::string, std::string>>();
        // Identities of artifacts this agent hashed itself, kept in its own memory (a
        // stamp on disk could be rewritten): while a file's identity, ctime included, is
        // unchanged, its bytes are those that were hashed, and it is not hashed again.
        auto known = std::make_shared<std::map<std::string, storage::FileIdentity>>();
        o.verified_binary = [cache_dir, flows_api, sha_of, known](const LaunchSpec& spec) -> std::optional<int> {
          if (cache_dir.empty()) return std::nullopt;
          auto it = sha_of->find(spec.flow_id);
          if (it == sha_of->end()) {
            auto flow = flows_api->get_flow(spec.flow_id);
            if (!flow || !flow->is_object()) return std::nullopt;
            auto a = flow->find("artifact");
            if (a == flow->end() || !a->is_object()) return std::nullopt;
            auto s = a->find("sha256");
            if (s == a->end() || !s->is_string() || s->get_ref<const std::string&>().empty()) return std::nullopt;
            // Only a flow binary is started directly; `culvert execute` runs the other
            // kinds (a YAML flow file, a Python flow) with the runner of their kind.
            auto k = a->find("kind");
            if (k != a->end() && !(k->is_string() && k->get_ref<const std::string&>() == "binary")) {
              sha_of->emplace(spec.flow_id, std::string());
              return std::nullopt;
            }
            it = sha_of->emplace(spec.flow_id, s->get<std::string>()).first;
          }
          const std::string& sha = it->second;
          if (sha.empty()) return std::nullopt;  // not a flow binary
          std::optional<storage::FileIdentity> prior;
          if (auto k = known->find(sha); k != known->end()) prior = k->second;
          auto v = storage::open_verified_artifact(sha, cache_dir, prior);
          if (!v) {
            known->erase(sha);
            return std::nullopt;  // not cached (or not intact): `culvert execute` fetches it
          }
          if (v->stable) (*known)[sha] = v->identity;
          return v->fd;
        };
        return std::unique_ptr<Launcher>(std::make_unique<LocalLauncher>(std::move(o)));
      }};
}

}  // namespace culvert::agent
