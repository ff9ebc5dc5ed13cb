// The binary artifact runner: a flow binary, executed as `<artifact> execute` in this
// very process (fexecve of the verified descriptor), so that the process and its
// process group stay the ones the agent launched.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/artifact_runners.hpp"

extern char** environ;

namespace culvert::cli {

ArtifactRunner binary_artifact_runner() {
  return ArtifactRunner{.kind = "binary", .run = [](const ArtifactToRun& a) -> Result<int> {
                          std::string p = a.path;
                          char* argv[] = {p.data(), const_cast<char*>("execute"), nullptr};
                          std::cout.flush();
                          ::fexecve(a.fd, argv, environ);
                          return unavailable("cannot execute the artifact " + p + ": " + std::strerror(errno));
                        }};
}

}  // namespace culvert::cli
