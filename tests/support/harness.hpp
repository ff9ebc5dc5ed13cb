// End-to-end test harness: real processes (the `culvert` binary, flow binaries),
// started with their own environment and a temporary HOME, output captured to files.
//
// Waiting is always for a condition with a deadline (wait_until), never a fixed sleep.
// Not thread-safe; one harness per test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace culvert::e2e {

namespace fs = std::filesystem;

// Polls `cond` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

std::string read_file(const fs::path& p);

// A child process in its own process group. Killed (SIGKILL to the group) on
// destruction unless it already ended.
class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env, fs::path output);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void signal(int sig);  // to the process only
  std::string output() const { return read_file(output_); }

 private:
  pid_t pid_ = -1;
  fs::path output_;
  std::optional<int> status_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// A temporary directory (removed at the end) with a HOME inside, and helpers to run
// `culvert` with that HOME.
class Sandbox {
 public:
  Sandbox();
  ~Sandbox();
  const fs::path& dir() const { return dir_; }
  fs::path home() const { return dir_ / "home"; }
  // The base environment of processes: PATH, HOME=home(), plus extra.
  std::map<std::string, std::string> env(const std::map<std::string, std::string>& extra = {}) const;
  // Runs build/culvert with args to completion (timeout: a failure).
  CommandResult culvert(const std::vector<std::string>& args,
                        const std::map<std::string, std::string>& extra_env = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(120));
  CommandResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra_env = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(120));

 private:
  fs::path dir_;
  int counter_ = 0;
};

// `culvert server start` on 127.0.0.1:0 with SQLite in the sandbox; the admin token is
// read from the profile the server writes at first start.
class TestServer {
 public:
  // `listen`: HOST:PORT (port 0 picks a free one; a fixed one restarts a server where
  // its agents and runs expect it).
  explicit TestServer(Sandbox& sandbox, std::vector<std::string> extra_args = {},
                      std::string db_url = "", std::string listen = "127.0.0.1:0");
  ~TestServer();
  const std::string& url() const { return url_; }
  const std::string& admin_token() const { return token_; }
  Process& process() { return *process_; }
  bool ok() const { return !url_.empty(); }
  void stop();

 private:
  Sandbox& sandbox_;
  std::unique_ptr<Process> process_;
  std::string url_;
  std::string token_;
};

std::string culvert_binary();  // build/culvert
std::string build_path(const std::string& rel);

}  // namespace culvert::e2e
