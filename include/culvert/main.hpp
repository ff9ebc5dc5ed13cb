// The flow binary's command line: culvert::main(flow, argc, argv).
//
//   ./etl run [--param k=v]... [--workers N] [--output table|json] [--flow-run-id ID]
//   ./etl describe
//   ./etl graph --dot
//   ./etl <command> --help
//
// Further subcommands (`register`, `execute`) are added by the orchestration runtime
// through register_subcommand(), so the engine does not depend on it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <culvert/cancel.hpp>
#include <culvert/flow.hpp>

namespace culvert {

// A subcommand: gets the flow and the arguments after the subcommand's name; returns
// the exit status (0 ok, 1 failure, 2 bad usage).
using SubcommandHandler = std::function<int(const Flow& flow, const std::vector<std::string>& args)>;

// Adds a subcommand to every flow binary of this process. Typically called from a
// static initializer of the library that provides it. `help` is its line in the
// command list; `usage` is what `<command> --help` prints (every "{prog}" replaced by
// the program's name; default: a usage line and `help`), and the handler never sees
// --help. Returns false (and changes nothing) when the name is taken. Thread-safe.
bool register_subcommand(std::string name, std::string help, SubcommandHandler handler, std::string usage = "");

// Runs the subcommand named by argv[1]. Unknown subcommands and bad flags print a
// clear error and return 2.
int main(const Flow& flow, int argc, char** argv);

// While alive, SIGINT and SIGTERM cancel `source` instead of killing the process (a
// second signal kills as usual). The signal handler only writes to a pipe; a watcher
// thread calls source.cancel(). One instance at a time per process.
class SignalCancellation {
 public:
  explicit SignalCancellation(CancellationSource& source);
  ~SignalCancellation();
  SignalCancellation(const SignalCancellation&) = delete;
  SignalCancellation& operator=(const SignalCancellation&) = delete;
  // The signal that cancelled the run, or 0.
  int signal_received() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses "--param k=v" style values: splits at the first '='. InvalidArgument when
// there is no '=' or the name is empty.
Status parse_param_assignment(const std::string& text, std::string& name, std::string& value);

}  // namespace culvert
