#include "cli/flow_sources.hpp"

namespace culvert::cli {

// One line per flow source, in the order they are asked: X(name) for a
// `FlowSource name_flow_source()` defined in flow_source_<name>.cpp. binary stays last:
// it takes every path.
#define CULVERT_FLOW_SOURCES(X) \
  X(yaml)                       \
  X(binary)

#define CULVERT_DECLARE_FLOW_SOURCE(name) FlowSource name##_flow_source();
CULVERT_FLOW_SOURCES(CULVERT_DECLARE_FLOW_SOURCE)
#undef CULVERT_DECLARE_FLOW_SOURCE

const std::vector<FlowSource>& flow_sources() {
#define CULVERT_LIST_FLOW_SOURCE(name) name##_flow_source(),
  static const std::vector<FlowSource> sources = {CULVERT_FLOW_SOURCES(CULVERT_LIST_FLOW_SOURCE)};
#undef CULVERT_LIST_FLOW_SOURCE
  return sources;
}

const FlowSource& flow_source_for(const FlowSourceRequest& request) {
  for (const auto& s : flow_sources())
    if (s.recognises(request)) return s;
  return flow_sources().back();
}

}  // namespace culvert::cli
