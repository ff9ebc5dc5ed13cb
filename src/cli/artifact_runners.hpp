// The artifact runners of `culvert execute`: one table of the kinds of artifact it runs
// (the flow version's "artifact.kind"), each saying how to run the fetched, verified
// artifact as the flow run the agent launched (CULVERT_FLOW_RUN_ID and the rest of the
// run's environment, docs/AGENTS.md).
//
// A runner is described by a function `ArtifactRunner <name>_artifact_runner()` in its
// own file (artifact_runner_<name>.cpp); adding one is that file plus its line in
// CULVERT_ARTIFACT_RUNNERS (artifact_runners.cpp).
//
// Thread safety: the table is immutable after first use.
#pragma once

#include <culvert/status.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace culvert::cli {

// The artifact to run: the cached copy, verified against the registered hash.
struct ArtifactToRun {
  std::string path;  // the cached file (its name only: read or exec `fd`)
  // A descriptor of exactly the bytes that were hashed (its offset anywhere). Runners
  // read or fexecve this one, never `path`, which a writer of the cache could change.
  // `culvert execute` closes it when the runner returns.
  int fd = -1;
  std::string uri;  // where it was fetched from (for messages)
};

struct ArtifactRunner {
  std::string kind;  // an artifact kind, e.g. "binary"
  // Runs the flow run and returns the process's exit status (0 Success, 1 otherwise,
  // 2 bad usage), reporting states as a flow binary's `execute` does. An error is an
  // artifact that could not be started: `culvert execute` reports the run Crashed with it.
  std::function<Result<int>(const ArtifactToRun&)> run;
};

// Every runner, in registry order.
const std::vector<ArtifactRunner>& artifact_runners();
// The runner of `kind`, or nullptr.
const ArtifactRunner* find_artifact_runner(std::string_view kind);

}  // namespace culvert::cli
