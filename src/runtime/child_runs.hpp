// Distributed maps under orchestration (docs/SDK.md "Distributed maps"): the parent
// run's distributor, which runs each chunk of a map as a child flow run, and where the
// chunks' inputs and outputs live in the user's storage.
//
// The parent writes chunk c's inputs to
//   <storage>/<parent run>/<parent attempt>/<task>/in/<c>
// asks the server for the child run of chunk c (POST /flow-runs/{id}/children), keeps at
// most max_workers children unfinished, long-polls the children's listing, and reads the
// outcomes of each child that ended from .../out/<c>, which the child wrote (whole, under
// its final name only once complete: a re-run child replaces it whole). The server sees
// only the children's metadata.
#pragma once

#include <culvert/clock.hpp>
#include <culvert/distribute.hpp>
#include <culvert/executor.hpp>
#include <culvert/status.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace culvert::client {
class ApiClient;
}

namespace culvert::runtime {

// The URI of a chunk's inputs (`side` "in") or outcomes ("out"). The task's name is
// percent-encoded outside [A-Za-z0-9._-] (so that any name is one path segment).
std::string chunk_uri(const std::string& storage, const std::string& parent_run_id, int parent_attempt,
                      const std::string& task, const char* side, int chunk);

// A chunk of a map as the parent asks for it: elements [start, end).
struct ChunkRange {
  int chunk = 0;
  int64_t start = 0;
  int64_t end = 0;
};

// A child run as the server lists it.
struct ChildRunInfo {
  std::string id;
  int chunk = 0;
  int64_t start = 0;
  int64_t end = 0;
  std::string state;
  std::string state_message;
  int run_count = 0;
};

struct ChildListing {
  std::vector<ChildRunInfo> children;
  int64_t final_count = 0;  // children in a final state
};

// The server's child-run routes, behind an interface for tests.
class ChildRunsApi {
 public:
  virtual ~ChildRunsApi() = default;
  // Creates the children of these chunks (a chunk created before is answered as it is).
  virtual Status create(const std::string& parent_run_id, const std::string& task,
                        const std::vector<ChunkRange>& chunks) = 0;
  // The children of the parent's current attempt for `task`; answers when more than
  // `final_above` are final, or after `wait`.
  virtual Result<ChildListing> list(const std::string& parent_run_id, const std::string& task, int64_t final_above,
                                    std::chrono::milliseconds wait) = 0;
};

// ChildRunsApi over the HTTP API (the parent's run token), with a client of its own.
// Answers are checked field by field; a malformed one is an Internal error naming the field.
std::unique_ptr<ChildRunsApi> make_client_child_runs(const std::string& api_url, const std::string& api_token);

struct DistributorOptions {
  std::string parent_run_id;
  int parent_attempt = 1;
  // How long one listing waits for a child to end (the long poll); cancellation is
  // noticed at least this often.
  std::chrono::milliseconds poll_wait{2000};
  // How long the server may stay unreachable before the map fails.
  std::chrono::milliseconds server_wait{300000};
  // A child seen Crashed is taken as ended only when it is still Crashed this long
  // after (the server reschedules a crashed run its flow's run-retry policy allows).
  std::chrono::milliseconds crash_settle{1500};
  Clock* clock = nullptr;  // default: the system clock
  StoreOpener open_store;  // default: open_object_store
  // Progress lines for the parent run's log.
  std::function<void(LogLevel, const std::string&)> log;
};

// The parent's MapDistributor.
// Each run() (a distributed map; several may run at once) makes its own ChildRunsApi.
class ChildRunDistributor final : public MapDistributor {
 public:
  using ApiFactory = std::function<std::unique_ptr<ChildRunsApi>()>;
  ChildRunDistributor(ApiFactory make_api, DistributorOptions options);
  Result<std::vector<ElementOutcome>> run(const DistributedMapCall& call) override;

 private:
  ApiFactory make_api_;
  DistributorOptions options_;
};

}  // namespace culvert::runtime
