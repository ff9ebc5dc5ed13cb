#include "agent/slurm/slurm_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/core.h>

extern char** environ;

namespace culvert::agent::slurm {
namespace {

constexpr size_t kMaxStderr = 64 * 1024;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void set(int fd) {
    reset();
    fd_ = fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

bool make_pipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end.set(fds[0]);
  write_end.set(fds[1]);
  return true;
}

// argv[0] resolved against `path` (a PATH value): the first executable match.
std::string resolve(const std::string& name, const std::string& path) {
  if (name.find('/') != std::string::npos) return name;
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return "";
}

std::string exit_text(int status) {
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("exited with code {}", WEXITSTATUS(status));
}

}  // namespace

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

Result<CommandOutput> run_command(const std::vector<std::string>& argv, const CommandOptions& options) {
  if (argv.empty()) return invalid_argument("run_command: no command");
  auto path_it = options.env.find("PATH");
  std::string exe = resolve(argv[0], path_it == options.env.end() ? "/usr/bin:/bin" : path_it->second);
  if (exe.empty())
    return unavailable(fmt::format("{} is not on the PATH ({}): is this a Slurm login node?", argv[0],
                                   path_it == options.env.end() ? "unset" : path_it->second));
  Fd in_r, in_w, out_r, out_w, err_r, err_w;
  if (!make_pipe(in_r, in_w) || !make_pipe(out_r, out_w) || !make_pipe(err_r, err_w))
    return unavailable(fmt::format("{}: cannot create pipes: {}", argv[0], std::strerror(errno)));

  std::vector<std::string> env_strings;
  env_strings.reserve(options.env.size());
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, exe.c_str(), &actions, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  if (rc != 0) return unavailable(fmt::format("cannot start {}: {}", exe, std::strerror(rc)));

  ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (options.input.empty()) in_w.reset();
  CommandOutput result;
  bool out_open = true, err_open = true;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  char buf[65536];
  while (out_open || err_open || in_w.get() >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_open) { fds[n] = {out_r.get(), POLLIN, 0}; out_i = n++; }
    if (err_open) { fds[n] = {err_r.get(), POLLIN, 0}; err_i = n++; }
    if (in_w.get() >= 0) { fds[n] = {in_w.get(), POLLOUT, 0}; in_i = n++; }
    int pr = ::poll(fds, n, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    auto drain = [&](int i, int fd, std::string& into, size_t cap, bool& open) {
      if (i < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t r = ::read(fd, buf, sizeof buf);
      if (r > 0) {
        size_t room = into.size() < cap ? cap - into.size() : 0;
        into.append(buf, std::min(room, static_cast<size_t>(r)));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        open = false;
      }
    };
    drain(out_i, out_r.get(), result.out, options.max_output, out_open);
    drain(err_i, err_r.get(), result.err, kMaxStderr, err_open);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in_w.get(), options.input.data() + written, options.input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();
      if (written >= options.input.size()) in_w.reset();
    }
  }
  int status = 0;
  bool ended = false;
  if (out_open || err_open || in_w.get() >= 0) {
    // The deadline passed with the child's pipes still open.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return unavailable(fmt::format("{} did not answer within {} ms (killed)", argv[0], options.timeout.count()));
  }
  while (!ended) {
    pid_t r = ::waitpid(pid, &status, 0);
    if (r == pid) ended = true;
    else if (r < 0 && errno != EINTR) return unavailable(fmt::format("{}: waitpid: {}", argv[0], std::strerror(errno)));
  }
  result.exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.err += "\n(" + exit_text(status) + ")";
  return result;
}

}  // namespace culvert::agent::slurm
