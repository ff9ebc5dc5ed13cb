// Retries: a task that fails twice, then succeeds on its third attempt.
//   ./retries run --output json      -> "flaky" Success with "attempts": 3
//   ./retries run --param failures=5 -> "flaky" Failed after 4 attempts
#include <culvert/culvert.hpp>

#include <atomic>
#include <stdexcept>

int main(int argc, char** argv) {
  culvert::Flow flow("retries");
  auto failures = flow.parameter<int>("failures", 2);
  auto delay_ms = flow.parameter<int>("delay_ms", 50);
  static std::atomic<int> attempts{0};  // one run per process
  auto flaky = flow.task("flaky", [](culvert::TaskContext& ctx, int fail_times, int) {
                       int n = ++attempts;
                       if (n <= fail_times) {
                         ctx.warning("attempt " + std::to_string(n) + " fails on purpose");
                         throw std::runtime_error("transient error on attempt " + std::to_string(n));
                       }
                       return n;
                     }, failures, delay_ms)
                     .retries(3, std::chrono::milliseconds(50))
                     .retry_backoff(2.0, std::chrono::seconds(1))
                     .retry_jitter(0.1)
                     .retry_on([](const culvert::TaskFailure& f) {
                       return f.message.find("transient") != std::string::npos;
                     });
  flow.task("report", [](culvert::TaskContext& ctx, int n) { ctx.info("succeeded on attempt " + std::to_string(n)); },
            flaky);
  return culvert::main(flow, argc, argv);
}
