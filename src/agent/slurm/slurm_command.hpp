// Running the Slurm client commands (sbatch, squeue, sacct, scontrol, scancel) as child
// processes: argv executed directly (never through a shell), an environment given in
// full, input on stdin, output captured up to a bound, a deadline after which the child
// is killed. The command is looked up in the PATH of the environment it is given, so
// tests put fake commands first on that PATH.
//
// Thread-safe: each call owns its child and its pipes.
#pragma once

#include <culvert/clock.hpp>
#include <culvert/status.hpp>

#include <map>
#include <string>
#include <vector>

namespace culvert::agent::slurm {

struct CommandOutput {
  int exit_code = 0;  // 128+signal when killed by a signal
  std::string out;    // stdout, cut at the bound
  std::string err;    // stderr, cut at the bound
};

struct CommandOptions {
  std::map<std::string, std::string> env;  // the child's whole environment
  std::string input;                       // written to its stdin, then closed
  Millis timeout{60000};                   // then SIGKILL, and an error
  size_t max_output = 64 * 1024 * 1024;    // of stdout; stderr keeps 64 KiB
};

// Runs argv[0] (looked up in env's PATH unless it holds a '/') with argv. An error when
// it cannot be started or does not end within the timeout (it is killed then); a
// command that ran and failed is a CommandOutput with its exit code.
Result<CommandOutput> run_command(const std::vector<std::string>& argv, const CommandOptions& options);

// The environment of this process, as a map.
std::map<std::string, std::string> process_environment();

}  // namespace culvert::agent::slurm
