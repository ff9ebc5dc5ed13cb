#include "server/metrics.hpp"

#include <fmt/format.h>

namespace culvert::server {
namespace {

template <typename... Args>
void put(fmt::memory_buffer& out, fmt::format_string<Args...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
}

}  // namespace

Metrics::Metrics(std::vector<std::pair<std::string, std::string>> routes)
    : routes_(std::move(routes)), stats_(std::make_unique<RouteStats[]>(routes_.size() + 1)) {}

void Metrics::observe_request(size_t route, int http_status, double seconds) {
  if (route > routes_.size()) route = routes_.size();
  auto& s = stats_[route];
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  s.buckets[b].fetch_add(1, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
  s.sum_us.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  int cls = http_status / 100 - 2;
  if (cls < 0) cls = 0;
  if (cls > 3) cls = 3;
  s.by_class[cls].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::add_liveness(uint64_t crashed, uint64_t rescheduled, uint64_t returned) {
  crashed_.fetch_add(crashed, std::memory_order_relaxed);
  rescheduled_.fetch_add(rescheduled, std::memory_order_relaxed);
  returned_to_pending_.fetch_add(returned, std::memory_order_relaxed);
}

std::string Metrics::render(const Gauges& g) const {
  fmt::memory_buffer out;

  put(out, "# HELP culvert_flow_runs Flow runs by current state.\n# TYPE culvert_flow_runs gauge\n");
  for (const auto& [state, n] : g.runs_by_state) put(out, "culvert_flow_runs{{state=\"{}\"}} {}\n", state, n);

  put(out, "# HELP culvert_agents Registered agents by health.\n# TYPE culvert_agents gauge\n");
  put(out, "culvert_agents{{health=\"healthy\"}} {}\n", g.agents_healthy);
  put(out, "culvert_agents{{health=\"unhealthy\"}} {}\n", g.agents_unhealthy);

  put(out, "# HELP culvert_claimed_runs_total Flow runs handed to agents by claims.\n"
       "# TYPE culvert_claimed_runs_total counter\nculvert_claimed_runs_total {}\n",
       claimed_runs_.load());
  put(out, "# HELP culvert_claim_requests_total Claim requests answered.\n"
       "# TYPE culvert_claim_requests_total counter\nculvert_claim_requests_total {}\n",
       claim_requests_.load());
  put(out, "# HELP culvert_claims_abandoned_total Parked claims whose agent closed its connection (nothing claimed for them).\n"
       "# TYPE culvert_claims_abandoned_total counter\nculvert_claims_abandoned_total {}\n",
       abandoned_claims_.load());
  put(out, "# HELP culvert_long_polls_parked Long-poll requests currently waiting.\n"
       "# TYPE culvert_long_polls_parked gauge\nculvert_long_polls_parked {}\n",
       g.long_polls_parked);
  put(out, "# HELP culvert_liveness_total Runs changed by the liveness service.\n"
       "# TYPE culvert_liveness_total counter\n");
  put(out, "culvert_liveness_total{{action=\"crashed\"}} {}\n", crashed_.load());
  put(out, "culvert_liveness_total{{action=\"rescheduled\"}} {}\n", rescheduled_.load());
  put(out, "culvert_liveness_total{{action=\"returned_to_pending\"}} {}\n", returned_to_pending_.load());

  static const char* kClass[] = {"2xx", "3xx", "4xx", "5xx"};
  put(out, "# HELP culvert_http_requests_total HTTP requests by route and status class.\n"
       "# TYPE culvert_http_requests_total counter\n");
  for (size_t r = 0; r <= routes_.size(); ++r) {
    const auto& s = stats_[r];
    std::string method = r < routes_.size() ? routes_[r].first : "";
    std::string route = r < routes_.size() ? routes_[r].second : "unmatched";
    for (int c = 0; c < 4; ++c) {
      auto n = s.by_class[c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      put(out, "culvert_http_requests_total{{method=\"{}\",route=\"{}\",code=\"{}\"}} {}\n", method, route,
           kClass[c], n);
    }
  }
  put(out, "# HELP culvert_http_request_duration_seconds HTTP request latency by route.\n"
       "# TYPE culvert_http_request_duration_seconds histogram\n");
  for (size_t r = 0; r <= routes_.size(); ++r) {
    const auto& s = stats_[r];
    auto count = s.count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    std::string method = r < routes_.size() ? routes_[r].first : "";
    std::string route = r < routes_.size() ? routes_[r].second : "unmatched";
    uint64_t cum = 0;
    for (size_t b = 0; b < kBuckets.size(); ++b) {
      cum += s.buckets[b].load(std::memory_order_relaxed);
      put(out, "culvert_http_request_duration_seconds_bucket{{method=\"{}\",route=\"{}\",le=\"{}\"}} {}\n",
           method, route, kBuckets[b], cum);
    }
    cum += s.buckets[kBuckets.size()].load(std::memory_order_relaxed);
    put(out, "culvert_http_request_duration_seconds_bucket{{method=\"{}\",route=\"{}\",le=\"+Inf\"}} {}\n",
         method, route, cum);
    put(out, "culvert_http_request_duration_seconds_sum{{method=\"{}\",route=\"{}\"}} {}\n", method, route,
         static_cast<double>(s.sum_us.load(std::memory_order_relaxed)) / 1e6);
    put(out, "culvert_http_request_duration_seconds_count{{method=\"{}\",route=\"{}\"}} {}\n", method, route,
         cum);
  }
  return fmt::to_string(out);
}

}  // namespace culvert::server
