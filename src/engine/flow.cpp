// Flow building, validation, `describe` and `graph --dot`.
#include <culvert/flow.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/cron.hpp"
#include "core/timefmt.hpp"
#include "engine/flow_impl.hpp"
#include "engine/json_writer.hpp"

namespace culvert {

const char* trigger_name(Trigger t) {
  switch (t) {
    case Trigger::kAllSuccessful: return "all_successful";
    case Trigger::kAllFinished: return "all_finished";
    case Trigger::kAnyFailed: return "any_failed";
    case Trigger::kAllFailed: return "all_failed";
    case Trigger::kAnySuccessful: return "any_successful";
  }
  return "?";
}

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARNING";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}

std::string json_quote(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

namespace detail {

JsonWriter& JsonWriter::num_double(double v) {
  sep();
  if (!std::isfinite(v)) {
    out_ += "null";
  } else {
    std::ostringstream os;
    os.precision(17);
    os << v;
    out_ += os.str();
  }
  return *this;
}

namespace {
constexpr std::string_view kPlaceholders[] = {"flow_name", "flow_run_id", "task_name",
                                              "map_index", "date"};
}

std::string render_template(std::string_view tmpl, std::string_view flow_name,
                            std::string_view flow_run_id, std::string_view task_name,
                            int map_index, std::string_view date) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '{') {
      size_t close = tmpl.find('}', i);
      if (close != std::string_view::npos) {
        std::string_view key = tmpl.substr(i + 1, close - i - 1);
        bool known = true;
        if (key == "flow_name") out += flow_name;
        else if (key == "flow_run_id") out += flow_run_id;
        else if (key == "task_name") out += task_name;
        else if (key == "map_index") out += std::to_string(map_index);
        else if (key == "date") out += date;
        else known = false;
        if (known) {
          i = close + 1;
          continue;
        }
      }
    }
    out += tmpl[i++];
  }
  return out;
}

std::vector<std::string> unknown_placeholders(std::string_view tmpl) {
  std::vector<std::string> out;
  size_t i = 0;
  while ((i = tmpl.find('{', i)) != std::string_view::npos) {
    size_t close = tmpl.find('}', i);
    if (close == std::string_view::npos) break;
    std::string_view key = tmpl.substr(i + 1, close - i - 1);
    if (std::find(std::begin(kPlaceholders), std::end(kPlaceholders), key) == std::end(kPlaceholders))
      out.emplace_back(key);
    i = close + 1;
  }
  return out;
}

Status FlowImpl::validate() const {
  std::lock_guard lk(cache_mu_);
  if (cached_gen_ != generation) {
    cached_status_ = validate_uncached();
    cached_plan_ = cached_status_.is_ok() ? plan() : Plan{};
    cached_gen_ = generation;
  }
  return cached_status_;
}

