#include <culvert/culvert.hpp>

#include <string>
#include <vector>

int main(int argc, char** argv) {
  culvert::Flow flow("hello");
  auto who = flow.parameter<std::string>("who", "world");
  auto words = flow.task("words", [](const std::string& w) { return std::vector<std::string>{"hello", w}; }, who);
  auto upper = flow.map("upper", [](const std::string& s) {
    std::string u = s;
    for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
  }, words);
  flow.task("join", [](culvert::TaskContext& ctx, const std::vector<std::string>& v) {
    ctx.info(v[0] + " " + v[1]);
    return v[0] + " " + v[1];
  }, upper);
  flow.shell("echo", "echo from the shell");
  return culvert::main(flow, argc, argv);
}
