#include "cli/follow.hpp"

#include <algorithm>
#include <ostream>

#include <culvert/clock.hpp>

namespace culvert::cli {

void print_log_line(std::ostream& out, const client::LogLine& l) {
  std::string task = l.task.value_or("");
  out << l.timestamp << " " << l.level << " " << (task.empty() ? "" : "[" + task + "] ") << l.message << "\n";
}

void LogPrinter::print(const client::LogLine& line) {
  if (line.run_attempt != attempt_) out_ << "--- attempt " << line.run_attempt << " ---\n";
  attempt_ = line.run_attempt;
  print_log_line(out_, line);
}

std::string next_log_cursor(const client::LogPage& page, const std::string& current) {
  if (page.next_cursor && !page.next_cursor->empty()) return *page.next_cursor;
  if (!page.logs.empty()) return std::to_string(page.logs.back().id);
  return current;
}

Result<Decoded<client::FlowRun>> follow_run(ApiClient& api, CliContext& ctx, const std::string& run_id,
                                            std::ostream& events, bool print_states, int run_attempt) {
  std::string cursor = "0";
  LogPrinter logs(events);
  std::optional<State> last_state;
  int64_t printed_version = 0;
  int64_t history_cursor = 0;  // the id of the last state change read
  auto print_state = [&](State state, const std::string& msg) {
    events << "state: " << state_name(state) << (msg.empty() ? "" : " (" + msg + ")") << "\n";
    last_state = state;
  };
  while (true) {
    auto run = decoded(api.get_flow_run(run_id), client::decode_flow_run);
    if (!run) return run.status();
    const client::FlowRun& r = run->value;
    if (print_states && (r.state != last_state || r.version > printed_version)) {
      // A run can pass through several states between two polls (Running is often
      // brief): the history names every one, in order.
      // A refused history (say, NotFound) falls back to the run's own state; a
      // malformed one is an error like any malformed answer.
      // The history comes in pages; read on from the last change printed.
      bool printed = false;
      for (int pages = 0; pages < 1000; ++pages) {
        auto history = decoded(api.get_flow_run_history(run_id, std::to_string(history_cursor)),
                               client::decode_history_page);
        if (!history && history.status().code() == StatusCode::kInternal) return history.status();
        if (!history) break;
        for (const auto& e : history->value.history) {
          history_cursor = std::max(history_cursor, e.id);
          if (e.version <= printed_version) continue;
          print_state(e.state, e.message);
          printed_version = e.version;
          printed = true;
        }
        if (history->value.next_cursor.empty()) break;
      }
      if (!printed && r.state != last_state) print_state(r.state, r.state_message);
      printed_version = std::max(printed_version, r.version);
    }
    bool final_state = is_final(r.state);
    auto page = decoded(api.get_logs(run_id, cursor, final_state ? Millis(0) : Millis(1000), run_attempt),
                        client::decode_log_page);
    if (!page) return page.status();
    for (const auto& l : page->value.logs) logs.print(l);
    cursor = next_log_cursor(page->value, cursor);
    if (final_state && page->value.logs.empty()) return std::move(*run);
    if (page->value.logs.empty() && !final_state) ctx.clock->sleep_for(Millis(500));
  }
}

}  // namespace culvert::cli
