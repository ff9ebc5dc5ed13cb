// Internal to the server: Api::Impl, the state and handlers behind Api (api.hpp).
//
// The handlers are defined per resource: api.cpp (dispatch, the route table, health,
// metrics), api_projects.cpp, api_flows.cpp, api_flow_runs.cpp, api_task_runs.cpp,
// api_logs.cpp, api_agents.cpp and api_tokens.cpp. A handler runs on a database-pool
// thread with that thread's store; a long poll parks in Waiters and is re-posted.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "server/api.hpp"
#include "server/api_json.hpp"
#include "server/auth.hpp"
#include "server/metrics.hpp"
#include "server/task_state_commit.hpp"
#include "server/waiters.hpp"
#include "server/work_pool.hpp"
#include "store/store.hpp"

namespace culvert::server {

// An error answer for a Status.
Response status_response(const Status& s);
// A store error: the request was well-formed JSON by then, so the store's
// InvalidArgument means invalid content (422).
Response store_error(const Status& s);
Response json_response(int status, const json& body);
// A flow run as the answer.
Response run_response(const store::FlowRun& run);
Status forbidden_run();
// OK when `p` may act as agent `a`: the token the agent is bound to (any token for an
// agent registered before agents were bound), or with `admin_too` an admin token.
// PermissionDenied otherwise.
Status may_act_as_agent(const Principal& p, const store::Agent& a, bool admin_too);
// Scheduled, Pending or Retrying: waiting to be claimed once due.
bool is_waiting(State s);

// One request on its way through the API.
struct Call {
  Request req;
  PathParams params;
  Principal principal;
  size_t route = 0;
  Responder respond;
  // Long polls: the client closed its connection while parked; and whether the poll
  // has been answered (after which a close is an ordinary one).
  std::atomic<bool> peer_gone{false};
  std::atomic<bool> answered{false};
  bool watching = false;  // watch_peer asked (touched by the poll's own thread only)
};
using CallPtr = std::shared_ptr<Call>;

struct Api::Impl {
  using Handler = std::function<void(const CallPtr&, store::Store&)>;

  Clock& clock;
  WorkPool& pool;
  StoreForWorker stores;
  Authenticator& auth;
  Waiters& waiters;
  RunEvents& events;
  ApiOptions options;
  Router router;
  std::vector<Handler> handlers;
  std::map<size_t, Response (Impl::*)(Call&)> inline_routes;  // answered on the I/O thread, no store
  std::unique_ptr<Metrics> metrics;
  std::string health_body;

  Impl(Clock& c, WorkPool& p, StoreForWorker s, Authenticator& a, Waiters& w, RunEvents& e, ApiOptions o);
  // Adds a route whose handler answers synchronously.
  void add(RouteSpec spec, Response (Impl::*fn)(Call&, store::Store&));
  // Adds a route answered on the I/O thread without the store or a token.
  void add_inline(RouteSpec spec, Response (Impl::*fn)(Call&));
  // Adds a route whose handler answers (possibly later) through c->respond.
  void add_async(RouteSpec spec, void (Impl::*fn)(const CallPtr&, store::Store&));
  // The route table (api.cpp).
  void build_routes();

  // ---- dispatch
  void handle(Request req, Responder respond);
  void run(const CallPtr& call, int worker);
  // Re-runs `fn` on the pool (after a long poll woke up).
  void repost(const CallPtr& call, std::function<void(store::Store&)> fn);
  Result<json> body(const Call& c, bool empty_is_object = false) { return parse_body(c.req.body, empty_is_object); }
  // Notifies parked claims about a run that may now be claimable.
  void announce(const store::FlowRun& run);

  // ---- public
  Response health(Call&);
  Response openapi(Call&);
  Response get_metrics(Call&, store::Store& st);

  // ---- projects (api_projects.cpp)
  Response create_project(Call& c, store::Store& st);
  Response list_projects(Call&, store::Store& st);

