// The python artifact runners: a Python flow file ("python") runs as
// `python3 /proc/self/fd/N execute`, a package archive ("python-package") as
// `python3 -m culvert._package /proc/self/fd/N execute`, in this very process (exec), so
// that the process and its process group stay the ones the agent launched. The path
// through /proc/self/fd names the verified descriptor, never the cache file a writer
// could change. The interpreter is $CULVERT_PYTHON, else `python3` on PATH (the image's).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/artifact_runners.hpp"

namespace culvert::cli {
namespace {

Result<int> exec_python(const ArtifactToRun& a, bool package) {
  const char* env = std::getenv("CULVERT_PYTHON");
  std::string python = env != nullptr && *env != '\0' ? env : "python3";
  int flags = ::fcntl(a.fd, F_GETFD);
  if (flags < 0 || ::fcntl(a.fd, F_SETFD, flags & ~FD_CLOEXEC) != 0 || ::lseek(a.fd, 0, SEEK_SET) != 0)
    return unavailable("cannot hand the artifact " + a.path + " to " + python + ": " + std::strerror(errno));
  std::string file = "/proc/self/fd/" + std::to_string(a.fd);
  std::vector<std::string> argv = {python};
  if (package) argv.insert(argv.end(), {"-m", "culvert._package"});
  argv.insert(argv.end(), {file, "execute"});
  std::vector<char*> args;
  for (auto& s : argv) args.push_back(s.data());
  args.push_back(nullptr);
  std::cout.flush();
  ::execvp(args[0], args.data());
  return unavailable("cannot execute " + python + " for the Python flow " + a.uri + ": " + std::strerror(errno) +
                     " (the image needs python3 and the culvert package)");
}

}  // namespace

ArtifactRunner python_artifact_runner() {
  return ArtifactRunner{.kind = "python", .run = [](const ArtifactToRun& a) { return exec_python(a, false); }};
}

ArtifactRunner python_package_artifact_runner() {
  return ArtifactRunner{.kind = "python-package", .run = [](const ArtifactToRun& a) { return exec_python(a, true); }};
}

}  // namespace culvert::cli
