// Triggers and reference tasks: a cleanup runs whatever happens, a notifier runs only
// on failure; the reference task decides the flow's final state.
//   ./triggers run                      -> Success ("notify" Skipped)
//   ./triggers run --param fail=true    -> Failed ("work" is the reference task)
#include <culvert/culvert.hpp>

#include <stdexcept>

int main(int argc, char** argv) {
  culvert::Flow flow("triggers");
  auto fail = flow.parameter<bool>("fail", false);
  auto work = flow.task("work", [](bool f) {
                    if (f) throw std::runtime_error("work failed");
                    return 1;
                  }, fail)
                  .reference();
  auto downstream = flow.task("downstream", [](int v) { return v + 1; }, work);
  flow.task("cleanup", [](culvert::TaskContext& ctx) { ctx.info("cleaning up"); })
      .after(work, downstream)
      .trigger(culvert::Trigger::kAllFinished);
  flow.task("notify", [](culvert::TaskContext& ctx) { ctx.error("the work failed, paging someone"); })
      .after(work)
      .trigger(culvert::Trigger::kAnyFailed);
  return culvert::main(flow, argc, argv);
}
