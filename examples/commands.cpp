// Command tasks: shell commands with env and working dir; output becomes log lines,
// the exit status decides the state, a timeout kills the whole process group.
//   ./commands run
//   ./commands run --param sleep=60 --param timeout_s=1   -> "slow" TimedOut
#include <culvert/culvert.hpp>

#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  // Command tasks are described before parameters are known, so the demo reads its
  // knobs from the environment of the flow binary.
  const char* sleep_s = std::getenv("SLEEP_SECONDS");
  const char* timeout_s = std::getenv("TIMEOUT_SECONDS");
  culvert::Flow flow("commands");
  auto hello = flow.shell("hello", "echo \"hello from $WHO in $(pwd)\"; echo 'a warning' >&2")
                   .env("WHO", "culvert")
                   .working_dir("/tmp");
  auto slow = flow.shell("slow", std::string("sleep ") + (sleep_s ? sleep_s : "0") + " & echo $!; wait")
                  .timeout(std::chrono::seconds(timeout_s ? std::atoi(timeout_s) : 30))
                  .after(hello);
  flow.shell("fails", "echo about to fail; exit 4").after(slow).trigger(culvert::Trigger::kAllFinished)
      .retries(0);
  flow.shell("always", "echo cleanup").after(slow).trigger(culvert::Trigger::kAllFinished).reference();
  return culvert::main(flow, argc, argv);
}
