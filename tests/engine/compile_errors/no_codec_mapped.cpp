// expect-error: has no codec. Give it one
#include <culvert/culvert.hpp>
#include <vector>
struct Point { int x = 0; };
int main() {
  culvert::Flow flow("f");
  auto xs = flow.task("xs", [] { return std::vector<int>{1, 2}; });
  flow.map("p", [](int x) { return Point{x}; }, xs).cache_for(std::chrono::hours(1));
}
