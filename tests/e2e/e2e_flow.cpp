// The flow the end-to-end tests register and run through a real server and agent.
//   sleep_ms   how long the "work" task sleeps (checking for cancellation)
//   marker     a file to which each execution appends its flow run id (counts
//              executions from the flow's own side)
//   fail       when true, "work" fails
//   once_marker  when set, "work" sleeps only if this file does not exist yet (it
//              creates it): a rescheduled attempt of the run finishes at once
//   log_lines  how many log lines of about 500 bytes "work" writes ("log line N ...")
//   flaky_marker when set, "work"'s first attempt fails with "503 from sensor API" if
//              this file does not exist yet (it creates it); "work" retries once
//              after 200 ms on a 503 (and on nothing else)
//   alloc_mb     how many MiB "work" allocates and touches before it sleeps (to be
//              killed by a container's memory limit)
//   fail_marker  when set, "work" fails with "failing once on purpose" if this file does
//              not exist yet (it creates it): the run fails, and a retry of it succeeds
// E2E_CRON_ZONE gives the flow a daily cron schedule in that zone.
// E2E_RUN_RETRIES at registration sets the flow's max_run_retries; E2E_NO_STORAGE leaves
// out flow.storage().
#include <culvert/culvert.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  culvert::Flow flow("e2e");
  auto sleep_ms = flow.parameter<int>("sleep_ms", 0);
  auto marker = flow.parameter<std::string>("marker", "");
  auto fail = flow.parameter<bool>("fail", false);
  auto once_marker = flow.parameter<std::string>("once_marker", "");
  auto flaky_marker = flow.parameter<std::string>("flaky_marker", "");
  auto fail_marker = flow.parameter<std::string>("fail_marker", "");
  auto log_lines = flow.parameter<int>("log_lines", 0);
  auto alloc_mb = flow.parameter<int>("alloc_mb", 0);
  auto started = flow.task(
      "start",
      [](culvert::TaskContext& ctx, const std::string& marker_file) {
        ctx.info("hello from the e2e flow, run " + ctx.flow_run_id() + " pid " + std::to_string(::getpid()));
        if (!marker_file.empty()) {
          std::string line = ctx.flow_run_id() + "\n";
          int fd = ::open(marker_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
          if (fd < 0) throw std::runtime_error("cannot open marker file " + marker_file);
          ssize_t n = ::write(fd, line.data(), line.size());
          ::close(fd);
          if (n != static_cast<ssize_t>(line.size())) throw std::runtime_error("short write to marker file");
        }
        return 1;
      },
      marker);
  flow.task(
      "work",
      [](culvert::TaskContext& ctx, int, int ms, bool should_fail, const std::string& once,
         const std::string& flaky, int lines, const std::string& fail_first, int mb) {
        std::vector<std::unique_ptr<char[]>> held;
        for (int i = 0; i < mb; ++i) {
          held.push_back(std::make_unique<char[]>(1 << 20));
          std::memset(held.back().get(), 1, 1 << 20);  // touched, so it counts
        }
        if (mb > 0) ctx.info("allocated " + std::to_string(mb) + " MiB");
        for (int i = 0; i < lines; ++i) ctx.info("log line " + std::to_string(i) + " " + std::string(490, '.'));
        if (!fail_first.empty()) {
          int fd = ::open(fail_first.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
          if (fd >= 0) {
            ::close(fd);
            throw std::runtime_error("failing once on purpose");
          }
        }
        if (!flaky.empty()) {
          int fd = ::open(flaky.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
          if (fd >= 0) {
            ::close(fd);
            throw std::runtime_error("503 from sensor API");
          }
        }
        if (!once.empty()) {
          int fd = ::open(once.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
          if (fd < 0) ms = 0;  // an earlier attempt slept already
          else ::close(fd);
        }
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (std::chrono::steady_clock::now() < until) {
          if (ctx.cancelled()) throw std::runtime_error("cancelled");
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (should_fail) throw std::runtime_error("failing on purpose");
        ctx.info("work done after " + std::to_string(ms) + " ms");
        return ms;
      },
      started, sleep_ms, fail, once_marker, flaky_marker, log_lines, fail_marker, alloc_mb)
      .retries(1, std::chrono::milliseconds(200))
      .retry_on([](const culvert::TaskFailure& f) { return f.message.starts_with("503"); });
  // With E2E_RESULT_URI set (at registration and in the run's environment), a task
  // persists a value that only the user's storage may hold.
  if (const char* uri = std::getenv("E2E_RESULT_URI")) {
    flow.task("payload",
              [](culvert::TaskContext& ctx, int) { return std::string("private-payload-") + ctx.flow_run_id(); },
              started)
        .result(uri);
  }
  // With E2E_INTERVAL_SECONDS set at registration, the flow is scheduled every N seconds
  // (its runs append to E2E_SCHEDULE_MARKER).
  if (const char* every = std::getenv("E2E_INTERVAL_SECONDS")) {
    culvert::Interval interval{std::chrono::seconds(std::atoi(every))};
    if (const char* m = std::getenv("E2E_SCHEDULE_MARKER")) interval.parameters["marker"] = m;
    flow.schedule(interval);
  }
  // With E2E_CRON_ZONE set (at registration and in the run's environment), the flow has
  // a daily cron schedule in that zone.
  if (const char* zone = std::getenv("E2E_CRON_ZONE")) flow.schedule(culvert::Cron("0 6 * * *", zone));
  if (const char* retries = std::getenv("E2E_RUN_RETRIES")) flow.max_run_retries(std::atoi(retries));
  // E2E_NO_STORAGE: the flow names no storage, as most flows written outside the
  // repository do; registering it then needs --storage.
  if (std::getenv("E2E_NO_STORAGE") == nullptr) flow.storage("file:///tmp/culvert-e2e-unused");
  return culvert::main(flow, argc, argv);
}
