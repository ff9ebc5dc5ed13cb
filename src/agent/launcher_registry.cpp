#include "agent/launcher_registry.hpp"

namespace culvert::agent {

// One line per launcher type: X(name) for a `LauncherType name_launcher_type()` defined
// in the launcher's own file.
#define CULVERT_LAUNCHER_TYPES(X) \
  X(local)                        \
  X(docker)                       \
  X(ecs)                          \
  X(slurm)

#define CULVERT_DECLARE_LAUNCHER_TYPE(name) LauncherType name##_launcher_type();
CULVERT_LAUNCHER_TYPES(CULVERT_DECLARE_LAUNCHER_TYPE)
#undef CULVERT_DECLARE_LAUNCHER_TYPE

const std::vector<LauncherType>& launcher_types() {
#define CULVERT_LIST_LAUNCHER_TYPE(name) name##_launcher_type(),
  static const std::vector<LauncherType> types = {CULVERT_LAUNCHER_TYPES(CULVERT_LIST_LAUNCHER_TYPE)};
#undef CULVERT_LIST_LAUNCHER_TYPE
  return types;
}

const LauncherType* find_launcher_type(std::string_view type) {
  for (const auto& t : launcher_types())
    if (t.type == type) return &t;
  return nullptr;
}

}  // namespace culvert::agent
