// The run commands of the CLI as the end-to-end tests use them, through Sandbox::culvert
// (so with the sandbox's HOME and the given environment's server and token).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace culvert::e2e {

// `culvert run FLOW --project PROJECT --output json EXTRA...`: the new run's id; "" when
// the command failed or printed no id (its output then goes to stderr).
std::string cli_create_run(Sandbox& sandbox, const std::map<std::string, std::string>& env, const std::string& flow,
                           const std::string& project, const std::vector<std::string>& extra = {});

// `culvert run inspect ID --output json`: the run's own document (its "flow_run" when
// the answer wraps it); an empty object when the answer is not JSON.
nlohmann::json cli_inspect_run(Sandbox& sandbox, const std::map<std::string, std::string>& env,
                               const std::string& id);

// Success, Failed, Crashed, TimedOut or Cancelled.
bool is_final_state(const std::string& state);

}  // namespace culvert::e2e
