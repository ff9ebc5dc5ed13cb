#include "runtime/child_runs.hpp"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "client/http_client.hpp"

namespace culvert::runtime {

using nlohmann::json;

std::string chunk_uri(const std::string& storage, const std::string& parent_run_id, int parent_attempt,
                      const std::string& task, const char* side, int chunk) {
  static const char* kHex = "0123456789ABCDEF";
  std::string name;
  for (unsigned char c : task) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        (c == '.' && task != "." && task != "..")) {
      name += static_cast<char>(c);
    } else {
      name += '%';
      name += kHex[c >> 4];
      name += kHex[c & 15];
    }
  }
  return join_uri(storage, parent_run_id + "/" + std::to_string(parent_attempt) + "/" + name + "/" + side + "/" +
                               std::to_string(chunk));
}

namespace {

bool unreachable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kTimeout;
}

// Calls `call` again while the server is unreachable, for at most `wait`.
template <typename F>
auto with_retry(Clock& clock, std::chrono::milliseconds wait, F call) -> decltype(call()) {
  const auto deadline = clock.steady_now() + wait;
  std::chrono::milliseconds backoff(250);
  for (;;) {
    auto r = call();
    Status s = [&] {
      if constexpr (std::is_same_v<decltype(r), Status>) return r;
      else return r.status();
    }();
    if (s.is_ok() || !unreachable(s) || clock.steady_now() + backoff > deadline) return r;
    clock.sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

class ClientChildRuns final : public ChildRunsApi {
 public:
  ClientChildRuns(const std::string& url, const std::string& token)
      : api_(client::ClientOptions{.api_url = url, .api_token = token}) {}

  Status create(const std::string& parent, const std::string& task, const std::vector<ChunkRange>& chunks) override {
    json body = {{"task", task}, {"chunks", json::array()}};
    for (const auto& c : chunks) body["chunks"].push_back({{"chunk", c.chunk}, {"start", c.start}, {"end", c.end}});
    auto r = api_.call("POST", "/api/v1/flow-runs/" + client::url_encode(parent) + "/children", &body);
    if (!r) return r.status();
    if (!r->is_object() || !r->contains("children") || !(*r)["children"].is_array())
      return internal_error("the server's answer to creating child runs has no \"children\" list");
    return Status::ok();
  }

  Result<ChildListing> list(const std::string& parent, const std::string& task, int64_t final_above,
                            std::chrono::milliseconds wait) override {
    std::string target = "/api/v1/flow-runs/" + client::url_encode(parent) + "/children?task=" +
                         client::url_encode(task) + "&final_above=" + std::to_string(final_above) +
                         "&wait_ms=" + std::to_string(wait.count());
    auto r = api_.call("GET", target, nullptr, wait);
    if (!r) return r.status();
    const std::string what = "the server's listing of child runs";
    if (!r->is_object()) return internal_error(what + " is not a JSON object");
    auto list = r->find("children");
    if (list == r->end() || !list->is_array()) return internal_error(what + " has no \"children\" list");
    ChildListing out;
    auto f = r->find("final");
    if (f == r->end() || !f->is_number_integer()) return internal_error(what + ": \"final\" must be an integer");
    out.final_count = f->get<int64_t>();
    for (const auto& c : *list) {
      ChildRunInfo info;
      if (!c.is_object()) return internal_error(what + ": a child is not an object");
      auto str = [&](const char* key, std::string& dst, bool required) -> Status {
        auto it = c.find(key);
        if (it == c.end() || it->is_null()) {
          return required ? internal_error(what + ": a child has no \"" + std::string(key) + "\"") : Status::ok();
        }
        if (!it->is_string()) return internal_error(what + ": a child's \"" + std::string(key) + "\" is not a string");
        dst = it->get<std::string>();
        return Status::ok();
      };
      auto num = [&](const char* key, int64_t& dst, bool required) -> Status {
        auto it = c.find(key);
        if (it == c.end() || it->is_null()) {
          return required ? internal_error(what + ": a child has no \"" + std::string(key) + "\"") : Status::ok();
        }
        if (!it->is_number_integer())
          return internal_error(what + ": a child's \"" + std::string(key) + "\" is not an integer");
        dst = it->get<int64_t>();
        return Status::ok();
      };
      int64_t chunk = 0, run_count = 0;
      for (Status s : {str("id", info.id, true), str("state", info.state, true),
                       str("state_message", info.state_message, false), num("chunk", chunk, true),
                       num("start", info.start, true), num("end", info.end, true),
                       num("run_count", run_count, false)}) {
        if (!s) return s;
      }
      if (chunk < 0 || chunk > 100000000) return internal_error(what + ": a child's \"chunk\" is out of range");
      info.chunk = static_cast<int>(chunk);
      info.run_count = static_cast<int>(std::clamp<int64_t>(run_count, 0, 1000000));
      out.children.push_back(std::move(info));
    }
    return out;
  }

 private:
  client::ApiClient api_;
};

}  // namespace

std::unique_ptr<ChildRunsApi> make_client_child_runs(const std::string& api_url, const std::string& api_token) {
  return std::make_unique<ClientChildRuns>(api_url, api_token);
}

ChildRunDistributor::ChildRunDistributor(ApiFactory make_api, DistributorOptions options)
    : make_api_(std::move(make_api)), options_(std::move(options)) {}

Result<std::vector<ElementOutcome>> ChildRunDistributor::run(const DistributedMapCall& call) {
  Clock& clock = options_.clock != nullptr ? *options_.clock : system_clock();
  auto log = [&](LogLevel level, const std::string& line) {
    if (options_.log) options_.log(level, line);
  };
  auto opened = options_.open_store ? options_.open_store(call.storage) : open_object_store(call.storage);
  if (!opened)
    return Status(opened.status().code(), "cannot open the storage of distributed task '" + call.task + "' (" +
                                              call.storage + "): " + opened.status().message());
  ObjectStore& store = **opened;
  std::unique_ptr<ChildRunsApi> api_holder = make_api_();
  ChildRunsApi& api_ = *api_holder;
  const size_t cs = static_cast<size_t>(std::max(1, call.chunk_size));
  const size_t n_chunks = (call.count + cs - 1) / cs;
  const size_t max_workers = static_cast<size_t>(std::max(1, call.max_workers));
  const std::string& parent = options_.parent_run_id;
  const int attempt = options_.parent_attempt;
  auto uri = [&](const char* side, size_t c) {
    return chunk_uri(call.storage, parent, attempt, call.task, side, static_cast<int>(c));
  };
  auto range = [&](size_t c) { return std::pair{c * cs, std::min(call.count, (c + 1) * cs)}; };
  log(LogLevel::kInfo, "task '" + call.task + "': " + std::to_string(call.count) + " elements in " +
                           std::to_string(n_chunks) + " chunks of " + std::to_string(cs) + ", at most " +
                           std::to_string(max_workers) + " child runs at once");

  std::vector<ElementOutcome> out(call.count);
  std::vector<uint8_t> ended(n_chunks, 0);
  std::map<size_t, SteadyTime> crashed_since;
  std::vector<size_t> read;  // chunks whose outcomes were read: their objects go at the end
  size_t next = 0, n_ended = 0;
  int64_t server_final = 0;
  while (n_ended < n_chunks) {
    if (call.cancelled && call.cancelled()) return Status(StatusCode::kCancelled, "the flow run was cancelled");
    // Keep up to max_workers children unfinished.
    std::vector<ChunkRange> batch;
    while (next < n_chunks && (next - n_ended) < max_workers && batch.size() < 1000) {
      auto [b, e] = range(next);
      Status put = store.put(uri("in", next), call.encode_inputs(b, e));
      if (!put)
        return Status(put.code(), "cannot write the inputs of chunk " + std::to_string(next) + " of task '" +
                                      call.task + "' to " + uri("in", next) + ": " + put.message());
      batch.push_back({static_cast<int>(next), static_cast<int64_t>(b), static_cast<int64_t>(e)});
      ++next;
    }
    if (!batch.empty()) {
      Status s = with_retry(clock, options_.server_wait, [&] { return api_.create(parent, call.task, batch); });
      if (!s)
        return Status(s.code(), "the server did not create the child runs of task '" + call.task + "': " + s.message());
    }
    auto listing = with_retry(clock, options_.server_wait,
                              [&] { return api_.list(parent, call.task, server_final, options_.poll_wait); });
    if (!listing)
      return Status(listing.status().code(),
                    "cannot list the child runs of task '" + call.task + "': " + listing.status().message());
    server_final = listing->final_count;
    for (const auto& c : listing->children) {
      if (c.chunk < 0 || static_cast<size_t>(c.chunk) >= next || ended[static_cast<size_t>(c.chunk)]) continue;
      const size_t chunk = static_cast<size_t>(c.chunk);
      auto [b, e] = range(chunk);
      if (c.start != static_cast<int64_t>(b) || c.end != static_cast<int64_t>(e))
        return internal_error("the server's child run " + c.id + " of chunk " + std::to_string(chunk) + " covers [" +
                              std::to_string(c.start) + ", " + std::to_string(c.end) + "), not [" +
                              std::to_string(b) + ", " + std::to_string(e) + ")");
      auto st = parse_state(c.state);
      if (!st || !is_final(*st)) {
        crashed_since.erase(chunk);
        continue;
      }
      if (*st == State::kCrashed) {
        // The server may reschedule it (the flow's run retries): wait to see it stay.
        auto it = crashed_since.emplace(chunk, clock.steady_now()).first;
        if (clock.steady_now() - it->second < options_.crash_settle) continue;
      }
      ended[chunk] = 1;
      ++n_ended;
      std::string why;
      if (*st == State::kSuccess || *st == State::kFailed) {
        auto bytes = store.get(uri("out", chunk));
        if (bytes) {
          auto decoded = decode_chunk_outcomes(*bytes, e - b);
          if (decoded) {
            std::move(decoded->begin(), decoded->end(), out.begin() + static_cast<std::ptrdiff_t>(b));
            read.push_back(chunk);
            continue;
          }
          why = "; its outcomes at " + uri("out", chunk) + " are malformed: " + decoded.status().message();
        } else {
          why = "; it wrote no outcomes to " + uri("out", chunk) + " (" + bytes.status().message() + ")";
        }
      }
      std::string message = "chunk " + std::to_string(chunk) + " (elements " + std::to_string(b) + ".." +
                            std::to_string(e - 1) + ") ran as flow run " + c.id + ", which ended " + c.state +
                            (c.state_message.empty() ? "" : ": " + c.state_message) + why;
      log(LogLevel::kError, message);
      const State each = *st == State::kCancelled ? State::kCancelled : State::kFailed;
      for (size_t i = b; i < e; ++i) out[i] = ElementOutcome{each, 0, message, "", false};
    }
    if (n_ended < n_chunks && listing->children.empty() && next > 0)
      return internal_error("the server lists no child runs of task '" + call.task + "' after creating " +
                            std::to_string(next));
  }
  // Once no child writes any more (removing while others write the same prefix is
  // where some S3-compatible stores are weakest).
  for (size_t chunk : read) {
    (void)store.remove(uri("in", chunk));
    (void)store.remove(uri("out", chunk));
  }
  log(LogLevel::kInfo, "task '" + call.task + "': all " + std::to_string(n_chunks) + " chunks ended");
  return out;
}

}  // namespace culvert::runtime
