// Following a flow run: its state changes (from the run's history, so a state shorter
// than one poll is printed too) and its log lines, until the run reaches a final state.
// Shared by `culvert run --watch` and `culvert get logs --follow`. Polls are paced by
// the context's Clock; the logs are long polls of the server.
#pragma once

#include <iosfwd>
#include <string>

#include "cli/command.hpp"

namespace culvert::cli {

// `TIMESTAMP LEVEL [task] message`.
void print_log_line(std::ostream& out, const client::LogLine& line);

// Prints a run's log lines in order with print_log_line, and a line `--- attempt N ---`
// where the run attempt that wrote them changes (and before the first line when it is
// not attempt 1), so that the attempts of a retried run stay apart. Not thread-safe.
class LogPrinter {
 public:
  explicit LogPrinter(std::ostream& out) : out_(out) {}
  void print(const client::LogLine& line);

 private:
  std::ostream& out_;
  int64_t attempt_ = 1;  // of the line printed last
};

// The `after` cursor following a page: the page's next_cursor, else its last line's id,
// else `current`.
std::string next_log_cursor(const client::LogPage& page, const std::string& current);

// Prints state changes (when `print_states`) and logs to `events` until the run is
// final; returns the final run (its document as the server sent it, and decoded).
// `run_attempt` above 0: only that attempt's log lines.
Result<Decoded<client::FlowRun>> follow_run(ApiClient& api, CliContext& ctx, const std::string& run_id,
                                            std::ostream& events, bool print_states, int run_attempt = 0);

}  // namespace culvert::cli
