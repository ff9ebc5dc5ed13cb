// ETL: build a table, transform it, print a summary.
//   ./etl run --param rows=5
//   culvert flow register ./etl --project demo --storage file://$HOME/.culvert/flows
//   culvert run etl --project demo --watch          (with a local agent labelled dev)
#include <culvert/culvert.hpp>

#include <cstdio>
#include <map>
#include <numeric>
#include <string>
#include <vector>

namespace {

struct Row {
  int id;
  std::string city;
  double amount;
};
using Table = std::vector<Row>;
using Summary = std::map<std::string, double>;  // total amount per city

Table load_rows(int n) {
  static const char* cities[] = {"Berlin", "Lisbon", "Oslo"};
  Table t;
  for (int i = 0; i < n; ++i) t.push_back({i, cities[i % 3], 10.0 + i});
  return t;
}

Summary summarize(const Table& t) {
  Summary s;
  for (const auto& r : t) s[r.city] += r.amount;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  culvert::Flow flow("etl");
  auto rows = flow.parameter<int>("rows", 1000);
  auto table = flow.task("extract", [](int n) { return load_rows(n); }, rows)
                   .retries(3, std::chrono::seconds(10))
                   .timeout(std::chrono::minutes(5));
  auto summary = flow.task("transform", [](const Table& t) { return summarize(t); }, table)
                     .cache_for(std::chrono::hours(1));
  flow.task("load",
            [](culvert::TaskContext& ctx, const Summary& s) {
              for (const auto& [city, total] : s) ctx.info(city + ": " + std::to_string(total));
              return std::accumulate(s.begin(), s.end(), 0.0,
                                     [](double acc, const auto& kv) { return acc + kv.second; });
            },
            summary);
  flow.shell("report", "echo report for flow $CULVERT_FLOW_NAME");
  // Runs on a local agent with the label "dev" (culvert agent start --type local --label dev).
  // No flow.storage(): registering names it, e.g. --storage file://$HOME/.culvert/flows.
  flow.run_config(culvert::LocalRun{.labels = {"dev"}});
  flow.schedule(culvert::Cron("0 6 * * *", "Europe/Berlin"));
  return culvert::main(flow, argc, argv);
}
