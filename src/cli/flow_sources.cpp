#include "cli/flow_sources.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace culvert::cli {

// One line per flow source, in the order they are asked: X(name) for a
// `FlowSource name_flow_source()` defined in flow_source_<name>.cpp. binary stays last:
// it takes every path.
#define CULVERT_FLOW_SOURCES(X) \
  X(yaml)                       \
  X(python_package)             \
  X(python)                     \
  X(binary)

#define CULVERT_DECLARE_FLOW_SOURCE(name) FlowSource name##_flow_source();
CULVERT_FLOW_SOURCES(CULVERT_DECLARE_FLOW_SOURCE)
#undef CULVERT_DECLARE_FLOW_SOURCE

const std::vector<FlowSource>& flow_sources() {
#define CULVERT_LIST_FLOW_SOURCE(name) name##_flow_source(),
  static const std::vector<FlowSource> sources = {CULVERT_FLOW_SOURCES(CULVERT_LIST_FLOW_SOURCE)};
#undef CULVERT_LIST_FLOW_SOURCE
  return sources;
}

const FlowSource& flow_source_for(const FlowSourceRequest& request) {
  for (const auto& s : flow_sources())
    if (s.recognises(request)) return s;
  return flow_sources().back();
}

Result<CapturedOutput> capture_stdout(const std::vector<std::string>& argv, size_t limit) {
  if (argv.empty()) return invalid_argument("no command to run");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return unavailable(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return unavailable(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);  // dup2 clears close-on-exec on the copy
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "culvert: cannot execute '%s': %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[65536];
  ssize_t n;
  bool too_long = false;
  while ((n = ::read(fds[0], buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (out.size() + static_cast<size_t>(n) > limit) {
      too_long = true;  // stop reading; it is killed below
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (too_long) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CapturedOutput c;
  c.out = std::move(out);
  c.too_long = too_long;
  c.succeeded = !too_long && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return c;
}

}  // namespace culvert::cli
