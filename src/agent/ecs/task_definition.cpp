#include "agent/ecs/task_definition.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "core/crypto.hpp"

namespace culvert::agent::ecs {
namespace {

using nlohmann::json;

constexpr size_t kMaxFamily = 255;
constexpr size_t kMaxStartedBy = 36;
constexpr size_t kMaxListItems = 16;  // subnets / security groups: ECS takes at most 16 and 5

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// A number at the start of `s` (digits, one optional '.'), and the rest.
std::optional<std::pair<double, std::string>> number_and_unit(std::string_view s) {
  std::string t = trim(s);
  size_t i = 0;
  bool dot = false;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || (t[i] == '.' && !dot))) {
    if (t[i] == '.') dot = true;
    ++i;
  }
  if (i == 0 || i > 12) return std::nullopt;
  double v = 0;
  try {
    v = std::stod(t.substr(0, i));
  } catch (...) {
    return std::nullopt;
  }
  return std::make_pair(v, lower(trim(std::string_view(t).substr(i))));
}

std::optional<std::string> whole(double v) {
  if (!(v > 0) || v > 1e7 || std::abs(v - std::round(v)) > 1e-9) return std::nullopt;
  return std::to_string(static_cast<long long>(std::llround(v)));
}

Result<std::optional<std::string>> opt_string(const json& rc, const char* key) {
  auto it = rc.find(key);
  if (it == rc.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return invalid_argument(fmt::format("the run config's \"{}\" is not a string", key));
  if (it->get<std::string>().empty()) return std::optional<std::string>();  // "" is "not given"
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<std::vector<std::string>>> opt_list(const json& rc, const char* key) {
  auto it = rc.find(key);
  if (it == rc.end() || it->is_null()) return std::optional<std::vector<std::string>>();
  std::vector<std::string> out;
  if (it->is_string()) {  // "subnet-1,subnet-2"
    std::string s = it->get<std::string>();
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      std::string item = trim(std::string_view(s).substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (!item.empty()) out.push_back(item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_string()) return invalid_argument(fmt::format("the run config's \"{}\" holds a non-string", key));
      out.push_back(v.get<std::string>());
    }
  } else {
    return invalid_argument(fmt::format("the run config's \"{}\" is not a list of strings", key));
  }
  if (out.size() > kMaxListItems)
    return invalid_argument(fmt::format("the run config's \"{}\" has {} entries (at most {})", key, out.size(), kMaxListItems));
  // An empty list is "not given" (the SDK writes [] for an unset list): the agent's own
  // subnets and security groups apply.
  if (out.empty()) return std::optional<std::vector<std::string>>();
  return std::optional<std::vector<std::string>>(std::move(out));
}

json tag(std::string_view k, std::string_view v) { return json{{"key", k}, {"value", v}}; }

// The container named "flow" in `containers` (an array), added when absent.
json& flow_container(json& containers) {
  for (auto& c : containers)
    if (c.is_object() && c.value("name", "") == kContainerName) return c;
  containers.push_back(json{{"name", kContainerName}});
  return containers.back();
}

bool is_fargate(LaunchType t) { return t == LaunchType::kFargate || t == LaunchType::kFargateSpot; }

}  // namespace

Result<LaunchType> parse_launch_type(std::string_view text) {
  std::string t = lower(text);
  if (t == "fargate") return LaunchType::kFargate;
  if (t == "fargate_spot") return LaunchType::kFargateSpot;
  if (t == "ec2") return LaunchType::kEc2;
  return invalid_argument("--launch-type must be FARGATE, FARGATE_SPOT or EC2, got '" + std::string(text) + "'");
}

std::string launch_type_name(LaunchType t) {
  switch (t) {
    case LaunchType::kFargate: return "FARGATE";
    case LaunchType::kFargateSpot: return "FARGATE_SPOT";
    case LaunchType::kEc2: return "EC2";
  }
  return "FARGATE";
}

std::optional<std::string> cpu_units(const json& value) {
  if (value.is_number_integer() || value.is_number_unsigned() || value.is_number_float())
    return whole(value.get<double>());
  if (!value.is_string()) return std::nullopt;
  auto nu = number_and_unit(value.get<std::string>());
  if (!nu) return std::nullopt;
  if (nu->second.empty()) return whole(nu->first);
  if (nu->second == "vcpu" || nu->second == "vcpus") return whole(nu->first * 1024);
  return std::nullopt;
}

std::optional<std::string> memory_mib(const json& value) {
  if (value.is_number_integer() || value.is_number_unsigned() || value.is_number_float())
    return whole(value.get<double>());
  if (!value.is_string()) return std::nullopt;
  auto nu = number_and_unit(value.get<std::string>());
  if (!nu) return std::nullopt;
  const std::string& u = nu->second;
  if (u.empty() || u == "m" || u == "mb" || u == "mi" || u == "mib") return whole(nu->first);
  if (u == "g" || u == "gb" || u == "gi" || u == "gib") return whole(nu->first * 1024);
  return std::nullopt;
}

Result<EcsRunConfig> parse_ecs_run_config(const std::string& run_config_json) {
  json rc = json::parse(run_config_json.empty() ? std::string("{}") : run_config_json, nullptr, false);
  if (rc.is_discarded() || !rc.is_object()) return invalid_argument("the run config is not a JSON object");
  EcsRunConfig out;
  auto image = opt_string(rc, "image");
  if (!image) return image.status();
  out.image = image->value_or("");
  for (auto [key, field] : {std::pair{"task_role_arn", &out.task_role_arn},
                            std::pair{"execution_role_arn", &out.execution_role_arn},
                            std::pair{"cluster", &out.cluster}}) {
    auto v = opt_string(rc, key);
    if (!v) return v.status();
    *field = *v;
  }
  if (auto it = rc.find("cpu"); it != rc.end() && !it->is_null()) {
    out.cpu = cpu_units(*it);
    if (!out.cpu)
      return invalid_argument("the run config's \"cpu\" must be CPU units (256, 512, 1024...) or like \"0.5 vCPU\", got " +
                              it->dump());
  }
  if (auto it = rc.find("memory"); it != rc.end() && !it->is_null()) {
    out.memory = memory_mib(*it);
    if (!out.memory)
      return invalid_argument("the run config's \"memory\" must be MiB (512, 2048...) or like \"2 GB\", got " + it->dump());
  }
  auto subnets = opt_list(rc, "subnets");
  if (!subnets) return subnets.status();
  out.subnets = *subnets;
  auto groups = opt_list(rc, "security_groups");
  if (!groups) return groups.status();
  out.security_groups = *groups;
  if (auto it = rc.find("assign_public_ip"); it != rc.end() && !it->is_null()) {
    if (it->is_boolean()) out.assign_public_ip = it->get<bool>();
    else if (it->is_string() && (lower(it->get<std::string>()) == "enabled" || lower(it->get<std::string>()) == "true"))
      out.assign_public_ip = true;
    else if (it->is_string() && (lower(it->get<std::string>()) == "disabled" || lower(it->get<std::string>()) == "false"))
      out.assign_public_ip = false;
    else
      return invalid_argument("the run config's \"assign_public_ip\" must be true or false, got " + it->dump());
  }
  if (auto it = rc.find("command"); it != rc.end() && !it->is_null()) {
    if (!it->is_array() || it->empty()) return invalid_argument("the run config's \"command\" is not a non-empty list");
    for (const auto& a : *it) out.command.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  for (auto [key, field] : {std::pair{"task_definition", &out.task_definition},
                            std::pair{"run_task_kwargs", &out.run_task_kwargs}}) {
    auto it = rc.find(key);
    if (it == rc.end() || it->is_null()) continue;
    if (!it->is_object()) return invalid_argument(fmt::format("the run config's \"{}\" is not an object", key));
    *field = *it;
  }
  return out;
}

Status validate_fargate_size(const std::string& cpu, const std::string& memory) {
  struct Range {
    int cpu, lo, hi, step;
  };
  static constexpr Range kRanges[] = {
      {256, 512, 2048, 0},       {512, 1024, 4096, 1024},    {1024, 2048, 8192, 1024}, {2048, 4096, 16384, 1024},
      {4096, 8192, 30720, 1024}, {8192, 16384, 61440, 4096}, {16384, 32768, 122880, 8192}};
  int c = 0, m = 0;
  std::from_chars(cpu.data(), cpu.data() + cpu.size(), c);
  std::from_chars(memory.data(), memory.data() + memory.size(), m);
  for (const auto& r : kRanges) {
    if (r.cpu != c) continue;
    std::vector<int> valid;
    if (r.step == 0) valid = {512, 1024, 2048};
    else
      for (int v = r.lo; v <= r.hi; v += r.step) valid.push_back(v);
    if (std::find(valid.begin(), valid.end(), m) != valid.end()) return Status::ok();
    return invalid_argument(fmt::format("Fargate cpu {} takes memory {} MiB, not {}", cpu, fmt::join(valid, ", "),
                                        memory));
  }
  return invalid_argument(fmt::format("Fargate cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384 (CPU units), not {}",
                                      cpu));
}

std::string sanitize_name(std::string_view name) {
  std::string out(name);
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '-';
  return out;
}

Result<TaskDefinition> build_task_definition(const EcsDefaults& defaults, const EcsRunConfig& rc,
                                             const std::string& flow_name) {
  json td = rc.task_definition.is_object()                   ? rc.task_definition
            : defaults.task_definition_template.is_object() ? defaults.task_definition_template
                                                            : json::object();
  td.erase("family");
  json template_tags = td.contains("tags") && td["tags"].is_array() ? td["tags"] : json::array();
  td.erase("tags");
  // Fields ECS adds to a described definition: a described one may serve as a template.
  for (const char* k : {"taskDefinitionArn", "revision", "status", "registeredAt", "registeredBy", "requiresAttributes",
                        "compatibilities", "deregisteredAt"})
    td.erase(k);

  const LaunchType lt = defaults.launch_type;
  if (!td.contains("networkMode")) td["networkMode"] = "awsvpc";
  if (!td.contains("requiresCompatibilities"))
    td["requiresCompatibilities"] = json::array({is_fargate(lt) ? "FARGATE" : "EC2"});
  // cpu and memory: the run config's, else the template's, else the agent's.
  auto tmpl_str = [&](const char* k) -> std::optional<std::string> {
    if (!td.contains(k)) return std::nullopt;
    return k == std::string("cpu") ? cpu_units(td[k]) : memory_mib(td[k]);
  };
  std::string cpu = rc.cpu.value_or(tmpl_str("cpu").value_or(defaults.cpu));
  std::string memory = rc.memory.value_or(tmpl_str("memory").value_or(defaults.memory));
  if (is_fargate(lt))
    if (Status st = validate_fargate_size(cpu, memory); !st.is_ok()) return st;
  td["cpu"] = cpu;
  td["memory"] = memory;
  std::string task_role = rc.task_role_arn.value_or(td.value("taskRoleArn", defaults.task_role_arn));
  std::string exec_role = rc.execution_role_arn.value_or(td.value("executionRoleArn", defaults.execution_role_arn));
  if (!task_role.empty()) td["taskRoleArn"] = task_role;
  else td.erase("taskRoleArn");
  if (!exec_role.empty()) td["executionRoleArn"] = exec_role;
  else td.erase("executionRoleArn");

  if (!td.contains("containerDefinitions") || !td["containerDefinitions"].is_array())
    td["containerDefinitions"] = json::array();
  json& c = flow_container(td["containerDefinitions"]);
  if (!rc.image.empty()) c["image"] = rc.image;
  if (!c.contains("image") || !c["image"].is_string() || c["image"].get<std::string>().empty())
    return invalid_argument("the run config has no image (set \"image\", or the image of the container named \"flow\" "
                            "in its task_definition)");
  if (!c.contains("essential")) c["essential"] = true;
  // A container-level hard limit, the task's memory unless the template set one.
  if (!c.contains("memory") && !c.contains("memoryReservation")) {
    int mib = 0;
    std::from_chars(memory.data(), memory.data() + memory.size(), mib);
    c["memory"] = mib;
  }
  if (!defaults.log_group.empty() && !c.contains("logConfiguration"))
    c["logConfiguration"] = {{"logDriver", "awslogs"},
                             {"options",
                              {{"awslogs-group", defaults.log_group},
                               {"awslogs-region", defaults.region},
                               {"awslogs-stream-prefix", "culvert"},
                               {"awslogs-create-group", "true"}}}};

  TaskDefinition out;
  out.hash = sha256_hex(td.dump());  // nlohmann's objects keep their keys sorted: a canonical text
  std::string suffix = "-" + out.hash.substr(0, 16);
  std::string flow = sanitize_name(flow_name.empty() ? "flow" : flow_name);
  const size_t room = kMaxFamily - std::string("culvert-").size() - suffix.size();
  if (flow.size() > room) flow.resize(room);
  out.family = "culvert-" + flow + suffix;
  out.cluster = rc.cluster.value_or(defaults.cluster);
  td["family"] = out.family;
  json tags = json::array({tag(kHashTag, out.hash)});
  for (const auto& t : template_tags)
    if (t.is_object() && t.value("key", "") != kHashTag) tags.push_back(t);
  td["tags"] = tags;
  out.request = std::move(td);
  return out;
}

std::string started_by(const std::string& agent_name) {
  std::string s = "culvert-" + sanitize_name(agent_name);
  if (s.size() > kMaxStartedBy) s.resize(kMaxStartedBy);
  return s;
}

Result<json> build_run_task(const EcsDefaults& defaults, const EcsRunConfig& rc, const TaskDefinition& td,
                            const std::string& task_definition_arn, const std::map<std::string, std::string>& env,
                            const RunIdentity& who) {
  const LaunchType lt = defaults.launch_type;
  json req = {{"cluster", td.cluster}, {"taskDefinition", task_definition_arn}, {"count", 1}};
  if (lt == LaunchType::kFargateSpot)
    req["capacityProviderStrategy"] = json::array({{{"capacityProvider", "FARGATE_SPOT"}, {"weight", 1}}});
  else
    req["launchType"] = launch_type_name(lt);
  if (is_fargate(lt) && !defaults.platform_version.empty()) req["platformVersion"] = defaults.platform_version;
  if (td.request.value("networkMode", "") == "awsvpc") {
    std::vector<std::string> subnets = rc.subnets.value_or(defaults.subnets);
    std::vector<std::string> groups = rc.security_groups.value_or(defaults.security_groups);
    if (subnets.empty())
      return invalid_argument("no subnets for the task's awsvpc network: give the agent --subnet, or set the run "
                              "config's \"subnets\"");
    json vpc = {{"subnets", subnets}};
    if (!groups.empty()) vpc["securityGroups"] = groups;
    bool public_ip = rc.assign_public_ip.value_or(defaults.assign_public_ip);
    if (is_fargate(lt) || public_ip) vpc["assignPublicIp"] = public_ip ? "ENABLED" : "DISABLED";
    req["networkConfiguration"] = {{"awsvpcConfiguration", vpc}};
  }
  json environment = json::array();
  for (const auto& [k, v] : env) environment.push_back({{"name", k}, {"value", v}});
  std::vector<std::string> command = rc.command.empty() ? std::vector<std::string>{"culvert", "execute"} : rc.command;
  req["overrides"] = {
      {"containerOverrides", json::array({{{"name", kContainerName}, {"command", command}, {"environment", environment}}})}};
  req["startedBy"] = started_by(who.agent_name);
  req["tags"] = json::array({tag(kRunTag, who.flow_run_id), tag(kAgentTag, who.agent_name)});
  // The same claim of the same run gives the same token: ECS starts one task however
  // often this request is retried.
  req["clientToken"] = sha256_hex(who.flow_run_id + "\n" + who.claim_token).substr(0, 64);
  if (rc.run_task_kwargs.is_object()) {
    json kwargs = rc.run_task_kwargs;
    // What names and starts the run is Culvert's: replacing it would start a task the
    // agent cannot find again, or one without the run's token.
    for (const char* k : {"taskDefinition", "count", "clientToken", "startedBy"})
      if (kwargs.contains(k))
        return invalid_argument(fmt::format("the run config's run_task_kwargs may not set \"{}\" (the agent sets it)", k));
    if (kwargs.contains("overrides") && kwargs["overrides"].is_object() && kwargs["overrides"].contains("containerOverrides"))
      return invalid_argument("the run config's run_task_kwargs may not set overrides.containerOverrides (use the run "
                              "config's \"env\" and \"command\")");
    // Further tags are added to Culvert's, not put in their place.
    if (auto t = kwargs.find("tags"); t != kwargs.end()) {
      if (!t->is_array()) return invalid_argument("the run config's run_task_kwargs.tags is not a list");
      for (const auto& extra : *t)
        if (extra.is_object() && !extra.value("key", "").starts_with("culvert:")) req["tags"].push_back(extra);
      kwargs.erase("tags");
    }
    req.merge_patch(kwargs);
  }
  return req;
}

ExitInfo exit_of_stopped_task(const json& task) {
  auto str = [](const json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  ExitInfo e;
  e.exit_code = -1;
  std::string stop_code = str(task, "stopCode");
  std::string stopped_reason = str(task, "stoppedReason");
  const json* flow = nullptr;
  if (auto it = task.find("containers"); it != task.end() && it->is_array()) {
    for (const auto& c : *it)
      if (c.is_object() && str(c, "name") == kContainerName) flow = &c;
    if (!flow && !it->empty() && (*it)[0].is_object()) flow = &(*it)[0];
  }
  std::string text = "task stopped";
  if (!stop_code.empty()) text += " (" + stop_code + ")";
  if (!stopped_reason.empty()) text += ": " + stopped_reason;
  if (flow) {
    std::string creason = str(*flow, "reason");
    std::string name = str(*flow, "name");
    auto code = flow->find("exitCode");
    if (code != flow->end() && code->is_number_integer()) {
      e.exit_code = code->get<int>();
      text += fmt::format("; container {} exited with code {}", name, e.exit_code);
    } else if (stop_code == "TaskFailedToStart") {
      text += fmt::format("; container {} did not start", name);
    } else {
      text += fmt::format("; container {} did not exit by itself", name);
    }
    // The container's reason, unless the task's already says it (Fargate repeats it).
    if (!creason.empty() && stopped_reason.find(creason) == std::string::npos) text += " (" + creason + ")";
    if (creason.find("OutOfMemory") != std::string::npos || e.exit_code == 137) {
      e.oom_killed = creason.find("OutOfMemory") != std::string::npos;
      // The container's hard limit, when ECS reports it.
      std::string limit = str(*flow, "memory");
      std::string of = limit.empty() ? "" : " of " + limit + " MiB";
      text += e.oom_killed ? fmt::format("; killed for using more memory than its limit{}", of)
                           : fmt::format("; code 137 is a SIGKILL, most often for using more memory than the limit{}", of);
    }
    if ((creason + stopped_reason).find("CannotPullContainerError") != std::string::npos) {
      std::string image = str(*flow, "image");
      text += fmt::format("; ECS could not pull the image{}: check its name and tag, and that the execution role may "
                          "pull it (ECR) and the task can reach the registry",
                          image.empty() ? "" : " " + image);
    }
  } else if (stop_code == "TaskFailedToStart") {
    text += "; no container started";
  }
  e.reason = text;
  return e;
}

std::string cluster_of_task_arn(std::string_view arn) {
  auto p = arn.find(":task/");
  if (p == std::string_view::npos) return "";
  std::string_view rest = arn.substr(p + 6);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return "";
  return std::string(rest.substr(0, slash));
}

}  // namespace culvert::agent::ecs
