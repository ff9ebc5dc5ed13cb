// The flow the web UI's end-to-end tests (ui_e2e.mjs) register and run.
//   elements   how many elements the mapped task "each" has (default 3)
//   log_lines  how many log lines "write_logs" writes ("line N of M")
//   sleep_ms   how long "write_logs" then waits, checking for cancellation
//   note       a line "prepare" logs verbatim (the test logs markup with it)
// UI_FLOW_NAME and UI_FLOW_LABELS (comma-separated) at registration name the flow and
// set its run config's labels; UI_FLOW_CRON and UI_FLOW_ZONE give it a cron schedule.
#include <culvert/culvert.hpp>

#include <cstdlib>
#include <sstream>
#include <thread>

int main(int argc, char** argv) {
  const char* name = std::getenv("UI_FLOW_NAME");
  culvert::Flow flow(name ? name : "ui");
  auto elements = flow.parameter<int>("elements", 3);
  auto log_lines = flow.parameter<int>("log_lines", 0);
  auto sleep_ms = flow.parameter<int>("sleep_ms", 0);
  auto note = flow.parameter<std::string>("note", "");
  auto items = flow.task(
      "prepare",
      [](culvert::TaskContext& ctx, int n, const std::string& text) {
        if (!text.empty()) ctx.info(text);
        return std::vector<int>(static_cast<size_t>(n), 1);
      },
      elements, note);
  auto doubled = flow.map("each", [](int v) { return v * 2; }, items);
  flow.task("total", [](culvert::TaskContext& ctx, const std::vector<int>& v) {
    ctx.info("total of " + std::to_string(v.size()) + " elements");
    return static_cast<int>(v.size());
  }, doubled);
  flow.task(
      "write_logs",
      [](culvert::TaskContext& ctx, int lines, int ms) {
        for (int i = 0; i < lines; ++i) ctx.info("line " + std::to_string(i) + " of " + std::to_string(lines));
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (std::chrono::steady_clock::now() < until) {
          if (ctx.cancelled()) throw std::runtime_error("cancelled");
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ctx.info("write_logs done");
        return lines;
      },
      log_lines, sleep_ms);
  culvert::LocalRun rc;
  if (const char* labels = std::getenv("UI_FLOW_LABELS")) {
    std::stringstream ss(labels);
    for (std::string l; std::getline(ss, l, ',');)
      if (!l.empty()) rc.labels.push_back(l);
  }
  flow.run_config(rc);
  if (const char* cron = std::getenv("UI_FLOW_CRON")) {
    const char* zone = std::getenv("UI_FLOW_ZONE");
    flow.schedule(culvert::Cron(cron, zone ? zone : "UTC"));
  }
  return culvert::main(flow, argc, argv);
}
