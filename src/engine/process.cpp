#include <culvert/process.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

extern char** environ;

namespace culvert {

namespace {

class PosixProcess final : public Process {
 public:
  PosixProcess(pid_t pid, int out_fd, int err_fd) : pid_(pid) {
    fds_[0] = out_fd;
    fds_[1] = err_fd;
  }
  ~PosixProcess() override {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
    if (!reaped_) {
      ::kill(-pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }

  int pid() const override { return pid_; }

  bool read_output(int timeout_ms,
                   const std::function<void(bool, std::string_view)>& on_line) override {
    pollfd p[2];
    int n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (fds_[i] >= 0) {
        p[n].fd = fds_[i];
        p[n].events = POLLIN;
        p[n].revents = 0;
        which[n++] = i;
      }
    }
    if (n == 0) return true;
    int r = ::poll(p, n, timeout_ms);
    if (r <= 0) return false;
    for (int k = 0; k < n; ++k) {
      if ((p[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      int i = which[k];
      char buf[8192];
      ssize_t got = ::read(fds_[i], buf, sizeof buf);
      if (got > 0) {
        buf_[i].append(buf, static_cast<size_t>(got));
        size_t start = 0, nl;
        while ((nl = buf_[i].find('\n', start)) != std::string::npos) {
          std::string_view line(buf_[i].data() + start, nl - start);
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          on_line(i == 1, line);
          start = nl + 1;
        }
        buf_[i].erase(0, start);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fds_[i]);
        fds_[i] = -1;
      }
    }
    return fds_[0] < 0 && fds_[1] < 0;
  }

  bool try_wait(int* status) override {
    if (reaped_) {
      *status = status_;
      return true;
    }
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r != pid_) return false;
    reaped_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : (WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255);
    *status = status_;
    return true;
  }

  void signal_group(int sig) override { ::kill(-pid_, sig); }

  void flush(const std::function<void(bool, std::string_view)>& on_line) override {
    for (int i = 0; i < 2; ++i) {
      if (!buf_[i].empty()) on_line(i == 1, buf_[i]);
      buf_[i].clear();
    }
  }

 private:
  pid_t pid_;
  int fds_[2];
  std::string buf_[2];
  bool reaped_ = false;
  int status_ = 0;
};

struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
};
struct SpawnAttr {
  posix_spawnattr_t a;
  SpawnAttr() { posix_spawnattr_init(&a); }
  ~SpawnAttr() { posix_spawnattr_destroy(&a); }
};

}  // namespace

Result<std::unique_ptr<Process>> PosixProcessLauncher::spawn(const ProcessSpec& spec) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return internal_error(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return internal_error(std::string("pipe: ") + std::strerror(errno));
  }
  FileActions fa;
  posix_spawn_file_actions_addopen(&fa.fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa.fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa.fa, err[1], 2);
  if (!spec.working_dir.empty()) posix_spawn_file_actions_addchdir_np(&fa.fa, spec.working_dir.c_str());
  SpawnAttr attr;
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr.a, &none);
  posix_spawnattr_setsigdefault(&attr.a, &defaults);
  posix_spawnattr_setpgroup(&attr.a, 0);
  posix_spawnattr_setflags(&attr.a, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  // Environment: the parent's, overridden by spec.env.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    std::string_view key = kv.substr(0, kv.find('='));
    if (spec.env.count(std::string(key)) == 0) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::string sh = "/bin/sh", dash_c = "-c", cmd = spec.command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, "/bin/sh", &fa.fa, &attr.a, argv, envp.data());
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    std::string what = "could not start '/bin/sh -c " + spec.command + "'";
    if (!spec.working_dir.empty()) what += " in '" + spec.working_dir + "'";
    return unavailable(what + ": " + std::strerror(rc));
  }
  return std::unique_ptr<Process>(std::make_unique<PosixProcess>(pid, out[0], err[0]));
}

ProcessLauncher& default_process_launcher() {
  static PosixProcessLauncher launcher;  // stateless
  return launcher;
}

}  // namespace culvert
