#include "cli_runs.hpp"

#include <iostream>

namespace culvert::e2e {

using json = nlohmann::json;

std::string cli_create_run(Sandbox& sandbox, const std::map<std::string, std::string>& env, const std::string& flow,
                           const std::string& project, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"run", flow, "--project", project, "--output", "json"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = sandbox.culvert(args, env);
  auto j = json::parse(r.out, nullptr, false);
  std::string id;
  if (!j.is_discarded() && j.is_object()) {
    if (j.contains("flow_run") && j["flow_run"].is_object()) j = j["flow_run"];
    if (j.contains("id") && j["id"].is_string()) id = j["id"].get<std::string>();
  }
  if (r.exit_code != 0 || id.empty()) {
    std::cerr << "culvert run " << flow << " exited " << r.exit_code << " without a run id:\n" << r.out << r.err;
    return "";
  }
  return id;
}

json cli_inspect_run(Sandbox& sandbox, const std::map<std::string, std::string>& env, const std::string& id) {
  auto r = sandbox.culvert({"run", "inspect", id, "--output", "json"}, env);
  auto j = json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return json::object();
  return j.contains("flow_run") ? j["flow_run"] : j;
}

bool is_final_state(const std::string& s) {
  return s == "Success" || s == "Failed" || s == "Crashed" || s == "TimedOut" || s == "Cancelled";
}

}  // namespace culvert::e2e