  // ---- flows (api_flows.cpp)
  Response register_flow(Call& c, store::Store& st);
  Response list_flows(Call& c, store::Store& st);
  Response get_flow(Call& c, store::Store& st);
  Response set_schedule(Call& c, store::Store& st);

  // ---- flow runs (api_flow_runs.cpp)
  Response create_run(Call& c, store::Store& st);
  Response list_runs(Call& c, store::Store& st);
  Response get_run(Call& c, store::Store& st);
  Response set_state(Call& c, store::Store& st);
  Response heartbeat_run(Call& c, store::Store& st);
  Response cancel_run(Call& c, store::Store& st);
  Response retry_run(Call& c, store::Store& st);
  Response run_history(Call& c, store::Store& st);
  Response run_attempts(Call& c, store::Store& st);
  Response diagnose_run(Call& c, store::Store& st);
  Response report_infrastructure(Call& c, store::Store& st);
  // OK unless `p` is a runner token and the run is on an agent bound to another token
  // (PermissionDenied); NotFound for an unknown run.
  Status may_write_run(const Principal& p, const std::string& run_id, store::Store& st);

  // A run changed its state: cached run tokens, log readers, waits on its children and,
  // for a child run, its parent's waits.
  void changed(const store::FlowRun& run);

  // ---- child runs (api_child_runs.cpp)
  // Child runs listed at most (GET .../children), and bounded by options.max_answer_bytes.
  static constexpr int kMaxChildListing = 10000;
  Response create_children(Call& c, store::Store& st);
  struct ChildPoll {
    std::string parent_id;
    std::optional<std::string> task;
    std::optional<int> parent_attempt;  // nullopt: the parent's current attempt
    int64_t final_above = -1;
    SteadyTime deadline;
  };
  void list_children(const CallPtr& c, store::Store& st);
  void poll_children(const CallPtr& c, store::Store& st, ChildPoll p, bool timed_out);
  // The single-run answer's "children" member: the current attempt's children counted by
  // state, or null when it has none.
  Result<std::string> children_summary(store::Store& st, const store::FlowRun& run);
  // OK when `p` may report a task run or log line of run `run_id` (task, map indexes
  // [map_index, map_index + map_count), run attempt): a principal of that run, or a
  // child run's token within its scope (which fills in the run attempt when absent);
  // PermissionDenied naming the item `what` otherwise.
  static Status may_report(const Principal& p, const std::string& run_id, const std::optional<std::string>& task,
                           int64_t map_index, int64_t map_count, std::optional<int>& run_attempt,
                           const std::string& what);

  // ---- task runs (api_task_runs.cpp)
  // GET .../task-runs: pages of tasks (default kDefaultTaskPage, at most kMaxTaskPage),
  // or with ?task= pages of one task's task runs; bounded by options.max_answer_bytes.
  static constexpr int64_t kDefaultTaskPage = 100;
  static constexpr int64_t kMaxTaskPage = 1000;
  Response list_task_runs(Call& c, store::Store& st);
  Response list_task_run_history(Call& c, store::Store& st);
  // Task-run states are group-committed (task_state_commit.hpp).
  TaskStateCommit task_states{4 * kMaxBatch};
  void task_run_states(const CallPtr& c, store::Store& st);
  // The tasks of a run's flow version, which task-run states are checked against.
  // Runs and flow versions never change their tasks, so they are cached by run id
  // (at most kMaxCachedRuns; the cache is emptied when full). NotFound for an unknown run.
  static constexpr size_t kMaxCachedRuns = 4096;
  std::mutex flow_tasks_mu;
  std::unordered_map<std::string, std::shared_ptr<const FlowTasks>> flow_tasks_by_run;  // guarded by flow_tasks_mu
  Result<std::shared_ptr<const FlowTasks>> tasks_of_run(store::Store& st, const std::string& run_id);