Status FlowImpl::validate_uncached() const {
  std::vector<std::string> errs = errors;
  std::vector<std::string_view> names;
  names.reserve(nodes.size());
  for (const auto& n : nodes) names.push_back(n.name);
  std::sort(names.begin(), names.end());
  for (size_t i = 1; i < names.size(); ++i) {
    if (names[i] == names[i - 1] && (i < 2 || names[i - 2] != names[i]))
      errs.push_back("two tasks are named '" + std::string(names[i]) + "'");
  }
  for (const auto& n : nodes) {
    if (n.name.empty()) errs.push_back("a task has an empty name");
    if (n.opt) {
      const auto& o = *n.opt;
      for (const auto* t : {&o.result_uri, &o.target_uri}) {
        for (const auto& p : unknown_placeholders(*t))
          errs.push_back("task '" + n.name + "': unknown placeholder {" + p + "} in '" + *t + "'");
      }
      if ((!o.result_uri.empty() || !o.target_uri.empty() || o.cache_for.count() > 0) &&
          n.ops.has_value && n.ops.encode == nullptr) {
        // A non-void value without a usable codec (e.g. not default-constructible).
        errs.push_back("task '" + n.name + "': result/target/cache need a codec for its value type");
      }
    }
  }
  for (const auto& n : nodes) {
    if (n.opt && n.opt->distributed) validate_distributed(n, errs);
  }
  std::unordered_set<std::string_view> pnames;
  for (const auto& p : params) {
    if (!pnames.insert(p.name).second) errs.push_back("two parameters are named '" + p.name + "'");
  }
  for (const auto& [tag, limit] : concurrency_limits) {
    if (limit < 1) errs.push_back("concurrency limit for tag '" + tag + "' must be at least 1");
  }
  if (const auto* c = std::get_if<Cron>(&schedule)) {
    if (auto expr = CronExpr::parse(c->expression); !expr) errs.push_back("schedule: " + expr.status().message());
    // The zone's name is looked up in the time-zone database only by Flow::validate()
    // (describe, register): running the flow never needs that database.
    if (c->timezone.empty()) errs.push_back("schedule: time zone is empty (expected an IANA name such as \"Europe/Berlin\")");
    if (c->catchup != "skip" && c->catchup != "latest" && c->catchup != "all")
      errs.push_back("catchup must be skip, latest or all (got '" + c->catchup + "')");
  }
  if (const auto* iv = std::get_if<Interval>(&schedule)) {
    if (iv->every.count() <= 0) errs.push_back("interval schedule must be positive");
  }
  if (!storage.empty() && !storage.starts_with("file:///") && !storage.starts_with("s3://"))
    errs.push_back("storage '" + storage + "' must be file:///dir or s3://bucket/prefix");
  // Cycles can only come from after(); Kahn's algorithm finds them.
  if (errs.empty()) {
    Plan p = plan();
    std::vector<uint32_t> indeg(nodes.size());
    std::vector<uint32_t> ready;
    for (uint32_t i = 0; i < nodes.size(); ++i) {
      indeg[i] = static_cast<uint32_t>(p.upstream_count(i));
      if (indeg[i] == 0) ready.push_back(i);
    }
    size_t seen = 0;
    while (!ready.empty()) {
      uint32_t n = ready.back();
      ready.pop_back();
      ++seen;
      for (uint32_t k = p.down_off[n]; k < p.down_off[n + 1]; ++k)
        if (--indeg[p.down[k]] == 0) ready.push_back(p.down[k]);
    }
    if (seen != nodes.size()) {
      std::string cyc;
      for (uint32_t i = 0; i < nodes.size(); ++i)
        if (indeg[i] > 0) cyc += (cyc.empty() ? "" : ", ") + nodes[i].name;
      errs.push_back("the task graph has a cycle through: " + cyc);
    }
  }
  if (errs.empty()) return Status::ok();
  std::string msg = "flow '" + name + "' is invalid: ";
  for (size_t i = 0; i < errs.size(); ++i) msg += (i ? "; " : "") + errs[i];
  return invalid_argument(msg);
}

std::string distributed_storage(const FlowImpl& flow, const Node& node) {
  if (!node.opt || !node.opt->distributed) return {};
  return node.opt->distributed->storage.empty() ? flow.result_storage : node.opt->distributed->storage;
}

size_t distributed_chunk_size(const Distributed& d, size_t count) {
  // At most kMaxDistributedChunks chunks (each a child run): a smaller size is raised.
  const size_t floor = std::max<size_t>(1, (count + kMaxDistributedChunks - 1) / kMaxDistributedChunks);
  if (d.chunk_size > 0) return std::max(floor, static_cast<size_t>(d.chunk_size));
  const size_t workers = static_cast<size_t>(std::max(1, d.max_workers));
  return std::max(floor, (count + workers - 1) / workers);
}

