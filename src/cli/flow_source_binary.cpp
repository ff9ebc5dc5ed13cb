// The binary flow source: a flow binary built with the C++ SDK. It describes itself
// (`PATH describe`) and is its own artifact.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/flow_sources.hpp"
#include "runtime/answers.hpp"

namespace culvert::cli {
namespace {

// Runs `path describe` and returns what it printed.
Result<std::string> describe_binary(const std::string& path) {
  int fds[2];
  if (::pipe(fds) != 0) return unavailable(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) return unavailable(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    execl(path.c_str(), path.c_str(), "describe", static_cast<char*>(nullptr));
    std::fprintf(stderr, "culvert: cannot execute '%s': %s\n", path.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[65536];
  ssize_t n;
  bool too_long = false;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) {
    if (out.size() + static_cast<size_t>(n) > runtime::kMaxDescriptionBytes) {
      too_long = true;  // stop reading; the binary gets SIGPIPE or is killed below
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (too_long) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (too_long) {
    return invalid_argument("'" + path + " describe' printed more than " +
                            std::to_string(runtime::kMaxDescriptionBytes) +
                            " bytes; a flow description is at most that long");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return invalid_argument("'" + path + " describe' failed: is it a flow binary built with the Culvert SDK?");
  return out;
}

}  // namespace

FlowSource binary_flow_source() {
  return FlowSource{
      .kind = "binary",
      .description = "a flow binary built with the C++ SDK (any other path)",
      .flags = {},
      .recognises = [](const FlowSourceRequest&) { return true; },
      .prepare = [](const FlowSourceRequest& r) -> Result<PreparedFlow> {
        auto desc = describe_binary(r.path);
        if (!desc) return desc.status();
        return PreparedFlow{.description_json = std::move(*desc), .artifact_path = r.path, .temporary_files = {}};
      }};
}

}  // namespace culvert::cli
