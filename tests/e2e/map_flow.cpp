// The flow of the distributed-map end-to-end tests (distributed_map_test.cpp): a mapped
// task over `n` string elements, distributed over child runs in chunks, then a reduce.
//
// From the environment, read once at start (the same for `describe` and every run):
//   MAP_FLOW_STORAGE      the flow's result storage (required for a distributed map)
//   MAP_FLOW_WORKERS      max_workers (default 20)
//   MAP_FLOW_CHUNK        chunk_size (default 10)
//   MAP_FLOW_CHILD_IMAGE  when set, the children's own run config: Docker, this image
// Parameters: n, sleep_ms (each element's sleep, cancellable), count_file (each
// execution of an element appends "<index> <pid>\n"), kill_index (the element that
// SIGKILLs its own process the first time it runs, with kill_marker as its memory),
// fail_index (the element that fails). Each element also logs
// "element <index> runs in process <pid>" (the count where no file is shared).
#include <culvert/culvert.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

void append_line(const std::string& path, const std::string& line) {
  if (path.empty()) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t w = ::write(fd, line.data(), line.size());  // one write: whole lines even from many processes
  (void)w;
  ::close(fd);
}

std::optional<culvert::RunConfig> child_run_config() {
  const char* image = std::getenv("MAP_FLOW_CHILD_IMAGE");
  if (image == nullptr || *image == '\0') return std::nullopt;
  return culvert::DockerRun{.image = image, .network_mode = "host"};
}

}  // namespace

int main(int argc, char** argv) {
  culvert::Flow flow("fanout");
  const char* storage = std::getenv("MAP_FLOW_STORAGE");
  if (storage != nullptr) flow.result_storage(storage);
  flow.max_run_retries(2);
  auto n = flow.parameter<int>("n", 200);
  auto sleep_ms = flow.parameter<int>("sleep_ms", 0);
  auto count_file = flow.parameter<std::string>("count_file", "");
  auto kill_index = flow.parameter<int>("kill_index", -1);
  auto kill_marker = flow.parameter<std::string>("kill_marker", "");
  auto fail_index = flow.parameter<int>("fail_index", -1);

  auto items = flow.task("items", [](int count) {
    std::vector<std::string> v;
    for (int i = 0; i < count; ++i) v.push_back("culvert-secret-payload-" + std::to_string(i));
    return v;
  }, n);
  auto scored = flow.map("score", [](culvert::TaskContext& ctx, const std::string& item) {
                    const int i = ctx.map_index();
                    append_line(ctx.parameter("count_file"), std::to_string(i) + " " + std::to_string(::getpid()) + "\n");
                    ctx.info("element " + std::to_string(i) + " runs in process " + std::to_string(::getpid()));
                    if (std::to_string(i) == ctx.parameter("kill_index")) {
                      std::string marker = ctx.parameter("kill_marker");
                      int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                      if (fd >= 0) {  // the first time only
                        ::close(fd);
                        ::kill(::getpid(), SIGKILL);
                      }
                    }
                    if (std::to_string(i) == ctx.parameter("fail_index")) throw std::runtime_error("element " + std::to_string(i) + " fails");
                    const int ms = std::atoi(ctx.parameter("sleep_ms").c_str());
                    for (int waited = 0; waited < ms && !ctx.cancelled(); waited += 50)
                      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50, ms - waited)));
                    return item.substr(item.rfind('-') + 1) + "-out";
                  }, items)
                    .distributed({.max_workers = env_int("MAP_FLOW_WORKERS", 20),
                                  .chunk_size = env_int("MAP_FLOW_CHUNK", 10),
                                  .run_config = child_run_config()});
  flow.task("reduce", [](culvert::TaskContext& ctx, const std::vector<std::string>& outs) {
    long sum = 0;
    for (size_t i = 0; i < outs.size(); ++i) {
      if (outs[i] != std::to_string(i) + "-out") throw std::runtime_error("output " + std::to_string(i) + " is '" + outs[i] + "'");
      sum += static_cast<long>(i);
    }
    ctx.info("reduced " + std::to_string(outs.size()) + " outputs in order, sum " + std::to_string(sum));
    return sum;
  }, scored);
  (void)sleep_ms;
  (void)count_file;
  (void)kill_index;
  (void)kill_marker;
  (void)fail_index;
  return culvert::main(flow, argc, argv);
}
