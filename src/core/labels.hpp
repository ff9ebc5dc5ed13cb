// The label rule (docs/CONCEPTS.md): an agent may take a run only if every label of the run is
// among the agent's labels. Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

namespace culvert {

// True when run_labels ⊆ agent_labels. A run with no labels is covered by any agent.
bool labels_cover(const std::vector<std::string>& agent_labels,
                  const std::vector<std::string>& run_labels);

// The run labels the agent lacks, in the run's order (empty when covered).
std::vector<std::string> missing_labels(const std::vector<std::string>& agent_labels,
                                        const std::vector<std::string>& run_labels);

// Sorted, de-duplicated copy; labels are compared exactly (case-sensitive).
std::vector<std::string> normalize_labels(std::vector<std::string> labels);

}  // namespace culvert
