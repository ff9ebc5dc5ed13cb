// Prometheus metrics of the server (GET /metrics, text exposition format 0.0.4).
//
// Request counters and latency histograms are kept per route (by route index, fixed
// when the router is built) in atomics, so recording costs no lock. Gauges that live in
// the database (runs by state, agents by health) are passed to render() by the caller.
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace culvert::server {

class Metrics {
 public:
  // Latency bucket upper bounds in seconds (+Inf is implicit).
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1,     2.5,   5,     10};

  // One entry per route: {method, pattern}. Requests that match no route are counted
  // under route "unmatched".
  explicit Metrics(std::vector<std::pair<std::string, std::string>> routes);

  // `route` is a route index, or routes.size() for "unmatched".
  void observe_request(size_t route, int http_status, double seconds);
  void add_claimed_runs(uint64_t n) { claimed_runs_.fetch_add(n, std::memory_order_relaxed); }
  void add_claim_request() { claim_requests_.fetch_add(1, std::memory_order_relaxed); }
  // A parked claim whose client closed its connection (it will claim nothing).
  void add_abandoned_claim() { abandoned_claims_.fetch_add(1, std::memory_order_relaxed); }
  void add_liveness(uint64_t crashed, uint64_t rescheduled, uint64_t returned_to_pending);

  struct Gauges {
    std::vector<std::pair<std::string, int64_t>> runs_by_state;  // state name -> count
    int64_t agents_healthy = 0;
    int64_t agents_unhealthy = 0;
    int64_t long_polls_parked = 0;
  };
  std::string render(const Gauges& gauges) const;

 private:
  struct RouteStats {
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_us{0};
    // By status class: 2xx, 3xx, 4xx, 5xx.
    std::array<std::atomic<uint64_t>, 4> by_class{};
  };
  std::vector<std::pair<std::string, std::string>> routes_;
  std::unique_ptr<RouteStats[]> stats_;
  std::atomic<uint64_t> claimed_runs_{0};
  std::atomic<uint64_t> claim_requests_{0};
  std::atomic<uint64_t> abandoned_claims_{0};
  std::atomic<uint64_t> crashed_{0};
  std::atomic<uint64_t> rescheduled_{0};
  std::atomic<uint64_t> returned_to_pending_{0};
};

}  // namespace culvert::server
