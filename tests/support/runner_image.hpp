// The image the end-to-end tests run flows in: FROM scratch with `culvert`, the shared
// libraries it and the given flow binaries load (found with ldd, loader included), an
// empty /tmp, and PATH set. Used by the Docker agent's and the ECS fixture's tests.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "agent/docker/docker_client.hpp"
#include "harness.hpp"

namespace culvert::e2e {

// The shared libraries a dynamic binary loads (ldd), as absolute paths.
std::set<std::string> shared_libraries(Sandbox& sb, const std::string& binary);

// Builds the image `tag` on `docker` for `culvert_binary()` and `flow_binaries`.
Status build_runner_image(Sandbox& sb, docker::DockerClient& docker, const std::string& tag,
                          const std::vector<std::string>& flow_binaries);

}  // namespace culvert::e2e
