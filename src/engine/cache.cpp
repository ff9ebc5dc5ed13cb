// Storage of task values: results, targets and the cache (keys, expiry).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <signal.h>
#include <thread>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "engine/run_core.hpp"

namespace culvert {
namespace detail {

// ---- storage: results, targets, cache ----

Result<ObjectStore*> RunCore::store_for(const std::string& uri) {
  size_t p = uri.find("://");
  std::string scheme = p == std::string::npos ? uri : uri.substr(0, p);
  std::lock_guard lk(store_mu_);
  auto it = stores_.find(scheme);
  if (it != stores_.end()) return it->second.get();
  auto opened = opts.open_store ? opts.open_store(uri) : open_object_store(uri);
  if (!opened) return opened.status();
  ObjectStore* raw = opened->get();
  stores_.emplace(scheme, std::move(*opened));
  return raw;
}

std::string RunCore::render(const std::string& tmpl, const Node& node, int map_index) const {
  return render_template(tmpl, flow.name, flow_run_id, node.name, map_index, date);
}

std::string RunCore::cache_uri(const TaskRunRt* tr, const Node& node) {
  std::string digest_input;
  bool opaque_input = false;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const auto& in = node.inputs[i];
    const std::any* v = input(in);
    if (node.input_encoders[i] != nullptr && v->has_value()) {
      put_item(digest_input, node.input_encoders[i](*v));
    } else {
      put_item(digest_input, in.is_param ? "param:" + flow.params[in.index].name
                                         : "task:" + flow.nodes[in.index].name);
      opaque_input = true;
    }
  }
  // An input without a codec cannot be hashed: assume it follows from the parameters.
  if (opaque_input) {
    for (const auto& [k, v] : param_text) {
      put_item(digest_input, k);
      put_item(digest_input, v);
    }
  }
  std::string digest = sha256_hex(digest_input);
  std::string key;
  if (node.opt->cache_key) {
    CacheKeyContext c{flow.name, node.name, tr->map_index, digest, &param_text};
    key = node.opt->cache_key(c);
  } else {
    key = flow.name + "\n" + node.name + "\n" + std::to_string(tr->map_index) + "\n" + digest;
  }
  return join_uri(cache_base_, flow.name + "/" + node.name + "/" + sha256_hex(key));
}

bool RunCore::try_cached(TaskRunRt* tr, const Node& node) {
  const NodeOptions& o = *node.opt;
  auto load = [&](const std::string& bytes, const std::string& from) -> bool {
    if (node.ops.has_value) {
      std::any v;
      if (!node.ops.decode(bytes, v)) {
        log(tr, LogLevel::kWarning, "ignoring " + from + ": it does not decode");
        return false;
      }
      tr->out = std::move(v);
    }
    return true;
  };
  if (!o.target_uri.empty()) {
    std::string uri = render(o.target_uri, node, tr->map_index);
    auto store = store_for(uri);
    if (!store) {
      log(tr, LogLevel::kWarning, "target " + uri + ": " + store.status().message());
    } else {
      auto data = (*store)->get(uri);
      if (data && load(*data, "target " + uri)) {
        finalize(tr, State::kCached, "target exists: " + uri);
        return true;
      }
      if (!data && data.status().code() != StatusCode::kNotFound)
        log(tr, LogLevel::kWarning, "target " + uri + ": " + data.status().message());
    }
  }
  if (o.cache_for.count() > 0) {
    std::string uri;
    try {
      uri = cache_uri(tr, node);
    } catch (const std::exception& e) {
      log(tr, LogLevel::kWarning, std::string("cache key failed: ") + e.what());
      return false;
    }
    auto store = store_for(uri);
    if (!store) {
      log(tr, LogLevel::kWarning, "cache " + uri + ": " + store.status().message());
      return false;
    }
    auto data = (*store)->get(uri);
    if (!data) {
      if (data.status().code() != StatusCode::kNotFound)
        log(tr, LogLevel::kWarning, "cache " + uri + ": " + data.status().message());
      return false;
    }
    // "culvert-cache 1\n<expires unix ms>\n<payload>"
    const std::string& d = *data;
    size_t a = d.find('\n');
    size_t b = a == std::string::npos ? a : d.find('\n', a + 1);
    if (a == std::string::npos || b == std::string::npos || d.compare(0, a, "culvert-cache 1") != 0) {
      log(tr, LogLevel::kWarning, "ignoring malformed cache entry " + uri);
      return false;
    }
    int64_t expires = std::strtoll(d.c_str() + a + 1, nullptr, 10);
    if (to_unix_ms(clock.now()) >= expires) return false;
    if (!load(d.substr(b + 1), "cache entry " + uri)) return false;
    finalize(tr, State::kCached, "cached until " + format_rfc3339(from_unix_ms(expires)));
    return true;
  }
  return false;
}

Status RunCore::persist(TaskRunRt* tr, const Node& node) {
  const NodeOptions* o = node.opt.get();
  if (o == nullptr || (o->result_uri.empty() && o->target_uri.empty() && o->cache_for.count() == 0)) {
    return Status::ok();
  }
  std::string bytes;
  if (node.ops.has_value) {
    if (!tr->out.has_value()) return internal_error("the task produced no value");
    // A binding's serializer may fail on the value (a Python object pickle refuses).
    try {
      bytes = node.ops.encode(tr->out);
    } catch (const std::exception& e) {
      return invalid_argument(std::string("encoding the value failed: ") + e.what());
    }
  }
  auto put = [&](const std::string& uri, std::string_view data) -> Status {
    auto store = store_for(uri);
    if (!store) return store.status();
    return (*store)->put(uri, data);
  };
  if (!o->result_uri.empty()) {
    Status s = put(render(o->result_uri, node, tr->map_index), bytes);
    if (!s) return s;
  }
  if (!o->target_uri.empty()) {
    Status s = put(render(o->target_uri, node, tr->map_index), bytes);
    if (!s) return s;
  }
  if (o->cache_for.count() > 0) {
    int64_t expires = to_unix_ms(clock.now() + o->cache_for);
    std::string uri;
    try {
      uri = cache_uri(tr, node);
    } catch (const std::exception& e) {
      return invalid_argument(std::string("cache key failed: ") + e.what());
    }
    Status s = put(uri, "culvert-cache 1\n" + std::to_string(expires) + "\n" + bytes);
    if (!s) return s;
  }
  return Status::ok();
}


}  // namespace detail
}  // namespace culvert
