// expect: compiles
#include <culvert/culvert.hpp>
#include <culvert/json.hpp>
#include <vector>
namespace shop {
struct Order { std::string id; int items = 0; };
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, id, items)
}  // namespace shop
int main() {
  culvert::Flow flow("f");
  auto o = flow.task("o", [] { return shop::Order{"a", 1}; }).cache_for(std::chrono::hours(1)).target("file:///t/{flow_run_id}");
  auto ids = flow.task("ids", [] { return std::vector<int>{1, 2}; });
  flow.map("orders", [](int i) { return shop::Order{std::to_string(i), i}; }, ids).result("file:///r/{map_index}");
  flow.task("n", [](const shop::Order& x) { return x.items; }, o).cache_for(std::chrono::hours(1));
  static_assert(culvert::HasCodec<shop::Order> && culvert::HasCodec<std::vector<shop::Order>>);
}
