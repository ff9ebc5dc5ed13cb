// Micro-benchmark of demultiplexing Docker log frames into lines.
#include <benchmark/benchmark.h>

#include "agent/docker/docker_client.hpp"

namespace {
using namespace culvert;

void BM_LogDemux(benchmark::State& state) {
  std::string data;
  for (int i = 0; i < 1000; ++i) {
    std::string line = "log line number " + std::to_string(i) + " with some text in it\n";
    std::string h(8, '\0');
    h[0] = static_cast<char>(i % 2 ? 1 : 2);
    h[7] = static_cast<char>(line.size());
    data += h + line;
  }
  for (auto _ : state) {
    docker::LogDemuxer d;
    size_t n = 0;
    d.feed(data, [&](const docker::LogLine& l) {
      n += l.text.size();
      return true;
    });
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_LogDemux);

}  // namespace

BENCHMARK_MAIN();
