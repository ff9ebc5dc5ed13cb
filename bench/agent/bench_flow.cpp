// The flow the agent benchmarks run: `tasks` no-op task runs (one map), then a reduce.
// With tasks=0 it is a short flow of two tasks (start latency and throughput).
#include <culvert/culvert.hpp>

#include <numeric>

int main(int argc, char** argv) {
  culvert::Flow flow("bench");
  auto n = flow.parameter<int>("tasks", 0);
  auto items = flow.task("items", [](int count) { return std::vector<int>(static_cast<size_t>(count), 1); }, n);
  auto ones = flow.map("noop", [](int x) { return x; }, items);
  flow.task("sum", [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }, ones);
  flow.storage("file:///tmp/culvert-bench-unused");
  return culvert::main(flow, argc, argv);
}
