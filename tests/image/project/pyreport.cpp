// A flow whose work is a Python script of the image (python3 from the base image).
#include <culvert/culvert.hpp>

#include <string>

int main(int argc, char** argv) {
  culvert::Flow flow("pyreport");
  flow.schedule(culvert::Cron("30 6 * * 1-5", "Europe/Berlin"));
  auto prepared = flow.task("prepare", [](culvert::TaskContext& ctx) {
    ctx.info("preparing the report in C++");
    return 3;
  });
  flow.shell("python",
             "python3 -c 'import platform, json; "
             "print(\"python\", platform.python_version(), json.dumps({\"rows\": [1, 2, 3]}))'")
      .after(prepared);
  return culvert::main(flow, argc, argv);
}
