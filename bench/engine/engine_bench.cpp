// Engine overhead per task run, for 100,000 no-op tasks in three shapes (independent,
// a chain, one map of 100,000 elements), with 1 and 2 workers, state tracking and the
// run summary on. Beside it, in the same run: the limit (a plain loop calling the same
// lambdas) and Dask's threaded scheduler on the same graphs (dask_bench.py, run with
// /usr/bin/python3), printed as ratios.
//
//   bench_engine [--n 100000] [--reps 3] [--dask-n N] [--no-dask]
#include <culvert/culvert.hpp>

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

// ---- allocation accounting (this binary only) ----
namespace {
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
void note_alloc(void* p) {
  if (p == nullptr) return;
  int64_t now = g_live.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed) +
                static_cast<int64_t>(malloc_usable_size(p));
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {}
}
void note_free(void* p) {
  if (p != nullptr) g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}
}  // namespace

// These replacements pair malloc with free by design.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  note_alloc(p);
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  note_free(p);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

volatile int64_t g_sink = 0;

// The no-op task bodies, shared by the engine and the plain loop.
const auto kNoop = [] {};
const auto kInc = [](int v) { return v + 1; };
const auto kIdentity = [](const int& x) { return x; };
const auto kSum = [](const std::vector<int>& v) {
  int64_t s = 0;
  for (int x : v) s += x;
  return s;
};
const auto kSource = [](int n) { return std::vector<int>(static_cast<size_t>(n), 1); };

void build(culvert::Flow& flow, const std::string& shape, int n) {
  if (shape == "independent") {
    for (int i = 0; i < n; ++i) flow.task("t" + std::to_string(i), kNoop);
  } else if (shape == "chain") {
    auto prev = flow.task("t0", [] { return 0; });
    for (int i = 1; i < n; ++i) prev = flow.task("t" + std::to_string(i), kInc, prev);
  } else {
    auto count = flow.parameter<int>("n", n);
    auto src = flow.task("source", kSource, count);
    auto mapped = flow.map("each", kIdentity, src);
    flow.task("reduce", kSum, mapped);
  }
}

// The limit: the same lambdas called in a plain loop.
double plain_loop(const std::string& shape, int n) {
  auto t0 = Clock::now();
  if (shape == "independent") {
    for (int i = 0; i < n; ++i) {
      kNoop();
      g_sink = g_sink + 1;
    }
  } else if (shape == "chain") {
    int v = 0;
    for (int i = 1; i < n; ++i) {
      v = kInc(v);
      g_sink = v;
    }
  } else {
    auto src = kSource(n);
    std::vector<int> out;
    out.reserve(src.size());
    for (const int& x : src) out.push_back(kIdentity(x));
    g_sink = kSum(out);
  }
  return secs(Clock::now() - t0);
}

struct Figure {
  double build_us = 0, run_us = 0, bytes = 0;
  int64_t task_runs = 0;
};

Figure measure(const std::string& shape, int n, int workers, int reps) {
  Figure best;
  best.run_us = 1e18;
  for (int r = 0; r < reps; ++r) {
    int64_t base = g_live.load();
    g_peak.store(base);
    auto t0 = Clock::now();
    auto flow = std::make_unique<culvert::Flow>("bench");
    build(*flow, shape, n);
    if (!flow->validate().is_ok()) std::exit(1);  // as culvert::main does before running
    auto t1 = Clock::now();
    culvert::Executor ex(workers);
    auto t2 = Clock::now();
    auto result = ex.run(*flow);
    auto t3 = Clock::now();
    if (!result || result->state != culvert::State::kSuccess) {
      std::fprintf(stderr, "run failed: %s\n", result ? result->message.c_str() : result.status().message().c_str());
      std::exit(1);
    }
    int64_t runs = static_cast<int64_t>(result->task_runs.size());
    double run_us = secs(t3 - t2) * 1e6 / static_cast<double>(runs);
    if (run_us < best.run_us) {
      best.run_us = run_us;
      best.build_us = secs(t1 - t0) * 1e6 / static_cast<double>(runs);
    }
    best.task_runs = runs;
    best.bytes = static_cast<double>(g_peak.load() - base) / static_cast<double>(runs);
  }
  return best;
}

// shape -> µs per task for Dask, from dask_bench.py's JSON lines.
std::map<std::string, double> run_dask(int n, const std::string& script) {
  std::map<std::string, double> out;
  std::string cmd = "/usr/bin/python3 " + script + " --n " + std::to_string(n) + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char line[1024];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    // {"shape": "chain", "workers": 2, "us_per_task": 123.4}
    char shape[64];
    int workers = 0;
    double us = 0;
    if (std::sscanf(line, "{\"shape\": \"%63[a-z]\", \"workers\": %d, \"us_per_task\": %lf", shape, &workers, &us) == 3) {
      out[std::string(shape) + "/" + std::to_string(workers)] = us;
    } else {
      std::fprintf(stderr, "dask: %s", line);
    }
  }
  ::pclose(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 100000, reps = 3, dask_n = -1;
  bool dask = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--n" && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--dask-n" && i + 1 < argc) dask_n = std::atoi(argv[++i]);
    else if (a == "--no-dask") dask = false;
    else {
      std::fprintf(stderr, "usage: %s [--n N] [--reps R] [--dask-n N] [--no-dask]\n", argv[0]);
      return 2;
    }
  }
  if (dask_n < 0) dask_n = n;
  std::map<std::string, double> dask_us;
  if (dask) dask_us = run_dask(dask_n, std::string(CULVERT_BENCH_DIR) + "/dask_bench.py");

  std::printf("Culvert engine overhead per task run (N=%d no-op tasks, best of %d; Dask N=%d)\n", n, reps, dask_n);
  std::printf("%-12s %7s %10s %12s %12s %11s %12s %12s %11s\n", "shape", "workers", "task runs", "build us/t",
              "run us/t", "bytes/t", "loop us/t", "culvert/loop", "dask us/t");
  std::printf("%s\n", std::string(112, '-').c_str());
  for (const char* shape : {"independent", "chain", "map"}) {
    double loop_us = 1e18;
    for (int r = 0; r < reps; ++r) loop_us = std::min(loop_us, plain_loop(shape, n) * 1e6 / n);
    for (int workers : {1, 2}) {
      Figure f = measure(shape, n, workers, reps);
      std::string key = std::string(shape) + "/" + std::to_string(workers);
      double d = dask_us.count(key) ? dask_us[key] : 0;
      std::printf("%-12s %7d %10lld %12.3f %12.3f %11.0f %12.4f %12.0fx", shape, workers,
                  static_cast<long long>(f.task_runs), f.build_us, f.run_us, f.bytes, loop_us, f.run_us / loop_us);
      if (d > 0) std::printf(" %11.1f   dask/culvert = %.0fx", d, d / f.run_us);
      std::printf("\n");
    }
  }
  std::printf("\nbuild us/t: building and validating the Flow, per task.\n"
              "run us/t: Executor::run time per task run (state tracking, events, run summary on).\n"
              "bytes/t: peak heap growth (graph + run state + summary) per task run.\n"
              "Targets: <= 2 us and <= 1024 bytes per task run.\n");
  return 0;
}
