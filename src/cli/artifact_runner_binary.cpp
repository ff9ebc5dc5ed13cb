// The binary artifact runner: a flow binary, executed as `<artifact> execute` in this
// very process (fexecve of the verified descriptor, or the image layer's loader on it:
// image::exec_verified), so that the process and its process group stay the ones the
// agent launched.
#include <cstdlib>
#include <iostream>

#include "cli/artifact_runners.hpp"
#include "image/exec.hpp"

namespace culvert::cli {

ArtifactRunner binary_artifact_runner() {
  return ArtifactRunner{.kind = "binary", .run = [](const ArtifactToRun& a) -> Result<int> {
                          std::cout.flush();
                          std::optional<std::string> layer;
                          if (const char* l = std::getenv("CULVERT_LAYER")) layer = l;
                          Status st = image::exec_verified(a.fd, a.path, {"execute"}, layer);
                          return st;  // only on failure
                        }};
}

}  // namespace culvert::cli
