// The API (api_impl.hpp): task runs (listing; states through the group commit).
#include "server/api_impl.hpp"

#include <algorithm>

#include "core/crypto.hpp"
#include "core/json_parse.hpp"
#include "core/timefmt.hpp"

namespace culvert::server {

Result<std::shared_ptr<const FlowTasks>> Api::Impl::tasks_of_run(store::Store& st, const std::string& run_id) {
  {
    std::lock_guard lock(flow_tasks_mu);
    if (auto it = flow_tasks_by_run.find(run_id); it != flow_tasks_by_run.end()) return it->second;
  }
  auto run = st.get_flow_run(run_id);
  if (!run) return run.status();
  auto flow = st.get_flow(run->flow_id);
  if (!flow) return flow.status();
  auto description = parse_json_bounded(flow->description_json, kMaxAnswerJsonDepth);
  auto tasks = std::make_shared<const FlowTasks>(
      flow_tasks(*flow, description ? *description : json::object()));
  std::lock_guard lock(flow_tasks_mu);
  if (flow_tasks_by_run.size() >= kMaxCachedRuns) flow_tasks_by_run.clear();
  flow_tasks_by_run.emplace(run_id, tasks);
  return tasks;
}

namespace {

// The task listing's cursor: the hex of the last task listed (task names may hold any
// character but control characters).
std::optional<std::string> decode_task_cursor(std::string_view c) {
  if (c.size() % 2 != 0 || c.size() > 2 * kMaxNameLength) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < c.size(); i += 2) {
    auto nibble = [](char h) -> int {
      if (h >= '0' && h <= '9') return h - '0';
      if (h >= 'a' && h <= 'f') return h - 'a' + 10;
      return -1;
    };
    int hi = nibble(c[i]), lo = nibble(c[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}


}  // namespace

Response Api::Impl::list_task_runs(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  // A larger limit is clamped (the answer is bounded by bytes as well).
  auto limit = parse_int_param(c.req.query_param("limit"), "limit", 1, INT64_MAX, kDefaultTaskPage);
  if (!limit) return status_response(limit.status());
  const int want = static_cast<int>(std::min<int64_t>(*limit, kMaxTaskPage));
  const std::string cursor = c.req.query_param("cursor").value_or("");
  CappedList list{options.max_answer_bytes};
  std::string items;
  auto task = c.req.query_param("task");
  if (task) {
    // One task's task runs, by map index.
    std::optional<State> state;
    if (auto s = c.req.query_param("state"); s && !s->empty()) {
      state = parse_state(*s);
      if (!state || *s != state_name(*state))
        return status_response(unprocessable("query parameter 'state': not a state name (they are case-sensitive): '" +
                                             *s + "'"));
    }
    int64_t from = -1;
    if (!cursor.empty()) {
      auto n = parse_int_param(cursor, "cursor", -1, kMaxMapCount, -1);
      if (!n) return status_response(unprocessable("malformed cursor '" + cursor + "' (use a next_cursor of this listing)"));
      from = *n;
    }
    std::optional<int64_t> next;
    int listed = 0;
    for (;;) {
      const int chunk = std::min(kStoreChunk, want + 1 - listed);
      auto rows = st.list_task_run_elements(id, *task, from, chunk, state);
      if (!rows) return store_error(rows.status());
      for (const auto& t : *rows) {
        if (listed == want || list.full()) {
          next = t.map_index;
          break;
        }
        list.add(items, to_json(t));
        ++listed;
        from = int64_t{t.map_index} + 1;
      }
      if (next || static_cast<int>(rows->size()) < chunk) break;
    }
    return text_response("{\"task_runs\":[" + items + "],\"next_cursor\":" +
                         (next ? json(std::to_string(*next)).dump() : "null") + "}");
  }
  // Every task: an unmapped one's task run, a mapped one's summary.
  std::string after;
  if (!cursor.empty()) {
    auto a = decode_task_cursor(cursor);
    if (!a) return status_response(unprocessable("malformed cursor '" + cursor + "' (use a next_cursor of this listing)"));
    after = *a;
  }
  std::string mapped;
  std::optional<std::string> next;  // the last task listed, when more follow
  int listed = 0;
  CappedList summaries{options.max_answer_bytes};
  for (bool more = true; more && !next;) {
    const int chunk = std::min(kStoreChunk, want - listed);
    auto page = st.list_tasks(id, after, chunk);
    if (!page) return store_error(page.status());
    more = !page->next_after.empty();
    // Both lists are in task order; a task may be in both.
    size_t a = 0, b = 0;
    while (a < page->task_runs.size() || b < page->mapped.size()) {
      const std::string& name = b == page->mapped.size() || (a < page->task_runs.size() &&
                                                              page->task_runs[a].task <= page->mapped[b].task)
                                    ? page->task_runs[a].task
                                    : page->mapped[b].task;
      if (listed > 0 && list.bytes + summaries.bytes >= options.max_answer_bytes) {
        next = after;
        break;
      }
      for (; a < page->task_runs.size() && page->task_runs[a].task == name; ++a) list.add(items, to_json(page->task_runs[a]));
      for (; b < page->mapped.size() && page->mapped[b].task == name; ++b) summaries.add(mapped, to_json(page->mapped[b]));
      after = name;
      ++listed;
    }
    if (!next && more && listed == want) next = after;
  }
  return text_response("{\"task_runs\":[" + items + "],\"mapped_tasks\":[" + mapped + "],\"next_cursor\":" +
                       (next ? json(hex_encode(*next)).dump() : "null") + "}");
}

Response Api::Impl::list_task_run_history(Call& c, store::Store& st) {
  const auto& id = c.params.get("id");
  if (!c.principal.may_access_run(id)) return status_response(forbidden_run());
  return id_page_response(c.req, kMaxTaskPage, options.max_answer_bytes, kStoreChunk,
                          [&](int64_t after, int n) { return st.list_task_run_history(id, after, n); });
}

void Api::Impl::task_run_states(const CallPtr& c, store::Store& st) {
  auto b = body(*c);
  if (!b) return c->respond(status_response(b.status()));
  auto batch = parse_task_run_batch(*b, clock.now());
  if (!batch) return c->respond(status_response(batch.status()));
  // A run token reports its own run's task runs; a child run's token also its own
  // elements of its parent's map task.
  for (size_t i = 0; i < batch->size(); ++i) {
    auto& u = (*batch)[i];
    if (Status ok = may_report(c->principal, u.flow_run_id, u.task, u.map_index, u.map_count, u.run_attempt,
                               "item [" + std::to_string(i) + "]");
        !ok)
      return c->respond(status_response(ok));
  }
  if (batch->empty()) return c->respond(json_response(200, {{"task_run_ids", json::array()}}));
  // Every item names a task of its run's flow version, mapped or not as it is there.
  std::unordered_map<std::string_view, std::shared_ptr<const FlowTasks>> tasks;
  for (size_t i = 0; i < batch->size(); ++i) {
    const auto& u = (*batch)[i];
    auto& t = tasks[u.flow_run_id];
    if (!t) {
      // A runner token reports task runs only of runs on its own agents (or on none).
      if (Status ok = may_write_run(c->principal, u.flow_run_id, st); !ok) return c->respond(store_error(ok));
      auto found = tasks_of_run(st, u.flow_run_id);
      if (!found) return c->respond(store_error(found.status()));
      t = std::move(*found);
    }
    if (auto ok = check_task_run_item(u, i, *t); !ok) return c->respond(status_response(ok));
  }
  // Answered once written, possibly by the writer of another request's thread.
  task_states.submit(
      std::move(*batch),
      [c](const TaskStateCommit::Ids& ids) {
        if (!ids) return c->respond(store_error(ids.status()));
        c->respond(json_response(200, {{"task_run_ids", *ids}}));
      },
      [&st](const std::vector<store::TaskRunUpdate>& updates) { return st.upsert_task_runs(updates); });
}

}  // namespace culvert::server
