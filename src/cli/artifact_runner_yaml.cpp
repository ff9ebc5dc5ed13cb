// The yaml artifact runner: a YAML flow file, parsed from the verified bytes and run
// in this process on the engine and the runtime, exactly as a flow binary's `execute`
// runs its flow (states, logs, retries, timeouts, heartbeats, cancellation).
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "cli/artifact_runners.hpp"
#include "runtime/runtime.hpp"
#include "yamlflow/yaml_flow.hpp"

namespace culvert::cli {

ArtifactRunner yaml_artifact_runner() {
  return ArtifactRunner{.kind = "yaml", .run = [](const ArtifactToRun& a) -> Result<int> {
                          std::string text;
                          char buf[65536];
                          for (;;) {
                            ssize_t n = ::pread(a.fd, buf, sizeof(buf), static_cast<off_t>(text.size()));
                            if (n < 0 && errno == EINTR) continue;
                            if (n < 0) return unavailable("cannot read the artifact " + a.path + ": " + std::strerror(errno));
                            if (n == 0) break;
                            text.append(buf, static_cast<size_t>(n));
                            if (text.size() > yamlflow::kMaxFileBytes) break;  // parse_yaml_flow refuses it
                          }
                          auto flow = yamlflow::parse_yaml_flow(text, a.uri);
                          if (!flow) return flow.status();
                          auto env = runtime::execute_env_from_process();
                          if (!env) return env.status();
                          return runtime::execute_flow(*flow, *env);
                        }};
}

}  // namespace culvert::cli
