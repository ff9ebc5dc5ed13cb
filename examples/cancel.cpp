// Cancellation: SIGINT or SIGTERM cancels the run; running C++ tasks see their token,
// command tasks' process groups are killed, and the run ends Cancelled.
//   ./cancel run & sleep 1; kill -INT %1
#include <culvert/culvert.hpp>

int main(int argc, char** argv) {
  culvert::Flow flow("cancel");
  flow.shell("sleeper", "sleep 60 & echo $!; wait");
  flow.task("waiter", [](culvert::TaskContext& ctx) {
    ctx.info("waiting for cancellation");
    while (!ctx.cancelled()) ctx.clock().sleep_for(std::chrono::milliseconds(20));
  });
  return culvert::main(flow, argc, argv);
}
