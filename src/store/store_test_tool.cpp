// A child process for the store's multi-process tests (store_test.cpp):
//
//   store_test_tool claim URL AGENT NOW_MS
//       claims due runs (up to 3 at a time) until a claim returns none, printing each
//       claimed run id on its own line.
//   store_test_tool write URL RUN_ID
//       forever: upserts task run "t<i>" (Success) and appends log line "line <i>" of
//       run RUN_ID, each in its own transaction, and prints "<i>" once both returned
//       OK (i.e. are acknowledged). The test kills it with SIGKILL mid-way.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "store/store.hpp"

using namespace culvert;
using namespace culvert::store;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: store_test_tool claim URL AGENT NOW_MS | write URL RUN_ID\n");
    return 2;
  }
  std::string cmd = argv[1];
  auto opened = open_store(argv[2]);
  if (!opened) {
    std::fprintf(stderr, "open: %s\n", opened.status().to_string().c_str());
    return 1;
  }
  Store& s = **opened;
  if (cmd == "claim" && argc >= 5) {
    ClaimRequest req;
    req.agent_id = argv[3];
    req.max = 3;
    req.now = SysTime(std::chrono::milliseconds(std::strtoll(argv[4], nullptr, 10)));
    for (;;) {
      auto runs = s.claim_runs(req);
      if (!runs) {
        std::fprintf(stderr, "claim: %s\n", runs.status().to_string().c_str());
        return 1;
      }
      if (runs->empty()) break;
      for (const auto& r : *runs) std::printf("%s\n", r.id.c_str());
    }
    std::fflush(stdout);
    return 0;
  }
  if (cmd == "write") {
    std::string run_id = argv[3];
    for (int i = 0;; ++i) {
      SysTime ts = SysTime(std::chrono::milliseconds(1767225600000LL + i));
      TaskRunUpdate u{run_id, "t" + std::to_string(i), -1, State::kSuccess, "ok", 1, ts};
      auto ids = s.upsert_task_runs({u});
      if (!ids) {
        std::fprintf(stderr, "upsert: %s\n", ids.status().to_string().c_str());
        return 1;
      }
      LogEntry l;
      l.flow_run_id = run_id;
      l.message = "line " + std::to_string(i);
      l.timestamp = ts;
      auto logs = s.append_logs({l});
      if (!logs) {
        std::fprintf(stderr, "logs: %s\n", logs.status().to_string().c_str());
        return 1;
      }
      std::printf("%d\n", i);
      std::fflush(stdout);
    }
  }
  std::fprintf(stderr, "unknown command '%s'\n", cmd.c_str());
  return 2;
}
