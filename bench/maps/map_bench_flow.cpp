// The flow of bench/maps/maps_bench.py: `n` int64 elements, a map of no-op elements, and
// a reduce (their sum). Built twice: map_bench_flow ("map-bench", the map distributed)
// and map_bench_flow_plain ("map-bench-plain", the same map run inside the flow's run).
//
// From the environment, read once at start (the same for `describe`, the parent run and
// its children; the benchmark gives the agent the same values as `register`):
//   MAP_BENCH_STORAGE   the flow's result storage (file:///dir; required when distributed)
//   MAP_BENCH_WORKERS   max_workers (default 2)
//   MAP_BENCH_CHUNK     chunk_size (default 500)
#include <culvert/culvert.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef MAP_BENCH_PLAIN
  culvert::Flow flow("map-bench-plain");
#else
  culvert::Flow flow("map-bench");
#endif
  if (const char* storage = std::getenv("MAP_BENCH_STORAGE")) flow.result_storage(storage);
  auto n = flow.parameter<int64_t>("n", 10000);
  auto items = flow.task("items", [](int64_t count) {
    std::vector<int64_t> v(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) v[static_cast<size_t>(i)] = i;
    return v;
  }, n);
  auto noop = flow.map("noop", [](int64_t x) { return x; }, items);
#ifndef MAP_BENCH_PLAIN
  noop.distributed({.max_workers = env_int("MAP_BENCH_WORKERS", 2), .chunk_size = env_int("MAP_BENCH_CHUNK", 500)});
#endif
  flow.task("reduce", [](const std::vector<int64_t>& xs) {
    int64_t sum = 0;
    for (int64_t x : xs) sum += x;
    return sum;
  }, noop);
  return culvert::main(flow, argc, argv);
}
