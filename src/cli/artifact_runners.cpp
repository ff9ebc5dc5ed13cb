#include "cli/artifact_runners.hpp"

namespace culvert::cli {

// One line per artifact kind `culvert execute` runs: X(name) for an
// `ArtifactRunner name_artifact_runner()` defined in artifact_runner_<name>.cpp.
#define CULVERT_ARTIFACT_RUNNERS(X) \
  X(binary)                         \
  X(yaml)

#define CULVERT_DECLARE_ARTIFACT_RUNNER(name) ArtifactRunner name##_artifact_runner();
CULVERT_ARTIFACT_RUNNERS(CULVERT_DECLARE_ARTIFACT_RUNNER)
#undef CULVERT_DECLARE_ARTIFACT_RUNNER

const std::vector<ArtifactRunner>& artifact_runners() {
#define CULVERT_LIST_ARTIFACT_RUNNER(name) name##_artifact_runner(),
  static const std::vector<ArtifactRunner> runners = {CULVERT_ARTIFACT_RUNNERS(CULVERT_LIST_ARTIFACT_RUNNER)};
#undef CULVERT_LIST_ARTIFACT_RUNNER
  return runners;
}

const ArtifactRunner* find_artifact_runner(std::string_view kind) {
  for (const auto& r : artifact_runners())
    if (r.kind == kind) return &r;
  return nullptr;
}

}  // namespace culvert::cli
