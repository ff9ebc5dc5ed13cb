// The binary artifact runner: a flow binary, executed as `<artifact> execute` in this
// very process (fexecve of the verified descriptor), so that the process and its
// process group stay the ones the agent launched.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cli/artifact_runners.hpp"

extern char** environ;

namespace culvert::cli {

ArtifactRunner binary_artifact_runner() {
  return ArtifactRunner{
      .kind = "binary", .run = [](const ArtifactToRun& a) -> Result<int> {
        std::string p = a.path;
        std::cout.flush();
        // Started from an image layer: the flow binary is run by the layer's loader with
        // the layer's libraries (the image's own may be another libc, or none). The
        // loader opens the verified descriptor (kept open across the exec), not the path.
        if (const char* layer = std::getenv("CULVERT_LAYER"); layer != nullptr && *layer != '\0') {
          std::string loader = std::string(layer) + "/lib/ld-linux-x86-64.so.2";
          std::string libs = std::string(layer) + "/lib";
          std::string program = "/proc/self/fd/" + std::to_string(a.fd);
          if (::access(loader.c_str(), X_OK) != 0)
            return unavailable("CULVERT_LAYER=" + std::string(layer) + " names no layer (" + loader + ": " +
                               std::strerror(errno) + ")");
          ::fcntl(a.fd, F_SETFD, 0);
          char* argv[] = {loader.data(), const_cast<char*>("--library-path"), libs.data(),
                          const_cast<char*>("--argv0"), p.data(), program.data(), const_cast<char*>("execute"),
                          nullptr};
          ::execve(loader.c_str(), argv, environ);
          return unavailable("cannot execute the artifact " + p + " through " + loader + ": " + std::strerror(errno));
        }
        char* argv[] = {p.data(), const_cast<char*>("execute"), nullptr};
        ::fexecve(a.fd, argv, environ);
        return unavailable("cannot execute the artifact " + p + ": " + std::strerror(errno));
      }};
}

}  // namespace culvert::cli