void FlowImpl::validate_distributed(const Node& n, std::vector<std::string>& errs) const {
  const Distributed& d = *n.opt->distributed;
  const std::string what = "task '" + n.name + "' is distributed";
  if (n.kind != NodeKind::kMap) {
    errs.push_back(what + ", but only a mapped task (flow.map) can be");
    return;
  }
  if (d.max_workers < 1 || d.max_workers > 10000)
    errs.push_back(what + ": max_workers must be 1..10000 (got " + std::to_string(d.max_workers) + ")");
  if (d.chunk_size < 0 || d.chunk_size > 1000000)
    errs.push_back(what + ": chunk_size must be 1..1000000, or 0 for one chunk per worker (got " +
                   std::to_string(d.chunk_size) + ")");
  if (!n.map->encode_range || !n.map->decode_input)
    errs.push_back(what + ": its elements cross to the workers through storage, and their type has no codec "
                          "(give it one: docs/SDK.md \"Codecs\")");
  if (n.ops.has_value && (n.ops.encode == nullptr || n.ops.decode == nullptr))
    errs.push_back(what + ": its results come back through storage, and their type has no codec");
  const std::string st = distributed_storage(*this, n);
  if (st.empty()) {
    errs.push_back(what + ": its chunks' inputs and outputs need storage that every worker reaches; give the "
                          "flow .result_storage(\"s3://bucket/prefix\") (or file:///dir on a shared file system), "
                          "or the task .distributed({.storage = ...})");
  } else if (!st.starts_with("file:///") && !st.starts_with("s3://")) {
    errs.push_back(what + ": storage '" + st + "' must be file:///dir or s3://bucket/prefix");
  }
}

Plan FlowImpl::plan() const {
  Plan p;
  const uint32_t n = static_cast<uint32_t>(nodes.size());
  p.up_off.assign(n + 1, 0);
  std::vector<uint32_t> down_count(n + 1, 0);
  std::vector<uint32_t> tmp;
  // Upstream lists: data inputs then after(), de-duplicated.
  for (uint32_t i = 0; i < n; ++i) {
    tmp.clear();
    for (const auto& in : nodes[i].inputs)
      if (!in.is_param) tmp.push_back(in.index);
    tmp.insert(tmp.end(), nodes[i].after.begin(), nodes[i].after.end());
    std::sort(tmp.begin(), tmp.end());
    tmp.erase(std::unique(tmp.begin(), tmp.end()), tmp.end());
    p.up.insert(p.up.end(), tmp.begin(), tmp.end());
    p.up_off[i + 1] = static_cast<uint32_t>(p.up.size());
    for (uint32_t u : tmp) ++down_count[u];
  }
  p.down_off.assign(n + 1, 0);
  for (uint32_t i = 0; i < n; ++i) p.down_off[i + 1] = p.down_off[i] + down_count[i];
  p.down.resize(p.up.size());
  std::vector<uint32_t> fill(p.down_off.begin(), p.down_off.end() - 1);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t k = p.up_off[i]; k < p.up_off[i + 1]; ++k) p.down[fill[p.up[k]]++] = i;
  p.terminal.resize(n);
  for (uint32_t i = 0; i < n; ++i) p.terminal[i] = p.down_off[i + 1] == p.down_off[i];
  return p;
}

}  // namespace detail

using detail::FlowImpl;
using detail::Node;
using detail::NodeKind;

Flow::Flow(std::string name) : impl_(std::make_unique<FlowImpl>(std::move(name))) {
  if (impl_->name.empty()) impl_->add_error("the flow's name is empty");
}
Flow::~Flow() = default;
Flow::Flow(Flow&&) noexcept = default;
Flow& Flow::operator=(Flow&&) noexcept = default;

const std::string& Flow::name() const { return impl_->name; }
size_t Flow::task_count() const { return impl_->nodes.size(); }
Status Flow::validate() const {
  if (Status s = impl_->validate(); !s) return s;
  return impl_->validate_schedule_zone();
}

Status FlowImpl::validate_schedule_zone() const {
  const auto* c = std::get_if<Cron>(&schedule);
  if (c == nullptr) return Status::ok();
  if (auto zone = TimeZone::find(c->timezone); !zone)
    return invalid_argument("flow '" + name + "' is invalid: schedule: " + zone.status().message());
  return Status::ok();
}

void Flow::check_owners(const std::string& task, std::initializer_list<const detail::FlowImpl*> owners) {
  for (const auto* o : owners) {
    if (o != impl_.get()) {
      impl_->add_error("task '" + task + "' takes a handle of another flow");
      return;
    }
  }
}

