// The flow the agent benchmarks run: `tasks` no-op task runs (one map), then a reduce.
// With tasks=0 it is a short flow of two tasks (start latency and throughput);
// work_us makes each mapped task sleep that long (a flow that does some work).
#include <culvert/culvert.hpp>

#include <numeric>
#include <thread>

int main(int argc, char** argv) {
  culvert::Flow flow("bench");
  auto n = flow.parameter<int>("tasks", 0);
  auto work_us = flow.parameter<int>("work_us", 0);  // how long each mapped task works
  auto items = flow.task(
      "items", [](int count, int us) { return std::vector<int>(static_cast<size_t>(count), us); }, n, work_us);
  auto ones = flow.map("noop", [](int us) {
    if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
    return 1;
  }, items);
  flow.task("sum", [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }, ones);
  flow.storage("file:///tmp/culvert-bench-unused");
  return culvert::main(flow, argc, argv);
}
