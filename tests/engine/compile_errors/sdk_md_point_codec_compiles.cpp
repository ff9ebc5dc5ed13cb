// expect: compiles
// The codec SDK.md shows, written as it is there.
#include <culvert/culvert.hpp>
#include <charconv>
#include <culvert/codec.hpp>

struct Point { int x = 0, y = 0; };

template <>
struct culvert::Codec<Point> {
  static std::string encode(const Point& p) {
    return std::to_string(p.x) + "," + std::to_string(p.y);
  }
  static bool decode(std::string_view s, Point& out) {
    const size_t comma = s.find(',');
    if (comma == std::string_view::npos) return false;
    auto a = std::from_chars(s.data(), s.data() + comma, out.x);
    auto b = std::from_chars(s.data() + comma + 1, s.data() + s.size(), out.y);
    return a.ec == std::errc() && a.ptr == s.data() + comma &&
           b.ec == std::errc() && b.ptr == s.data() + s.size();
  }
};
int main() { culvert::Flow flow("f"); flow.task("p", []{ return Point{1,2}; }).cache_for(std::chrono::hours(1));
 Point p; return culvert::Codec<Point>::decode(culvert::Codec<Point>::encode(Point{3,-4}), p) && p.y==-4 ? 0 : 1; }
