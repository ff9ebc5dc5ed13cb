// Micro-benchmark of the per-request CPU cost of signing AWS requests.
#include <benchmark/benchmark.h>

#include "aws/sigv4.hpp"

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


}  // namespace

BENCHMARK_MAIN();
