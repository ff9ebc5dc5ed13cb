// A daily report at 06:00 Berlin time: C++ tasks, then a shell step (the image's sh).
#include <culvert/culvert.hpp>

#include <numeric>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  culvert::Flow flow("report");
  flow.schedule(culvert::Cron("0 6 * * *", "Europe/Berlin"));
  auto n = flow.parameter<int>("n", 6);
  auto numbers = flow.task("numbers", [](int count) {
    std::vector<int> v(static_cast<size_t>(count));
    std::iota(v.begin(), v.end(), 1);
    return v;
  }, n);
  auto squares = flow.map("square", [](int x) { return x * x; }, numbers);
  flow.task("total", [](culvert::TaskContext& ctx, const std::vector<int>& v) {
    int sum = std::accumulate(v.begin(), v.end(), 0);
    ctx.info("sum of squares: " + std::to_string(sum));
    return sum;
  }, squares);
  flow.shell("shell", "echo \"shell says $((6 * 7)) from $(uname -s)\"");
  return culvert::main(flow, argc, argv);
}
