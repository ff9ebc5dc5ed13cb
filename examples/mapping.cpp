// Mapping: one task run per element of an upstream vector, then a reduce.
//   ./mapping run --param n=10 --workers 2
#include <culvert/culvert.hpp>

#include <numeric>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  culvert::Flow flow("mapping");
  auto n = flow.parameter<int>("n", 5);
  flow.parameter<int>("fail_at", -1);  // an element that fails, for demos (read through the context)
  auto files = flow.task("list", [](int k) {
    std::vector<std::string> v;
    for (int i = 0; i < k; ++i) v.push_back("file-" + std::to_string(i) + ".csv");
    return v;
  }, n);
  auto sizes = flow.map("measure", [](culvert::TaskContext& ctx, const std::string& name) {
    if (std::to_string(ctx.map_index()) == ctx.parameter("fail_at")) throw std::runtime_error("cannot read " + name);
    return static_cast<int>(name.size()) * 100;
  }, files);
  flow.task("total", [](culvert::TaskContext& ctx, const std::vector<int>& v) {
    int total = std::accumulate(v.begin(), v.end(), 0);
    ctx.info("total size " + std::to_string(total) + " over " + std::to_string(v.size()) + " files");
    return total;
  }, sizes);
  return culvert::main(flow, argc, argv);
}
