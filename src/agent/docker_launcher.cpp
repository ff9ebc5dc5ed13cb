#include "agent/docker_launcher.hpp"

#include <cctype>
#include <cmath>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "agent/docker/docker_client.hpp"

namespace culvert::agent {
namespace {

using nlohmann::json;

class DockerLaunch final : public Launch {
 public:
  DockerLaunch(std::shared_ptr<docker::DockerClient> client, std::string id)
      : client_(std::move(client)), id_(std::move(id)) {}
  ~DockerLaunch() override {
    if (exit_) (void)client_->remove(id_, true);
  }

  std::optional<ExitInfo> poll() override {
    if (exit_) return exit_;
    auto info = client_->inspect(id_);
    if (!info) {
      if (info.status().code() == StatusCode::kNotFound)
        exit_ = ExitInfo{.exit_code = -1, .reason = "the container " + short_id() + " disappeared"};
      return exit_;
    }
    if (info->running || info->status == "created") return std::nullopt;
    ExitInfo e;
    e.exit_code = info->exit_code;
    e.oom_killed = info->oom_killed;
    if (!info->error.empty()) e.reason = "the container failed: " + info->error;
    else if (info->oom_killed) e.reason = fmt::format("container exited with code {} (OOMKilled)", info->exit_code);
    else e.reason = fmt::format("container exited with code {}", info->exit_code);
    exit_ = e;
    return exit_;
  }

  void stop(std::chrono::milliseconds grace) override {
    int secs = static_cast<int>(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(grace).count()));
    (void)client_->stop(id_, secs);
    poll();
  }

  std::string describe() const override { return "container " + short_id(); }

  std::vector<std::string> drain_output() override {
    auto lines = client_->logs(id_);
    std::vector<std::string> out;
    if (!lines) return out;
    for (size_t i = sent_; i < lines->size(); ++i) out.push_back((*lines)[i].text);
    sent_ = lines->size();
    return out;
  }

 private:
  std::string short_id() const { return id_.substr(0, 12); }
  std::shared_ptr<docker::DockerClient> client_;
  std::string id_;
  size_t sent_ = 0;
  std::optional<ExitInfo> exit_;
};

}  // namespace

std::optional<int64_t> parse_memory(const std::string& text) {
  if (text.empty()) return std::nullopt;
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) return std::nullopt;
  int64_t n = std::stoll(text.substr(0, i));
  std::string unit = text.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit == "b") return n;
  if (unit == "k" || unit == "kb" || unit == "ki" || unit == "kib") return n << 10;
  if (unit.empty() || unit == "m" || unit == "mb" || unit == "mi" || unit == "mib") return n << 20;
  if (unit == "g" || unit == "gb" || unit == "gi" || unit == "gib") return n << 30;
  return std::nullopt;
}

DockerLauncher::DockerLauncher(DockerLauncherOptions options)
    : options_(std::move(options)),
      client_(std::make_shared<docker::DockerClient>(docker::DockerClient::Options{.host = options_.docker_host})) {}

DockerLauncher::~DockerLauncher() = default;

Result<std::unique_ptr<Launch>> DockerLauncher::launch(const LaunchSpec& spec) {
  json rc = json::parse(spec.run_config_json, nullptr, false);
  if (rc.is_discarded() || !rc.is_object()) return invalid_argument("docker launcher: run config is not a JSON object");
  if (rc.contains("type") && rc["type"].is_string() && rc["type"] != "docker")
    return invalid_argument("the run config is of type '" + rc["type"].get<std::string>() +
                            "', which a docker agent does not launch (give agents of different types "
                            "different labels)");
  docker::ContainerSpec c;
  c.image = rc.value("image", "");
  if (c.image.empty()) return invalid_argument("docker launcher: the run config has no image");
  c.cmd = {"culvert", "execute"};
  if (rc.contains("command") && rc["command"].is_array() && !rc["command"].empty()) {
    c.cmd.clear();
    for (auto& a : rc["command"]) c.cmd.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  c.env = spec.env;
  if (rc.contains("env") && rc["env"].is_object())
    for (auto& [k, v] : rc["env"].items()) c.env[k] = v.is_string() ? v.get<std::string>() : v.dump();
  // The run's own variables win over anything configured.
  for (const char* k : {"CULVERT_API_URL", "CULVERT_API_TOKEN", "CULVERT_FLOW_RUN_ID"})
    if (auto it = spec.env.find(k); it != spec.env.end()) c.env[k] = it->second;
  c.network_mode = rc.value("network_mode", options_.default_network_mode);
  if (rc.contains("volumes") && rc["volumes"].is_array())
    for (auto& v : rc["volumes"]) if (v.is_string()) c.binds.push_back(v.get<std::string>());
  if (rc.contains("cpu") && !rc["cpu"].is_null()) {
    double cpus = 0;
    if (rc["cpu"].is_number()) cpus = rc["cpu"].get<double>();
    else if (rc["cpu"].is_string()) {
      try { cpus = std::stod(rc["cpu"].get<std::string>()); } catch (...) { cpus = -1; }
    }
    if (!(cpus > 0)) return invalid_argument("docker launcher: cpu must be a positive number of CPUs, got " + rc["cpu"].dump());
    c.nano_cpus = static_cast<int64_t>(std::llround(cpus * 1e9));
  }
  if (rc.contains("memory") && !rc["memory"].is_null()) {
    std::string m = rc["memory"].is_string() ? rc["memory"].get<std::string>() : rc["memory"].dump();
    auto bytes = parse_memory(m);
    if (!bytes || *bytes <= 0) return invalid_argument("docker launcher: memory must look like 512m or 2g, got '" + m + "'");
    c.memory_bytes = *bytes;
  }
  c.labels = {{"io.culvert.flow-run-id", spec.flow_run_id}, {"io.culvert.flow", spec.flow_name}};
  auto id = client_->create(c);
  if (!id) return Status(id.status().code(), "cannot create the container: " + id.status().message());
  Status st = client_->start(*id);
  if (!st.is_ok()) {
    (void)client_->remove(*id, true);
    return Status(st.code(), "cannot start the container: " + st.message());
  }
  return std::unique_ptr<Launch>(std::make_unique<DockerLaunch>(client_, *id));
}

}  // namespace culvert::agent
