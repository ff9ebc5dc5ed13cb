// The python flow sources: a Python flow file written with the `culvert` package
// (docs/PYTHON.md). Its description is what `python3 FILE describe` prints; the
// artifact is the file itself ("python"), or with `--package DIR` a reproducible
// archive of DIR that holds the file ("python-package", made by culvert._package).
// The interpreter is $CULVERT_PYTHON, else `python3` on PATH.

#include <cstdlib>
#include <string>
#include <vector>

#include "cli/flow_sources.hpp"
#include "runtime/answers.hpp"

namespace culvert::cli {
namespace {

std::string python_interpreter() {
  const char* p = std::getenv("CULVERT_PYTHON");
  return p != nullptr && *p != '\0' ? p : "python3";
}

bool is_python_path(const std::string& path) { return path.size() > 3 && path.compare(path.size() - 3, 3, ".py") == 0; }

// Runs `argv` and returns its stdout (at most `limit` bytes); InvalidArgument with
// `what` when it fails.
Result<std::string> capture(const std::vector<std::string>& argv, size_t limit, const std::string& what) {
  auto run = capture_stdout(argv, limit);
  if (!run) return run.status();
  if (run->too_long) return invalid_argument(what + " printed more than " + std::to_string(limit) + " bytes");
  if (!run->succeeded) return invalid_argument(what + " failed (its error is above)");
  return std::move(run->out);
}

Result<std::string> describe_python(const std::string& path) {
  return capture({python_interpreter(), path, "describe"}, runtime::kMaxDescriptionBytes,
                 "'" + python_interpreter() + " " + path + " describe'");
}

}  // namespace

FlowSource python_package_flow_source() {
  return FlowSource{
      .kind = "python-package",
      .description = "a Python flow file (*.py) with --package DIR: DIR archived with it",
      .flags = {{"package", "python: archive this folder (which holds the flow file) as the artifact"}},
      .recognises = [](const FlowSourceRequest& r) { return is_python_path(r.path) && r.flags.count("package") != 0; },
      .prepare = [](const FlowSourceRequest& r) -> Result<PreparedFlow> {
        auto desc = describe_python(r.path);
        if (!desc) return desc.status();
        auto archive = capture({python_interpreter(), "-c",
                                "import sys; from culvert import _package; print(_package.build_archive(sys.argv[1], sys.argv[2]))",
                                r.flags.at("package"), r.path},
                               4096, "archiving --package " + r.flags.at("package"));
        if (!archive) return archive.status();
        std::string path = *archive;
        while (!path.empty() && (path.back() == '\n' || path.back() == '\r')) path.pop_back();
        return PreparedFlow{.description_json = std::move(*desc), .artifact_path = path, .temporary_files = {path}};
      }};
}

FlowSource python_flow_source() {
  return FlowSource{
      .kind = "python",
      .description = "a Python flow file written with the culvert package (*.py)",
      .flags = {},
      .recognises = [](const FlowSourceRequest& r) { return is_python_path(r.path); },
      .prepare = [](const FlowSourceRequest& r) -> Result<PreparedFlow> {
        auto desc = describe_python(r.path);
        if (!desc) return desc.status();
        return PreparedFlow{.description_json = std::move(*desc), .artifact_path = r.path, .temporary_files = {}};
      }};
}

}  // namespace culvert::cli
