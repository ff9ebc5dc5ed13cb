// Building a Flow whose task signatures are known only at run time, for language
// bindings (the Python SDK): tasks take any number of inputs, values are std::any
// with codecs given as closures, and options are set on an untyped handle. The typed
// API of <culvert/flow.hpp> is built on the same private entry points.
#pragma once

#include <culvert/flow.hpp>

#include "engine/flow_impl.hpp"

#include <optional>
#include <string>
#include <vector>

namespace culvert::detail {

struct DynamicFlow {
  // A parameter of type T (std::int64_t, double, bool or std::string); without a
  // default it is required.
  template <typename T>
  static uint32_t add_param(Flow& flow, std::string name, const std::optional<T>& default_value) {
    if (!default_value) {
      return flow.add_param(std::move(name), ParamType<T>::name, std::nullopt, std::nullopt, &parse_param<T>,
                            std::any());
    }
    return flow.add_param(std::move(name), ParamType<T>::name, ParamType<T>::to_json(*default_value),
                          Flow::raw_text(*default_value), &parse_param<T>, std::any(*default_value));
  }
  static uint32_t add_task(Flow& flow, std::string name, Body body, std::vector<InputRef> inputs,
                           std::vector<AnyEncode> input_encoders, ValueOps ops) {
    return flow.add_task(std::move(name), std::move(body), std::move(inputs), std::move(input_encoders),
                         std::move(ops));
  }
  static uint32_t add_map(Flow& flow, std::string name, MapOps ops, InputRef input, AnyEncode input_encoder,
                          ValueOps ops_out) {
    return flow.add_map(std::move(name), std::move(ops), input, std::move(input_encoder), std::move(ops_out));
  }
  // What `describe` calls task `index`'s code ("python"). REQUIRES: a static string.
  static void set_code_kind(Flow& flow, uint32_t index, const char* kind) { flow.impl_->nodes[index].code_kind = kind; }
  // An untyped handle of task `index`, for its options (TaskBase's setters).
  struct Handle : TaskBase {
    Handle(FlowImpl* flow, uint32_t index) : TaskBase(flow, index) {}
    using TaskBase::add_after;
    using TaskBase::add_on_failure;
    using TaskBase::add_on_state_change;
    using TaskBase::set_backoff;
    using TaskBase::set_cache_for;
    using TaskBase::set_cache_key;
    using TaskBase::set_distributed;
    using TaskBase::set_env;
    using TaskBase::set_jitter;
    using TaskBase::set_kill_grace;
    using TaskBase::set_reference;
    using TaskBase::set_result;
    using TaskBase::set_retries;
    using TaskBase::set_retry_on;
    using TaskBase::set_tags;
    using TaskBase::set_target;
    using TaskBase::set_timeout;
    using TaskBase::set_trigger;
    using TaskBase::set_working_dir;
  };
  static Handle handle(Flow& flow, uint32_t index) { return Handle(flow.impl_.get(), index); }
};

}  // namespace culvert::detail