uint32_t Flow::add_param(std::string name, const char* type, std::optional<std::string> default_json,
                         std::optional<std::string> default_text, detail::ParamParse parse,
                         std::any default_value) {
  ++impl_->generation;
  impl_->params.push_back({std::move(name), type, std::move(default_json), std::move(default_text),
                           parse, std::move(default_value)});
  return static_cast<uint32_t>(impl_->params.size() - 1);
}

uint32_t Flow::add_task(std::string name, detail::Body body, std::vector<detail::InputRef> inputs,
                        std::vector<detail::AnyEncode> input_encoders, detail::ValueOps ops) {
  ++impl_->generation;
  Node n;
  n.name = std::move(name);
  n.kind = NodeKind::kCpp;
  n.body = std::move(body);
  n.inputs = std::move(inputs);
  n.input_encoders = std::move(input_encoders);
  n.ops = std::move(ops);
  impl_->nodes.push_back(std::move(n));
  return static_cast<uint32_t>(impl_->nodes.size() - 1);
}

uint32_t Flow::add_map(std::string name, detail::MapOps ops, detail::InputRef input,
                       detail::AnyEncode input_encoder, detail::ValueOps ops_out) {
  ++impl_->generation;
  Node n;
  n.name = std::move(name);
  n.kind = NodeKind::kMap;
  n.map = std::make_unique<detail::MapOps>(std::move(ops));
  n.inputs = {input};
  n.input_encoders = {input_encoder};
  n.ops = std::move(ops_out);
  impl_->nodes.push_back(std::move(n));
  return static_cast<uint32_t>(impl_->nodes.size() - 1);
}

ShellTask Flow::shell(std::string name, std::string command) {
  ++impl_->generation;
  Node n;
  n.name = std::move(name);
  n.kind = NodeKind::kShell;
  if (command.empty()) impl_->add_error("command task '" + n.name + "' has an empty command");
  n.options().command = std::move(command);
  impl_->nodes.push_back(std::move(n));
  return ShellTask(impl_.get(), static_cast<uint32_t>(impl_->nodes.size() - 1));
}

Flow& Flow::description(std::string text) {
  ++impl_->generation;
  impl_->description = std::move(text);
  return *this;
}
Flow& Flow::run_config(RunConfig config) {
  ++impl_->generation;
  impl_->run_config = std::move(config);
  return *this;
}
Flow& Flow::storage(std::string uri) {
  ++impl_->generation;
  impl_->storage = std::move(uri);
  return *this;
}
Flow& Flow::schedule(ScheduleSpec s) {
  ++impl_->generation;
  impl_->schedule = std::move(s);
  return *this;
}
Flow& Flow::max_run_retries(int n) {
  ++impl_->generation;
  if (n < 0) impl_->add_error("max_run_retries must not be negative");
  impl_->max_run_retries = n;
  return *this;
}
Flow& Flow::concurrency_limit(std::string tag, int limit) {
  ++impl_->generation;
  impl_->concurrency_limits[std::move(tag)] = limit;
  return *this;
}
Flow& Flow::result_storage(std::string uri) {
  ++impl_->generation;
  impl_->result_storage = std::move(uri);
  return *this;
}
Flow& Flow::cache_storage(std::string uri) {
  ++impl_->generation;
  impl_->cache_storage = std::move(uri);
  return *this;
}
Flow& Flow::on_state_change(std::function<void(const FlowRunEvent&)> fn) {
  ++impl_->generation;
  impl_->on_state_change.push_back(std::move(fn));
  return *this;
}
Flow& Flow::on_failure(std::function<void(const FlowRunEvent&)> fn) {
  ++impl_->generation;
  impl_->on_failure.push_back(std::move(fn));
  return *this;
}

// ---- task handles ----

const std::string& TaskBase::name() const { return flow_->nodes[index_].name; }

