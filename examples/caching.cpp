// Results, caching and targets through storage (file:// here, s3:// alike).
//   ./caching run --param store=file:///tmp/culvert-demo   (twice: the second run is Cached)
#include <culvert/culvert.hpp>

#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const char* base_env = std::getenv("CACHING_STORE");
  std::string base = base_env != nullptr ? base_env : "file:///tmp/culvert-caching-example";
  culvert::Flow flow("caching");
  flow.cache_storage(base + "/cache");
  auto n = flow.parameter<int>("n", 10);
  auto squares = flow.task("squares", [](culvert::TaskContext& ctx, int k) {
                         ctx.info("computing " + std::to_string(k) + " squares");
                         std::vector<long> v;
                         for (long i = 0; i < k; ++i) v.push_back(i * i);
                         return v;
                       }, n)
                     .cache_for(std::chrono::hours(1))
                     .result(base + "/results/{flow_run_id}/{task_name}");
  flow.task("report", [](const std::vector<long>& v) { return std::to_string(v.size()) + " squares"; }, squares)
      .target(base + "/targets/{task_name}-{date}");
  return culvert::main(flow, argc, argv);
}
