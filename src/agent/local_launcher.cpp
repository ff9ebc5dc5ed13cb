#include "agent/local_launcher.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

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

 private:
  pid_t pid_;
  std::optional<ExitInfo> exit_;
};

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
  if (spec.command.empty()) return invalid_argument("local launcher: empty command");
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
  if (rc.contains("type") && rc["type"].is_string() && rc["type"] != "local")
    return invalid_argument("the run config is of type '" + rc["type"].get<std::string>() +
                            "', which a local agent does not launch (give agents of different types "
                            "different labels)");
  if (rc.contains("working_dir") && rc["working_dir"].is_string())
    working_dir = rc["working_dir"].get<std::string>();
  if (rc.contains("env") && rc["env"].is_object()) {
    for (auto& [k, v] : rc["env"].items())
      env[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  for (const auto& [k, v] : spec.env) env[k] = v;

  // Everything the child needs is prepared before fork: only async-signal-safe calls
  // happen between fork and exec.
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.command;
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
      ::execvpe(argv[0], argv.data(), envp.data());
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
                                     : fmt::format("cannot execute '{}'", spec.command[0]);
    return unavailable(fmt::format("local launcher: {}: {}", detail, std::strerror(e[1])));
  }
  return std::unique_ptr<Launch>(std::make_unique<LocalLaunch>(pid));
}

}  // namespace culvert::agent