void TaskBase::set_retries(int n, Millis delay) {
  if (n < 0 || delay.count() < 0) flow_->add_error("task '" + name() + "': retries and delay must not be negative");
  auto& o = flow_->node(index_).options();
  o.retries = n;
  o.retry_delay = delay;
}
void TaskBase::set_backoff(double factor, Millis max_delay) {
  if (!(factor >= 1.0)) flow_->add_error("task '" + name() + "': retry backoff factor must be >= 1");
  auto& o = flow_->node(index_).options();
  o.backoff = factor;
  o.max_delay = max_delay;
}
void TaskBase::set_jitter(double fraction) {
  if (!(fraction >= 0.0 && fraction <= 1.0)) flow_->add_error("task '" + name() + "': retry jitter must be in [0, 1]");
  flow_->node(index_).options().jitter = fraction;
}
void TaskBase::set_retry_on(std::function<bool(const TaskFailure&)> pred) {
  flow_->node(index_).options().retry_on = std::move(pred);
}
void TaskBase::set_timeout(Millis t) {
  if (t.count() <= 0) flow_->add_error("task '" + name() + "': timeout must be positive");
  flow_->node(index_).options().timeout = t;
}
void TaskBase::set_trigger(Trigger t) { flow_->node(index_).trigger = t; }
void TaskBase::add_after(const TaskBase& other) {
  if (other.flow_ != flow_) {
    flow_->add_error("task '" + name() + "': after() names a task of another flow");
    return;
  }
  if (other.index_ == index_) {
    flow_->add_error("task '" + name() + "' cannot run after itself");
    return;
  }
  flow_->node(index_).after.push_back(other.index_);
}
void TaskBase::set_tags(std::vector<std::string> tags) { flow_->node(index_).options().tags = std::move(tags); }
void TaskBase::set_reference(bool on) { flow_->node(index_).reference = on; }
void TaskBase::set_cache_for(Millis d) {
  if (d.count() <= 0) flow_->add_error("task '" + name() + "': cache_for must be positive");
  flow_->node(index_).options().cache_for = d;
}
void TaskBase::set_cache_key(std::function<std::string(const CacheKeyContext&)> fn) {
  flow_->node(index_).options().cache_key = std::move(fn);
}
void TaskBase::set_result(std::string uri_template) { flow_->node(index_).options().result_uri = std::move(uri_template); }
void TaskBase::set_target(std::string uri_template) { flow_->node(index_).options().target_uri = std::move(uri_template); }
void TaskBase::add_on_state_change(std::function<void(const TaskRunEvent&)> fn) {
  flow_->node(index_).options().on_state_change.push_back(std::move(fn));
}
void TaskBase::add_on_failure(std::function<void(const TaskRunEvent&)> fn) {
  flow_->node(index_).options().on_failure.push_back(std::move(fn));
}
void TaskBase::set_env(std::string key, std::string value) {
  flow_->node(index_).options().env[std::move(key)] = std::move(value);
}
void TaskBase::set_working_dir(std::string dir) { flow_->node(index_).options().working_dir = std::move(dir); }
void TaskBase::set_kill_grace(Millis d) { flow_->node(index_).options().kill_grace = d; }
void TaskBase::set_distributed(Distributed d) {
  flow_->node(index_).options().distributed = std::make_shared<const Distributed>(std::move(d));
}

// ---- describe ----

