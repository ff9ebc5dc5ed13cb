// The flow sources of `culvert flow register PATH`: one table of the kinds of flow the
// command registers, each saying how to recognise PATH, how to get the flow's
// description (docs/FORMATS.md) and which file is uploaded as the artifact. The command
// registers the description with the source's kind as its "artifact_kind", which tells
// `culvert execute` how to run the artifact (artifact_runners.hpp).
//
// A flow source is described by a function `FlowSource <name>_flow_source()` in its own
// file (flow_source_<name>.cpp); adding one is that file plus its line in
// CULVERT_FLOW_SOURCES (flow_sources.cpp). Sources are asked in table order; the binary
// source, last, takes whatever the others do not recognise.
//
// Thread safety: the table is immutable after first use.
#pragma once

#include <culvert/status.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace culvert::cli {

// A flag of one flow source on `culvert flow register` (`--name VALUE`).
struct FlowSourceFlag {
  std::string name;  // without the leading "--"
  std::string help;
};

struct FlowSourceRequest {
  std::string path;                          // the PATH argument
  std::map<std::string, std::string> flags;  // the source's flags given, by name
};

// What a source hands to the registration.
struct PreparedFlow {
  // The flow description (docs/FORMATS.md); its "artifact_kind" becomes the source's.
  std::string description_json;
  std::string artifact_path;  // the file uploaded, content-addressed, as the artifact
  // Files the source made for the upload (an archive), removed after registering.
  std::vector<std::string> temporary_files;
};

struct FlowSource {
  std::string kind;         // its artifact_kind, e.g. "yaml"
  std::string description;  // one line for --help: what PATH is
  std::vector<FlowSourceFlag> flags;
  // True when PATH (with these flags given) is this source's.
  std::function<bool(const FlowSourceRequest&)> recognises;
  // The description and the artifact; InvalidArgument naming what is wrong with PATH
  // (for a file: its name, line and field) is a usage error of the command.
  std::function<Result<PreparedFlow>(const FlowSourceRequest&)> prepare;
};

// Every flow source, in the order they are asked.
const std::vector<FlowSource>& flow_sources();
// The first source that recognises `request` (the binary source when no other does).
const FlowSource& flow_source_for(const FlowSourceRequest& request);

// What a command printed on stdout (at most a bound) and how it ended.
struct CapturedOutput {
  std::string out;
  bool succeeded = false;  // exited 0
  bool too_long = false;   // printed more than the bound (and was killed)
};
// Runs `argv` (argv[0] looked up on PATH unless it holds a '/'), its stderr going to
// ours, and reads its stdout up to `limit` bytes. An error only when it could not be run
// at all (pipe, fork); a program that is missing exits 127 (not succeeded).
Result<CapturedOutput> capture_stdout(const std::vector<std::string>& argv, size_t limit);

}  // namespace culvert::cli
