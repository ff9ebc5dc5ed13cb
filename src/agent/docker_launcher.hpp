// The Docker launcher: each run is a container created from the run config's image,
// started with the run's environment, watched through the Engine API (exit code,
// OOMKilled, State.Error), stopped on cancel and removed once it has ended and its output
// was collected. A restarted agent adopts a run's container by its id (checking the
// container's io.culvert.flow-run-id label); its exit code is read as for any other.
//
// Run config fields: image (required), env, network_mode, volumes ["src:dst[:ro]"],
// cpu (CPUs, e.g. "1.5" or 1.5), memory ("512m", "2g", or MiB as a number),
// command (default ["culvert", "execute"]: the image must contain the culvert binary).
#pragma once

#include <memory>

#include "agent/launcher.hpp"

namespace culvert::docker {
class DockerClient;
}

namespace culvert::agent {

struct DockerLauncherOptions {
  std::string docker_host = "/var/run/docker.sock";
  // Used when the run config names none. Default: the daemon's (bridge).
  std::string default_network_mode;
};

class DockerLauncher final : public Launcher {
 public:
  explicit DockerLauncher(DockerLauncherOptions options = {});
  ~DockerLauncher() override;
  std::string type() const override { return "docker"; }
  Result<std::unique_ptr<Launch>> launch(const LaunchSpec& spec) override;
  // infra.kind "container", infra.id the container id.
  Result<std::unique_ptr<Launch>> adopt(const LaunchSpec& spec, const Infrastructure& infra) override;

 private:
  DockerLauncherOptions options_;
  std::shared_ptr<docker::DockerClient> client_;  // shared with the launches it makes
};

// "512m" -> 536870912, "2g", "1024k", "100" (MiB). nullopt when malformed.
std::optional<int64_t> parse_memory(const std::string& text);

}  // namespace culvert::agent
