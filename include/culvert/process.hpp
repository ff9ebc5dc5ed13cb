// Starting and watching the child processes of command tasks, behind a small
// interface: RunOptions::process_launcher takes another one (a fake in a flow's own
// tests, say); the default is PosixProcessLauncher.
#pragma once

#include <culvert/status.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace culvert {

struct ProcessSpec {
  std::string command;                     // run as /bin/sh -c command
  std::map<std::string, std::string> env;  // added to (overriding) the parent's environment
  std::string working_dir;                 // empty: the parent's
};

// One running child, the leader of its own process group. Used by one thread.
class Process {
 public:
  virtual ~Process() = default;
  virtual int pid() const = 0;
  // Waits up to `timeout_ms` for output and delivers complete lines (without the
  // newline) to `on_line(is_stderr, line)`. Returns true once both streams are closed.
  virtual bool read_output(int timeout_ms,
                           const std::function<void(bool is_stderr, std::string_view line)>& on_line) = 0;
  // Non-blocking: true once the child exited; then *status holds the exit code, or
  // 128+signal when it was killed by a signal.
  virtual bool try_wait(int* status) = 0;
  // Sends `sig` to the whole process group.
  virtual void signal_group(int sig) = 0;
  // Delivers a last unterminated line, if any.
  virtual void flush(const std::function<void(bool is_stderr, std::string_view line)>& on_line) = 0;
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  virtual Result<std::unique_ptr<Process>> spawn(const ProcessSpec& spec) = 0;
};

// posix_spawn of /bin/sh -c in a new process group, stdin from /dev/null, stdout and
// stderr through pipes. Thread-safe.
class PosixProcessLauncher final : public ProcessLauncher {
 public:
  Result<std::unique_ptr<Process>> spawn(const ProcessSpec& spec) override;
};

ProcessLauncher& default_process_launcher();

}  // namespace culvert