namespace {

using detail::JsonWriter;

void write_strings(JsonWriter& w, const std::vector<std::string>& v) {
  w.begin_array();
  for (const auto& s : v) w.str(s);
  w.end_array();
}
void write_env(JsonWriter& w, const EnvMap& env) {
  w.begin_object();
  for (const auto& [k, v] : env) w.key(k).str(v);
  w.end_object();
}

const std::vector<std::string>& config_labels(const RunConfig& rc) {
  return std::visit([](const auto& c) -> const std::vector<std::string>& { return c.labels; }, rc);
}

void write_run_config(JsonWriter& w, const std::optional<RunConfig>& rc) {
  if (!rc) {
    w.begin_object().key("type").str("local").key("labels").begin_array().end_array();
    w.key("env").begin_object().end_object().key("working_dir").null().end_object();
    return;
  }
  w.begin_object();
  std::visit(
      [&](const auto& c) {
        using C = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<C, LocalRun>) {
          w.key("type").str("local");
          w.key("labels"); write_strings(w, c.labels);
          w.key("env"); write_env(w, c.env);
          w.key("working_dir").str_or_null(c.working_dir);
        } else if constexpr (std::is_same_v<C, DockerRun>) {
          w.key("type").str("docker");
          w.key("labels"); write_strings(w, c.labels);
          w.key("env"); write_env(w, c.env);
          w.key("image").str(c.image);
          w.key("network_mode").str_or_null(c.network_mode);
          w.key("volumes"); write_strings(w, c.volumes);
          w.key("cpu").str_or_null(c.cpu);
          w.key("memory").str_or_null(c.memory);
        } else if constexpr (std::is_same_v<C, EcsRun>) {
          w.key("type").str("ecs");
          w.key("labels"); write_strings(w, c.labels);
          w.key("env"); write_env(w, c.env);
          w.key("image").str(c.image);
          w.key("cpu").str_or_null(c.cpu);
          w.key("memory").str_or_null(c.memory);
          w.key("task_role_arn").str_or_null(c.task_role_arn);
          w.key("execution_role_arn").str_or_null(c.execution_role_arn);
          w.key("cluster").str_or_null(c.cluster);
          w.key("subnets"); write_strings(w, c.subnets);
          w.key("security_groups"); write_strings(w, c.security_groups);
          w.key("assign_public_ip");
          if (c.assign_public_ip) w.boolean(*c.assign_public_ip); else w.null();
          w.key("task_definition");
          if (c.task_definition.empty()) w.null(); else w.raw(c.task_definition);
          w.key("run_task_kwargs");
          if (c.run_task_kwargs.empty()) w.begin_object().end_object(); else w.raw(c.run_task_kwargs);
        } else {
          w.key("type").str("slurm");
          w.key("labels"); write_strings(w, c.labels);
          w.key("env"); write_env(w, c.env);
          w.key("partition").str_or_null(c.partition);
          w.key("cpus");
          if (c.cpus > 0) w.num(c.cpus); else w.null();
          w.key("memory").str_or_null(c.memory);
          w.key("time_limit").str_or_null(c.time_limit);
          w.key("extra_options"); write_strings(w, c.extra_options);
        }
      },
      *rc);
  w.end_object();
}

void write_schedule_common(JsonWriter& w, const std::map<std::string, std::string>& params,
                           const std::string& catchup, bool active) {
  w.key("parameters").begin_object();
  for (const auto& [k, v] : params) w.key(k).str(v);
  w.end_object();
  w.key("catchup").str(catchup);
  w.key("active").boolean(active);
}

}  // namespace

