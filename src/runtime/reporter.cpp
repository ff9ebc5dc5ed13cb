#include "runtime/reporter.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <iostream>
#include <iterator>
#include <map>

#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "core/json_text.hpp"
#include "core/timefmt.hpp"

namespace culvert::runtime {

using nlohmann::json;

ServerReporter::ServerReporter(client::ClientOptions client, std::string flow_run_id,
                               ReporterOptions options)
    : flow_run_id_(std::move(flow_run_id)),
      options_(options),
      api_(std::make_unique<client::ApiClient>(client)),
      api2_(std::make_unique<client::ApiClient>(std::move(client))) {
  thread_ = std::thread([this] { loop(); });
}

ServerReporter::~ServerReporter() { (void)close(); }

void ServerReporter::on_task_run(const TaskRunEvent& ev) {
  std::lock_guard lock(mu_);
  tasks_.push_back(TaskUpdate{ev.task_index, std::string(ev.task), ev.map_index, ev.state, ev.attempt,
                              std::string(ev.message), ev.timestamp, std::nullopt,
                              ev.state == State::kRetrying && ev.next_start != SysTime{}
                                  ? std::optional<SysTime>(ev.next_start)
                                  : std::nullopt});
  if (tasks_.size() >= options_.batch_size) cv_.notify_one();
}

void ServerReporter::on_log(const LogEvent& ev) {
  std::lock_guard lock(mu_);
  if (logs_refused_ || logs_.size() >= options_.max_buffered_logs) {
    ++dropped_;
    return;
  }
  logs_.push_back(LogLine{std::string(ev.task), ev.map_index, ev.level, bound_message(std::string(ev.message)),
                          ev.timestamp});
  if (logs_.size() >= options_.batch_size) cv_.notify_one();
}

void ServerReporter::log(LogLevel level, std::string message) {
  std::lock_guard lock(mu_);
  if (logs_refused_) {
    ++dropped_;
    return;
  }
  logs_.push_back(LogLine{"", -1, level, bound_message(std::move(message)), std::chrono::system_clock::now()});
}

bool ServerReporter::logs_refused() const {
  std::lock_guard lock(mu_);
  return logs_refused_;
}

size_t ServerReporter::dropped_logs() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

size_t ServerReporter::dropped_task_updates() const {
  std::lock_guard lock(mu_);
  return dropped_tasks_;
}

std::string ServerReporter::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

namespace {

// Errors worth another try: the server is unreachable, slow or failing. Anything else
// (a batch it refuses as invalid) would be refused again.
bool retryable(const Status& st) {
  return st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kTimeout ||
         st.code() == StatusCode::kInternal;
}

}  // namespace

Status ServerReporter::send_task_items(std::vector<TaskUpdate>& pending, std::vector<TaskUpdate>& unsent) {
  const size_t chunk = std::max<size_t>(1, options_.max_request_items);
  // Items: consecutive task runs of one mapped task that say the same thing, to the
  // millisecond the server keeps, go as one item with a map_count (the server stores
  // them as one range). Item k covers pending[first[k] .. first[k + 1]).
  auto ms = [](SysTime t) { return std::chrono::floor<std::chrono::milliseconds>(t); };
  // The start time an item sends: the server takes a Running update's from its timestamp.
  std::vector<std::optional<SysTime>> starts;
  starts.reserve(pending.size());
  for (const auto& t : pending) starts.push_back(t.state == State::kRunning ? std::nullopt : t.start);
  auto same_ms = [&](const std::optional<SysTime>& a, const std::optional<SysTime>& b) {
    return a.has_value() == b.has_value() && (!a || ms(*a) == ms(*b));
  };
  auto alike = [&](size_t a, size_t b) {
    const TaskUpdate &x = pending[a], &y = pending[b];
    return x.map_index >= 0 && y.map_index == x.map_index + 1 && x.task == y.task && x.state == y.state &&
           x.attempt == y.attempt && x.message == y.message && ms(x.timestamp) == ms(y.timestamp) &&
           same_ms(starts[a], starts[b]) && same_ms(x.next_start, y.next_start);
  };
  std::vector<size_t> first;
  for (size_t i = 0; i < pending.size(); ++i)
    if (i == 0 || !alike(i - 1, i)) first.push_back(i);
  const size_t items = first.size();
  first.push_back(pending.size());
  // Requests stay well under the server's body limit. Chunks hold distinct task runs,
  // so two may be in flight at once (one per connection) in any order.
  struct InFlight {
    std::future<Result<json>> answer;
    size_t begin, end;  // in pending
  };
  std::deque<InFlight> in_flight;
  Status failure = Status::ok();
  auto settle = [&](InFlight& f) {
    auto r = f.answer.get();
    if (r) return;
    if (retryable(r.status())) {
      if (failure.is_ok()) failure = r.status();
      for (size_t i = f.begin; i < f.end; ++i) unsent.push_back(std::move(pending[i]));
      return;
    }
    std::lock_guard lock(mu_);
    dropped_tasks_ += f.end - f.begin;
    last_error_ = r.status().message();
  };
  size_t item = 0;
  for (int n = 0; item < items && failure.is_ok(); ++n) {
    const size_t item_end = std::min(items, item + chunk);
    json batch = json::array();
    for (size_t k = item; k < item_end; ++k) {
      const size_t i = first[k];
      const auto& t = pending[i];
      json entry = {{"flow_run_id", flow_run_id_}, {"task", t.task}, {"map_index", t.map_index},
                    {"state", state_name(t.state)}, {"message", t.message},
                    {"timestamp", format_rfc3339(ms(t.timestamp))}};
      if (first[k + 1] - i > 1) entry["map_count"] = first[k + 1] - i;
      if (starts[i]) entry["start_time"] = format_rfc3339(ms(*starts[i]));
      if (t.next_start) entry["next_start_time"] = format_rfc3339(ms(*t.next_start));
      if (t.attempt > 0) entry["attempts"] = t.attempt;
      if (options_.run_attempt > 0) entry["run_attempt"] = options_.run_attempt;
      batch.push_back(std::move(entry));
    }
    if (in_flight.size() == 2) {
      settle(in_flight.front());
      in_flight.pop_front();
      if (!failure.is_ok()) break;
    }
    client::ApiClient* api = n % 2 == 0 ? api_.get() : api2_.get();
    const size_t begin = first[item], end = first[item_end];
    if (item_end == items && in_flight.empty()) {  // the only (or last lone) chunk: no thread
      std::promise<Result<json>> p;
      p.set_value(api->set_task_run_states(batch));
      in_flight.push_back({p.get_future(), begin, end});
    } else {
      in_flight.push_back({std::async(std::launch::async,
                                      [api, b = std::move(batch)] { return api->set_task_run_states(b); }),
                           begin, end});
    }
    item = item_end;
  }
  for (auto& f : in_flight) settle(f);
  if (!failure.is_ok()) {
    // What failed and what was never sent go back to the caller.
    for (size_t i = first[item]; i < pending.size(); ++i) unsent.push_back(std::move(pending[i]));
  }
  return failure;
}

Status ServerReporter::send_locked_batch(std::vector<TaskUpdate>& tasks, std::vector<LogLine>& logs) {
  const size_t chunk = std::max<size_t>(1, options_.max_request_items);
  if (!tasks.empty()) {
    // Coalesce: only the latest update of each task run in this batch matters, plus when
    // it first went Running (the Running update itself may be coalesced away), and every
    // Retrying update (the server keeps each in the task run's history: why an attempt
    // failed and when the next one starts). One sort of integer keys (task position, map
    // index, arrival) groups each task run's updates in arrival order, and orders the
    // task runs by task and map index.
    struct Ref {
      uint64_t key;  // task_index << 32 | (map_index + 1)
      uint32_t i;    // arrival
      bool operator<(const Ref& o) const { return key != o.key ? key < o.key : i < o.i; }
    };
    std::vector<Ref> refs(tasks.size());
    for (size_t i = 0; i < tasks.size(); ++i)
      refs[i] = Ref{uint64_t{tasks[i].task_index} << 32 | static_cast<uint32_t>(tasks[i].map_index + 1),
                    static_cast<uint32_t>(i)};
    std::sort(refs.begin(), refs.end());
    std::vector<TaskUpdate> pending, retries;
    for (size_t a = 0; a < refs.size();) {
      size_t b = a;
      std::optional<SysTime> start;
      for (; b < refs.size() && refs[b].key == refs[a].key; ++b) {
        TaskUpdate& t = tasks[refs[b].i];
        if (!start) start = t.start;  // an update put back after a failure
        if (!start && t.state == State::kRunning) start = t.timestamp;
        const bool last = b + 1 == refs.size() || refs[b + 1].key != refs[a].key;
        if (!last && t.state == State::kRetrying) {
          retries.push_back(std::move(t));
          retries.back().start = start;
        }
      }
      pending.push_back(std::move(tasks[refs[b - 1].i]));
      pending.back().start = start;
      a = b;
    }
    refs.clear();
    tasks.clear();
    // Retrying updates that a later update of the same task run supersedes go first, in
    // requests of their own: the server applies them before the latest state.
    std::vector<TaskUpdate> unsent;
    Status failure = retries.empty() ? Status::ok() : send_task_items(retries, unsent);
    if (failure.is_ok()) {
      failure = send_task_items(pending, unsent);
    } else {
      for (auto& t : pending) unsent.push_back(std::move(t));
    }
    if (!failure.is_ok()) {
      tasks = std::move(unsent);  // the caller retries them later
      return failure;
    }
  }
  while (!logs.empty()) {
    // Up to max_request_items lines and about max_request_bytes of messages (at least one line).
    size_t end = 0, bytes = 0;
    while (end < logs.size() && end < chunk && (end == 0 || bytes + logs[end].message.size() <= options_.max_request_bytes))
      bytes += logs[end++].message.size();
    json batch = json::array();
    for (size_t i = 0; i < end; ++i) {
      const auto& l = logs[i];
      json item = {{"flow_run_id", flow_run_id_}, {"level", log_level_name(l.level)},
                   {"message", l.message}, {"timestamp", format_rfc3339(l.timestamp)}};
      if (options_.run_attempt > 0) item["run_attempt"] = options_.run_attempt;
      if (!l.task.empty()) {
        item["task"] = l.task;
        item["map_index"] = l.map_index;
      }
      batch.push_back(std::move(item));
    }
    auto r = api_->write_logs(batch);
    if (!r && retryable(r.status())) return r.status();
    if (!r && r.status().code() == StatusCode::kTooLarge) {
      // The server takes no more of this run's lines (its log quota): say so once, and
      // send no more. What is buffered now or logged later is dropped and counted.
      bool first = false;
      {
        std::lock_guard lock(mu_);
        first = !logs_refused_;
        logs_refused_ = true;
        dropped_ += logs.size() + logs_.size();
        logs_.clear();
        last_error_ = r.status().message();
      }
      logs.clear();
      if (first) {
        std::string warning = "the server refuses further log lines of this run: " + r.status().message() +
                              "; log lines are no longer sent (task states are, and the run goes on)";
        if (options_.warn) options_.warn(warning);
        else std::cerr << "warning: " << warning << std::endl;
      }
      break;
    }
    if (!r) {
      std::lock_guard lock(mu_);
      dropped_ += end;
      last_error_ = r.status().message();
    }
    logs.erase(logs.begin(), logs.begin() + static_cast<ptrdiff_t>(end));
  }
  return Status::ok();
}

Status ServerReporter::flush() {
  std::lock_guard send_lock(send_mu_);
  std::vector<TaskUpdate> tasks;
  std::vector<LogLine> logs;
  {
    std::lock_guard lock(mu_);
    tasks.swap(tasks_);
    logs.swap(logs_);
  }
  Status st = send_locked_batch(tasks, logs);
  if (!st.is_ok()) {
    // Put back what was not sent, ahead of anything newer.
    std::lock_guard lock(mu_);
    tasks.insert(tasks.end(), tasks_.begin(), tasks_.end());
    tasks_.swap(tasks);
    logs.insert(logs.end(), logs_.begin(), logs_.end());
    logs_.swap(logs);
  }
  return st;
}

void ServerReporter::loop() {
  std::unique_lock lock(mu_);
  while (!closing_) {
    cv_.wait_for(lock, options_.flush_interval, [&] {
      return closing_ || tasks_.size() >= options_.batch_size || logs_.size() >= options_.batch_size;
    });
    if (closing_) break;
    if (tasks_.empty() && logs_.empty()) continue;
    lock.unlock();
    (void)flush();  // a failure keeps the batch for the next round
    lock.lock();
  }
}

Status ServerReporter::close() {
  {
    std::lock_guard lock(mu_);
    if (closing_ && !thread_.joinable()) return Status::ok();
    closing_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The final flush, retried while the server is unreachable (restarting), up to
  // close_wait; what it refuses as invalid is dropped by flush() itself.
  Clock& clock = options_.clock != nullptr ? *options_.clock : system_clock();
  const auto deadline = clock.steady_now() + options_.close_wait;
  std::chrono::milliseconds backoff(200);
  for (;;) {
    Status st = flush();
    if (st.is_ok() || clock.steady_now() + backoff > deadline) return st;
    clock.sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace culvert::runtime
