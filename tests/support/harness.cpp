#include "harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace culvert::e2e {

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string build_path(const std::string& rel) { return std::string(CULVERT_BINARY_DIR) + "/" + rel; }
std::string culvert_binary() { return build_path("culvert"); }

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env, fs::path output)
    : output_(std::move(output)) {
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    int fd = ::open(output_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "cannot execute %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);
}

Process::~Process() {
  if (running()) {
    ::kill(-pid_, SIGKILL);
    wait(std::chrono::seconds(10));
  }
}

bool Process::running() {
  if (status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return r == 0;
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (!wait_until([&] { return !running(); }, timeout)) return std::nullopt;
  return status_;
}

void Process::signal(int sig) { ::kill(pid_, sig); }

Sandbox::Sandbox() {
  std::random_device rd;
  dir_ = fs::temp_directory_path() / ("culvert-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(dir_ / "home");
}

Sandbox::~Sandbox() {
  std::error_code ec;
  if (!std::getenv("CULVERT_E2E_KEEP")) fs::remove_all(dir_, ec);
}

std::map<std::string, std::string> Sandbox::env(const std::map<std::string, std::string>& extra) const {
  std::map<std::string, std::string> e;
  const char* path = std::getenv("PATH");
  e["PATH"] = path ? path : "/usr/local/bin:/usr/bin:/bin";
  e["HOME"] = home().string();
  e["TMPDIR"] = (dir_).string();
  for (const auto& [k, v] : extra) e[k] = v;
  return e;
}

CommandResult Sandbox::run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra_env,
                           std::chrono::milliseconds timeout) {
  int n = ++counter_;
  fs::path out = dir_ / ("cmd-" + std::to_string(n) + ".out");
  fs::path err = dir_ / ("cmd-" + std::to_string(n) + ".err");
  auto env = this->env(extra_env);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  std::vector<char*> args;
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, 1);
    ::dup2(e, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "cannot execute %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  CommandResult r;
  int status = 0;
  bool done = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    r.exit_code = -1;
  } else {
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

CommandResult Sandbox::culvert(const std::vector<std::string>& args, const std::map<std::string, std::string>& extra_env,
                               std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {culvert_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, extra_env, timeout);
}

TestServer::TestServer(Sandbox& sandbox, std::vector<std::string> extra_args, std::string db_url,
                       std::string listen)
    : sandbox_(sandbox) {
  fs::path port_file = sandbox.dir() / "server.port";
  fs::remove(port_file);
  if (db_url.empty()) db_url = "sqlite://" + (sandbox.dir() / "culvert.db").string();
  std::vector<std::string> argv = {culvert_binary(), "server", "start", "--db", db_url,
                                   "--listen", listen, "--port-file", port_file.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<Process>(argv, sandbox.env(), sandbox.dir() / "server.log");
  bool up = wait_until([&] { return fs::exists(port_file) && !read_file(port_file).empty(); },
                       std::chrono::seconds(30));
  if (!up) return;
  std::string port = read_file(port_file);
  while (!port.empty() && (port.back() == '\n' || port.back() == ' ')) port.pop_back();
  url_ = "http://127.0.0.1:" + port;
  // The admin token of a fresh database is saved in the sandbox HOME's profile.
  std::string profile = read_file(sandbox.home() / ".culvert" / "config.toml");
  auto pos = profile.find("api_token");
  if (pos != std::string::npos) {
    auto q1 = profile.find_first_of("\"'", pos);
    auto q2 = q1 == std::string::npos ? q1 : profile.find(profile[q1], q1 + 1);
    if (q1 != std::string::npos && q2 != std::string::npos) token_ = profile.substr(q1 + 1, q2 - q1 - 1);
  }
}

TestServer::~TestServer() { stop(); }

void TestServer::stop() {
  if (process_ && process_->running()) {
    process_->signal(SIGTERM);
    if (!process_->wait(std::chrono::seconds(20))) process_->signal(SIGKILL);
  }
}

}  // namespace culvert::e2e
