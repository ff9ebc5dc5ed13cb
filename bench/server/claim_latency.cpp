// Claim latency: the time from "create a flow run" (just before the POST is sent) to a
// long-polling agent receiving it in its claim answer. Prints p50/p90/p99/max.
//
//   claim_latency URL ADMIN_TOKEN [ITERATIONS]
#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

size_t collect(char* d, size_t s, size_t n, void* out) {
  static_cast<std::string*>(out)->append(d, s * n);
  return s * n;
}

struct Client {
  std::string base, token;
  CURL* h = curl_easy_init();
  ~Client() { curl_easy_cleanup(h); }
  json post(const std::string& path, const json& body, long* status = nullptr) {
    std::string out, payload = body.dump(), auth = "Authorization: Bearer " + token, url = base + path;
    curl_slist* hd = curl_slist_append(nullptr, auth.c_str());
    hd = curl_slist_append(hd, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (status) *status = code;
    curl_slist_free_all(hd);
    return json::parse(out, nullptr, false);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: claim_latency URL ADMIN_TOKEN [ITERATIONS]\n");
    return 2;
  }
  int n = argc > 3 ? std::atoi(argv[3]) : 300;
  Client admin{argv[1], argv[2]};
  long st = 0;
  auto runner_tok = admin.post("/api/v1/tokens", {{"name", "bench"}, {"scope", "runner"}}, &st);
  std::string runner = runner_tok.value("token", "");
  admin.post("/api/v1/flows",
             {{"project", "bench"},
              {"name", "claim"},
              {"artifact", {{"uri", "file:///bench"}, {"sha256", std::string(64, 'b')}}},
              {"run_config", {{"type", "local"}, {"labels", {"bench"}}}}},
             &st);
  if (st != 201) {
    std::fprintf(stderr, "flow registration failed (%ld)\n", st);
    return 1;
  }
  Client agent_client{argv[1], runner};
  auto agent = agent_client.post("/api/v1/agents", {{"name", "bench-agent"}, {"type", "local"}, {"labels", {"bench"}}});
  std::string agent_id = agent.value("id", "");

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Clock::time_point> received;
  bool done = false;
  std::thread poller([&] {
    Client c{argv[1], runner};
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (done) return;
      }
      auto r = c.post("/api/v1/agents/" + agent_id + "/claim", {{"max", 1}, {"wait_ms", 2000}});
      auto t = Clock::now();
      if (r.is_object() && r.contains("runs") && !r["runs"].empty()) {
        std::lock_guard<std::mutex> lock(mu);
        received.push_back(t);
        cv.notify_all();
      }
    }
  });

  std::vector<double> lat_ms;
  for (int i = 0; i < n; ++i) {
    // Give the poller time to park again (this is a benchmark, not a test).
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    size_t before;
    {
      std::lock_guard<std::mutex> lock(mu);
      before = received.size();
    }
    auto t0 = Clock::now();
    admin.post("/api/v1/flow-runs", {{"project", "bench"}, {"flow", "claim"}}, &st);
    if (st != 201) {
      std::fprintf(stderr, "run creation failed (%ld)\n", st);
      return 1;
    }
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return received.size() > before; })) {
      std::fprintf(stderr, "claim not received within 10 s\n");
      return 1;
    }
    lat_ms.push_back(std::chrono::duration<double, std::milli>(received[before] - t0).count());
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  poller.join();
  std::sort(lat_ms.begin(), lat_ms.end());
  auto pct = [&](double p) { return lat_ms[std::min(lat_ms.size() - 1, static_cast<size_t>(p * lat_ms.size()))]; };
  std::printf("claim latency over %d runs (create sent -> claim answer received): p50 %.2f ms, p90 %.2f ms, "
              "p99 %.2f ms, max %.2f ms\n",
              n, pct(0.50), pct(0.90), pct(0.99), lat_ms.back());
  return 0;
}
