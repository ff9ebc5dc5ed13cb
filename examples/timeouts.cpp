// Timeouts of C++ tasks: "polite" checks its cancellation token and stops at its
// timeout; "stubborn" ignores it, so it is reported TimedOut once the grace has passed
// and the run goes on without it ("cleanup" runs, the process exits).
//   ./timeouts run                        -> polite and stubborn TimedOut, cleanup Success
//   ./timeouts run --param hang_s=0       -> stubborn Success
#include <culvert/culvert.hpp>

#include <chrono>
#include <thread>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  culvert::Flow flow("timeouts");
  auto hang_s = flow.parameter<int>("hang_s", 3600);
  auto polite = flow.task("polite", [](culvert::TaskContext& ctx) {
                        while (!ctx.cancelled()) std::this_thread::sleep_for(10ms);
                        ctx.info("stopping: the timeout has passed");
                        return 1;
                      })
                    .timeout(300ms);
  auto stubborn = flow.task("stubborn", [](culvert::TaskContext& ctx, int seconds) {
                          ctx.info("working for " + std::to_string(seconds) + " s without looking at the token");
                          std::this_thread::sleep_for(std::chrono::seconds(seconds));
                          return seconds;
                        }, hang_s)
                      .timeout(500ms)
                      .grace(300ms);
  flow.task("cleanup", [](culvert::TaskContext& ctx) { ctx.info("cleaning up"); })
      .after(polite, stubborn)
      .trigger(culvert::Trigger::kAllFinished)
      .reference();
  return culvert::main(flow, argc, argv);
}
