#include "core/labels.hpp"

#include <algorithm>

namespace culvert {

std::vector<std::string> missing_labels(const std::vector<std::string>& agent_labels,
                                        const std::vector<std::string>& run_labels) {
  std::vector<std::string> missing;
  for (const auto& l : run_labels) {
    if (std::find(agent_labels.begin(), agent_labels.end(), l) == agent_labels.end() &&
        std::find(missing.begin(), missing.end(), l) == missing.end())
      missing.push_back(l);
  }
  return missing;
}

bool labels_cover(const std::vector<std::string>& agent_labels,
                  const std::vector<std::string>& run_labels) {
  for (const auto& l : run_labels) {
    if (std::find(agent_labels.begin(), agent_labels.end(), l) == agent_labels.end()) return false;
  }
  return true;
}

std::vector<std::string> normalize_labels(std::vector<std::string> labels) {
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  return labels;
}

}  // namespace culvert
