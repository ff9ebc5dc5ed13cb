#include "agent/docker_launcher.hpp"

#include <cctype>
#include <charconv>
#include <cmath>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "agent/docker/docker_client.hpp"
#include "agent/launcher_registry.hpp"

namespace culvert::agent {
namespace {

using nlohmann::json;

class DockerLaunch final : public Launch {
 public:
  DockerLaunch(std::shared_ptr<docker::DockerClient> client, std::string id)
      : client_(std::move(client)), id_(std::move(id)) {}
  // An adopted container: output it wrote before the adoption was forwarded (or lost)
  // by the previous agent; forward only what comes after.
  void skip_output_so_far() {
    if (auto lines = client_->logs(id_)) sent_ = lines->size();
  }
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
  Infrastructure infrastructure() const override { return {"container", id_}; }

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
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + i, n);
  if (ec != std::errc() || n > (int64_t{1} << 33)) return std::nullopt;  // bounded: 8 Gi units at most
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
  docker::ContainerSpec c;
  if (auto it = rc.find("image"); it != rc.end() && it->is_string()) c.image = it->get<std::string>();
  if (c.image.empty()) return invalid_argument("docker launcher: the run config has no image");
  c.cmd = {"culvert", "execute"};
  if (rc.contains("command") && rc["command"].is_array() && !rc["command"].empty()) {
    c.cmd.clear();
    for (auto& a : rc["command"]) c.cmd.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  c.env = spec.env;  // merged by the agent: the run config's env is in it already
  c.network_mode = options_.default_network_mode;
  if (auto it = rc.find("network_mode"); it != rc.end() && it->is_string()) c.network_mode = it->get<std::string>();
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

Result<std::unique_ptr<Launch>> DockerLauncher::adopt(const LaunchSpec& spec, const Infrastructure& infra) {
  if (infra.kind != "container")
    return Status(StatusCode::kUnprocessable, "a docker agent cannot adopt " + infra.kind + " " + infra.id);
  auto info = client_->inspect(infra.id);
  if (!info) {
    if (info.status().code() == StatusCode::kNotFound)
      return not_found("the run's container " + infra.id.substr(0, 12) + " is gone");
    return info.status();
  }
  auto label = info->labels.find("io.culvert.flow-run-id");
  if (label == info->labels.end() || label->second != spec.flow_run_id)
    return Status(StatusCode::kUnprocessable,
                  "container " + infra.id.substr(0, 12) + " is not the container of run " + spec.flow_run_id);
  auto launch = std::make_unique<DockerLaunch>(client_, info->id.empty() ? infra.id : info->id);
  launch->skip_output_so_far();
  return std::unique_ptr<Launch>(std::move(launch));
}

LauncherType docker_launcher_type() {
  return LauncherType{
      .type = "docker",
      .description = "runs each flow run in a container of the run config's image",
      .flags = {{"docker-host", "docker: the engine's unix socket (default /var/run/docker.sock)"}},
      .factory = [](const LauncherContext& ctx) -> Result<std::unique_ptr<Launcher>> {
        DockerLauncherOptions o;
        if (auto it = ctx.flags.find("docker-host"); it != ctx.flags.end() && !it->second.empty()) {
          o.docker_host = it->second;
          if (o.docker_host.starts_with("unix://")) o.docker_host = o.docker_host.substr(7);
        }
        return std::unique_ptr<Launcher>(std::make_unique<DockerLauncher>(o));
      }};
}

}  // namespace culvert::agent
