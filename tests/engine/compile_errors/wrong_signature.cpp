// expect-error: culvert::Codec<T> does not have the expected signature; it needs 'static std::string encode(const T&)' and 'static bool decode(std::string_view, T&)'
#include <culvert/culvert.hpp>
struct Point { int x = 0; };
template <>
struct culvert::Codec<Point> {
  static std::string encode(Point p) { return std::to_string(p.x); }
  static Point decode(std::string_view s) { return Point{static_cast<int>(s.size())}; }
};
int main() {
  culvert::Flow flow("f");
  flow.task("p", [] { return Point{}; }).cache_for(std::chrono::hours(1));
}
