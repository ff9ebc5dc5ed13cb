#include "server/retention.hpp"

#include <spdlog/spdlog.h>

#include "core/timefmt.hpp"
#include "store/store.hpp"

namespace culvert::server {

RetentionService::RetentionService(Clock& clock, RetentionOptions options) : clock_(clock), options_(options) {}

int64_t RetentionService::run_pass(store::Store& store) {
  const SysTime cutoff = clock_.now() - options_.retention;
  int64_t lines = 0;
  for (int i = 0; i < options_.max_batches; ++i) {
    auto r = store.prune_logs(cursor_, cutoff, options_.batch_runs);
    if (!r) {
      spdlog::warn("log retention: {}", r.status().to_string());
      break;
    }
    lines += r->lines;
    if (!r->next) break;
    cursor_ = *r->next;
  }
  if (lines > 0)
    spdlog::info("log retention: deleted {} log lines of runs that ended before {}", lines, format_rfc3339(cutoff));
  return lines;
}

}  // namespace culvert::server
