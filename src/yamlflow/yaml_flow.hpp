// YAML flow files: a flow of command tasks written as YAML (docs/FORMATS.md "YAML flow
// files"), turned into a culvert::Flow that the engine runs like any other. Every error
// names the file, the line and the field ("nightly.yaml:7: tasks.extract.retries: ...");
// unknown keys are refused, so a misspelt field never goes unnoticed. Inputs are
// bounded: the file's size, the number of tasks and parameters, the length of strings.
//
// Parameters reach commands without ever becoming shell syntax: a `{{ name }}`
// placeholder in a command is replaced by a reference to the environment variable
// CULVERT_PARAM_<name> (`"${CULVERT_PARAM_name}"`, quoted), which the engine sets for
// every command task from the run's parameter values. The shell expands a variable
// into one word and never parses its value, so no value can add commands, quotes or
// redirections. A placeholder inside single quotes (where the shell would not expand
// it) is an error.
//
// Stateless; thread-safe.
#pragma once

#include <culvert/flow.hpp>
#include <culvert/status.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace culvert::yamlflow {

inline constexpr size_t kMaxFileBytes = 1 << 20;    // a YAML flow file is at most 1 MiB
inline constexpr size_t kMaxTasks = 10000;
inline constexpr size_t kMaxParameters = 1000;
inline constexpr size_t kMaxStringBytes = 65536;   // a command, an env value, ...
inline constexpr size_t kMaxListItems = 1000;      // after, tags, labels, env entries, ...

// Parses `text`, the content of the file named `file` (used in messages only). The
// flow's tasks, parameters, run config, storage and schedule are those of the file.
// InvalidArgument "FILE:LINE: FIELD: what is wrong" otherwise.
Result<Flow> parse_yaml_flow(std::string_view text, const std::string& file);

// Reads the file at `path` (at most kMaxFileBytes) and parses it. InvalidArgument when
// it cannot be read or is too long, naming the path.
Result<Flow> load_yaml_flow(const std::string& path);

// True for paths a YAML flow file has: ending in ".yaml" or ".yml".
bool is_yaml_flow_path(std::string_view path);

}  // namespace culvert::yamlflow
