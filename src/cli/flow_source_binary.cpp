// The binary flow source: a flow binary built with the C++ SDK. It describes itself
// (`PATH describe`) and is its own artifact.

#include <string>

#include "cli/flow_sources.hpp"
#include "runtime/answers.hpp"

namespace culvert::cli {
namespace {

// Runs `path describe` and returns what it printed.
Result<std::string> describe_binary(const std::string& path) {
  // A bare name is a file here, never one on PATH.
  const std::string exe = path.find('/') == std::string::npos ? "./" + path : path;
  auto run = capture_stdout({exe, "describe"}, runtime::kMaxDescriptionBytes);
  if (!run) return run.status();
  if (run->too_long)
    return invalid_argument("'" + path + " describe' printed more than " +
                            std::to_string(runtime::kMaxDescriptionBytes) +
                            " bytes; a flow description is at most that long");
  if (!run->succeeded)
    return invalid_argument("'" + path + " describe' failed: is it a flow binary built with the Culvert SDK?");
  return std::move(run->out);
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