std::string Flow::describe_json() const {
  const FlowImpl& f = *impl_;
  JsonWriter w;
  w.begin_object();
  w.key("name").str(f.name);
  w.key("description").str(f.description);
  w.key("tasks").begin_array();
  bool any_reference = false;
  for (const auto& n : f.nodes) any_reference |= n.reference;
  detail::Plan plan = f.plan();
  for (uint32_t i = 0; i < f.nodes.size(); ++i) {
    const Node& n = f.nodes[i];
    static const detail::NodeOptions kDefaults;
    const detail::NodeOptions& o = n.opt ? *n.opt : kDefaults;
    w.begin_object();
    w.key("name").str(n.name);
    w.key("kind").str(n.kind == NodeKind::kShell ? "shell" : n.code_kind);
    if (n.kind == NodeKind::kShell) {
      w.key("command").str(o.command);
      w.key("env"); write_env(w, o.env);
      w.key("working_dir").str_or_null(o.working_dir);
    }
    w.key("tags"); write_strings(w, o.tags);
    w.key("retries").num(o.retries);
    w.key("retry_delay_ms").num(o.retry_delay.count());
    w.key("retry_backoff").num_double(o.backoff);
    w.key("retry_max_delay_ms").num(o.max_delay.count());
    w.key("retry_jitter").num_double(o.jitter);
    w.key("timeout_ms").num(o.timeout.count());
    w.key("trigger").str(trigger_name(n.trigger));
    w.key("mapped").boolean(n.kind == NodeKind::kMap);
    w.key("reference").boolean(any_reference ? n.reference : plan.terminal[i] != 0);
    w.key("cache_for_ms").num(o.cache_for.count());
    w.key("result").str_or_null(o.result_uri);
    w.key("target").str_or_null(o.target_uri);
    if (o.distributed) {
      const Distributed& d = *o.distributed;
      w.key("distributed").begin_object();
      w.key("max_workers").num(d.max_workers);
      w.key("chunk_size").num(d.chunk_size);
      w.key("storage").str(detail::distributed_storage(f, n));
      if (d.run_config) {
        w.key("run_config");
        write_run_config(w, d.run_config);
      }
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();
  w.key("edges").begin_array();
  for (uint32_t i = 0; i < f.nodes.size(); ++i) {
    const Node& n = f.nodes[i];
    std::vector<std::pair<uint32_t, bool>> ups;
    for (const auto& in : n.inputs)
      if (!in.is_param) ups.emplace_back(in.index, true);
    for (uint32_t a : n.after) ups.emplace_back(a, false);
    std::vector<uint32_t> seen;
    for (auto [u, data] : ups) {
      if (std::find(seen.begin(), seen.end(), u) != seen.end()) continue;
      seen.push_back(u);
      bool is_data = data;
      for (auto [u2, d2] : ups) is_data |= (u2 == u && d2);
      w.begin_object().key("from").str(f.nodes[u].name).key("to").str(n.name).key("data").boolean(is_data).end_object();
    }
  }
  w.end_array();
  w.key("parameters").begin_array();
  for (const auto& p : f.params) {
    w.begin_object().key("name").str(p.name).key("type").str(p.type);
    if (p.default_json) w.key("default").raw(*p.default_json);
    w.key("required").boolean(!p.default_json.has_value());
    w.end_object();
  }
  w.end_array();
  w.key("run_config");
  write_run_config(w, f.run_config);
  w.key("storage").str_or_null(f.storage);
  if (!f.result_storage.empty()) w.key("result_storage").str(f.result_storage);
  w.key("labels");
  write_strings(w, f.run_config ? config_labels(*f.run_config) : std::vector<std::string>{});
  w.key("schedule");
  if (const auto* c = std::get_if<Cron>(&f.schedule)) {
    w.begin_object().key("type").str("cron").key("cron").str(c->expression).key("timezone").str(c->timezone);
    write_schedule_common(w, c->parameters, c->catchup, c->active);
    w.end_object();
  } else if (const auto* iv = std::get_if<Interval>(&f.schedule)) {
    w.begin_object().key("type").str("interval").key("interval_seconds").num(iv->every.count());
    w.key("anchor").str(format_rfc3339(iv->anchor.value_or(SysTime{})));
    write_schedule_common(w, iv->parameters, iv->catchup, iv->active);
    w.end_object();
  } else {
    w.null();
  }
  w.key("max_run_retries").num(f.max_run_retries);
  w.key("concurrency_limits").begin_object();
  for (const auto& [tag, limit] : f.concurrency_limits) w.key(tag).num(limit);
  w.end_object();
  w.end_object();
  return w.take();
}

std::string Flow::graph_dot() const {
  const FlowImpl& f = *impl_;
  std::string out = "digraph " + json_quote(f.name) + " {\n  rankdir=LR;\n";
  for (const auto& n : f.nodes) {
    out += "  " + json_quote(n.name);
    if (n.kind == NodeKind::kShell) out += " [shape=box]";
    else if (n.kind == NodeKind::kMap) out += " [shape=box3d, label=" + json_quote(n.name + " [map]") + "]";
    else out += " [shape=ellipse]";
    out += ";\n";
  }
  for (const auto& n : f.nodes) {
    std::vector<uint32_t> seen;
    for (const auto& in : n.inputs) {
      if (in.is_param) continue;
      if (std::find(seen.begin(), seen.end(), in.index) != seen.end()) continue;
      seen.push_back(in.index);
      out += "  " + json_quote(f.nodes[in.index].name) + " -> " + json_quote(n.name) + ";\n";
    }
    for (uint32_t a : n.after) {
      if (std::find(seen.begin(), seen.end(), a) != seen.end()) continue;
      seen.push_back(a);
      out += "  " + json_quote(f.nodes[a].name) + " -> " + json_quote(n.name) + " [style=dashed];\n";
    }
  }
  out += "}\n";
  return out;
}

}  // namespace culvert
