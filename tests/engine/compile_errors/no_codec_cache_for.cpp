// expect-error: has no codec. Give it one: specialize culvert::Codec<T> with 'static std::string encode(const T&)' and 'static bool decode(std::string_view, T&)'
#include <culvert/culvert.hpp>
struct Point { int x = 0; };
int main() {
  culvert::Flow flow("f");
  flow.task("p", [] { return Point{}; }).cache_for(std::chrono::hours(1));
}
