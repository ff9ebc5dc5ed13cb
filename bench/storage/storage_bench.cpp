// Micro-benchmarks of the per-request CPU cost of talking to AWS and Docker.
#include <benchmark/benchmark.h>

#include "agent/docker/docker_client.hpp"
#include "storage/aws/sigv4.hpp"

namespace {
using namespace culvert;

void BM_SignV4S3Get(benchmark::State& state) {
  aws::SigningRequest r{.method = "GET", .host = "bucket.s3.eu-west-1.amazonaws.com",
                        .path = "/flows/etl/0123456789abcdef", .payload_sha256 = std::string(aws::kEmptySha256)};
  aws::Credentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", {}};
  SysTime t(std::chrono::seconds(1767225600));
  for (auto _ : state) benchmark::DoNotOptimize(aws::sign_v4(r, c, {.region = "eu-west-1", .service = "s3"}, t));
}
BENCHMARK(BM_SignV4S3Get);

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