  // ---- logs (api_logs.cpp)
  // Log lines per read at most (a larger limit is clamped; the default), and bounded by
  // options.max_answer_bytes.
  static constexpr int64_t kMaxLogPage = 1000;
  Response append_logs(Call& c, store::Store& st);
  struct LogPoll {
    std::string run_id;
    int64_t after = 0;
    int limit = 1000;
    SteadyTime deadline;
    std::optional<int> run_attempt;  // only this attempt's lines
  };
  void read_logs(const CallPtr& c, store::Store& st);
  void poll_logs(const CallPtr& c, store::Store& st, LogPoll p, bool timed_out);

  // ---- agents (api_agents.cpp)
  bool agent_healthy(const store::Agent& a) const;
  Response register_agent(Call& c, store::Store& st);
  Response heartbeat_agent(Call& c, store::Store& st);
  Response deregister_agent(Call& c, store::Store& st);
  Response list_agents(Call&, store::Store& st);
  struct ClaimPoll {
    std::string agent_id;
    std::vector<std::string> labels;
    std::vector<std::string> types;
    int max = 1;
    SteadyTime deadline;
  };
  void claim(const CallPtr& c, store::Store& st);
  void poll_claim(const CallPtr& c, store::Store& st, ClaimPoll p, bool timed_out);

  // ---- the web UI's reads (api_dashboard.cpp)
  Response dashboard(Call& c, store::Store& st);
  Response session(Call& c, store::Store& st);
  Response flow_fire_times(Call& c, store::Store& st);

  // ---- tokens (api_tokens.cpp)
  Response create_token(Call& c, store::Store& st);
  Response list_tokens(Call& c, store::Store& st);
  Response revoke_token(Call& c, store::Store& st);
};

// An answer of JSON items rendered one by one, until `max_bytes` is reached (the first
// item always goes in).
struct CappedList {
  size_t max_bytes;
  size_t bytes = 0;
  bool full() const { return bytes >= max_bytes; }
  void add(std::string& to, const json& item) {
    std::string text = item.dump(-1, ' ', false, json::error_handler_t::replace);
    if (!to.empty()) to += ',';
    to += text;
    bytes += text.size() + 1;
  }
};

// One page of a history listed by its ids: the `after` and `limit` query parameters
// (limit clamped to `max_items`), read `chunk` rows a store call through
// read(after_id, n) -> Result<vector<T>>, at most `max_bytes` of items. Answers
// {"history":[...],"next_cursor":"<id>"}, the cursor empty on the last page.
template <typename Read>
Response id_page_response(const Request& req, int64_t max_items, size_t max_bytes, int chunk_rows, Read read);

inline Response text_response(std::string body) {
  Response r;
  r.body = std::move(body);
  return r;
}

constexpr int kStoreChunk = 100;  // rows read per store call, so a page is read in small steps

template <typename Read>
Response id_page_response(const Request& req, int64_t max_items, size_t max_bytes, int chunk_rows, Read read) {
  auto after = parse_int_param(req.query_param("after"), "after", 0, INT64_MAX, 0);
  if (!after) return status_response(after.status());
  // A larger limit is clamped (the answer is bounded by bytes as well).
  auto limit = parse_int_param(req.query_param("limit"), "limit", 1, INT64_MAX, max_items);
  if (!limit) return status_response(limit.status());
  const int want = static_cast<int>(std::min<int64_t>(*limit, max_items));
  CappedList list{max_bytes};
  std::string items;
  int listed = 0;
  int64_t last = *after;
  bool more = false;
  for (;;) {
    const int chunk = std::min(chunk_rows, want + 1 - listed);
    auto rows = read(last, chunk);
    if (!rows) return store_error(rows.status());
    for (const auto& e : *rows) {
      if (listed == want || list.full()) {
        more = true;
        break;
      }
      list.add(items, to_json(e));
      ++listed;
      last = e.id;
    }
    if (more || static_cast<int>(rows->size()) < chunk) break;
  }
  return text_response("{\"history\":[" + items + "],\"next_cursor\":" +
                       json(more ? std::to_string(last) : std::string()).dump() + "}");
}

}  // namespace culvert::server
