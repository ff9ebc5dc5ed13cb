#include "agent/ecs/ecs_launcher.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/launcher_registry.hpp"
#include "aws/json_client.hpp"
#include "aws/query_client.hpp"
#include "core/timefmt.hpp"

namespace culvert::agent::ecs {

using nlohmann::json;

namespace {
constexpr size_t kDescribeBatch = 100;  // DescribeTasks takes at most 100 tasks

std::string short_task_id(const std::string& arn) {
  auto slash = arn.rfind('/');
  return slash == std::string::npos ? arn : arn.substr(slash + 1);
}

// ECS keeps at most 255 characters of StopTask's reason (longer is refused): cut to 255
// bytes, so to 255 characters or fewer, at a UTF-8 character boundary, ending in "...".
std::string bounded_stop_reason(const std::string& reason) {
  constexpr size_t kMax = 255;
  if (reason.size() <= kMax) return reason;
  size_t cut = kMax - 3;
  while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
  return reason.substr(0, cut) + "...";
}

std::string minutes_text(Millis d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s % 60 == 0) return fmt::format("{} min", s / 60);
  return fmt::format("{} s", s);
}
}  // namespace

namespace {
// One credentials provider (thread-safe, caching) behind the ECS and the EC2 client.
class SharedCredentials final : public aws::CredentialsProvider {
 public:
  explicit SharedCredentials(std::shared_ptr<aws::CredentialsProvider> p) : p_(std::move(p)) {}
  Result<aws::Credentials> get() override { return p_->get(); }
  std::string name() const override { return p_->name(); }

 private:
  std::shared_ptr<aws::CredentialsProvider> p_;
};
class EcsLaunch;
}  // namespace

// The AWS clients and what the launcher knows of ECS and EC2; shared by the launcher and
// its launches. Thread-safe.
class EcsService {
 public:
  // Launches whose run reported its end while their task still runs (stop_lingering):
  // the monitor does not poll them itself while they are being stopped, so poll_all
  // describes them in its batches with the others.
  void add_lingering(EcsLaunch* l) {
    std::lock_guard lock(lingering_mu_);
    lingering_.insert(l);
  }
  void remove_lingering(EcsLaunch* l) {
    std::lock_guard lock(lingering_mu_);
    lingering_.erase(l);
  }
  std::vector<EcsLaunch*> lingering() {
    std::lock_guard lock(lingering_mu_);
    return {lingering_.begin(), lingering_.end()};
  }

  explicit EcsService(EcsLauncherOptions o) : options(std::move(o)) {
    if (!options.clock) options.clock = &system_clock();
    std::shared_ptr<aws::CredentialsProvider> creds = std::move(options.credentials);
    aws::JsonServiceConfig cfg;
    cfg.service = "ecs";
    cfg.target_prefix = "AmazonEC2ContainerServiceV20141113";
    cfg.region = options.region;
    cfg.endpoint = options.endpoint_url;
    cfg.credentials = std::make_unique<SharedCredentials>(creds);
    cfg.max_attempts = options.max_attempts;
    cfg.clock = options.clock;
    cfg.random = options.random;
    cfg.transport = options.transport;
    client = std::make_unique<aws::AwsJsonClient>(std::move(cfg));
    aws::QueryServiceConfig qc;
    qc.region = options.region;
    qc.endpoint = options.endpoint_url;  // an AWS-compatible service answers both
    qc.credentials = std::make_unique<SharedCredentials>(creds);
    qc.max_attempts = options.max_attempts;
    qc.clock = options.clock;
    qc.random = options.random;
    qc.transport = options.transport;
    ec2 = std::make_unique<aws::AwsQueryClient>(std::move(qc));
    aws::JsonServiceConfig lc;
    lc.service = "logs";
    lc.target_prefix = "Logs_20140328";
    lc.region = options.region;
    lc.endpoint = options.endpoint_url;
    lc.credentials = std::make_unique<SharedCredentials>(creds);
    lc.max_attempts = options.max_attempts;
    lc.clock = options.clock;
    lc.random = options.random;
    lc.transport = options.transport;
    logs = std::make_unique<aws::AwsJsonClient>(std::move(lc));
  }

  // The last lines of a CloudWatch Logs stream, introduced by a line naming it; a line
  // saying why when there are none.
  std::vector<std::string> log_tail(const std::string& group, const std::string& stream) {
    constexpr int kLines = 50;
    aws::AwsError err;
    auto r = logs->call("GetLogEvents",
                        json{{"logGroupName", group}, {"logStreamName", stream}, {"limit", kLines}, {"startFromHead", false}}
                            .dump(),
                        &err);
    if (!r) {
      if (err.code == "ResourceNotFoundException")
        return {fmt::format("[ecs] no CloudWatch Logs stream {} in {}: the container wrote nothing", stream, group)};
      return {fmt::format("[ecs] cannot read the CloudWatch Logs stream {} in {}: {}", stream, group, r.status().message())};
    }
    json j = json::parse(*r, nullptr, false);
    std::vector<std::string> lines;
    if (j.is_object() && j.contains("events") && j["events"].is_array())
      for (const auto& e : j["events"])
        if (e.is_object() && e.contains("message") && e["message"].is_string()) {
          std::string m = e["message"].get<std::string>();
          while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.pop_back();
          lines.push_back(m.substr(0, 4096));
        }
    if (lines.empty()) return {fmt::format("[ecs] the CloudWatch Logs stream {} in {} is empty", stream, group)};
    lines.insert(lines.begin(), fmt::format("[ecs] the task stopped before it ran; the last {} line(s) of its "
                                            "CloudWatch Logs stream {} in {}:",
                                            lines.size(), stream, group));
    return lines;
  }

  // The default VPC's subnets, looked up once (EC2) and remembered.
  Result<std::vector<std::string>> default_subnets() {
    std::lock_guard lock(subnets_mu_);
    if (!default_subnets_.empty()) return default_subnets_;
    std::string vpc;
    auto found = aws::default_vpc_subnets(*ec2, &vpc);
    if (!found) {
      std::string why = found.status().code() == StatusCode::kNotFound
                            ? found.status().message() + " in " + options.region
                            : "looking for the default VPC's subnets: " + found.status().message();
      return Status(found.status().code(), "no subnets given (agent --subnet, or the run config's \"subnets\") and " + why);
    }
    default_subnets_ = *found;
    spdlog::info("no subnets given: tasks use the default VPC {}'s subnets ({})", vpc, fmt::join(default_subnets_, ", "));
    return default_subnets_;
  }

  // Calls `action`; the answer as JSON (an object).
  Result<json> call(std::string_view action, const json& request, aws::AwsError* error = nullptr) {
    auto body = client->call(action, request.dump(), error);
    if (!body) return body.status();
    json j = json::parse(*body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return unavailable(fmt::format("ecs {}: the answer is not a JSON object", action));
    return j;
  }

  // The ARN of an ACTIVE revision with `td`'s content, registering one when ECS has none.
  Result<std::string> task_definition_arn(const TaskDefinition& td) {
    std::lock_guard lock(mu_);  // one lookup at a time: two runs never register twice
    if (auto it = known_.find(td.hash); it != known_.end()) return it->second;
    aws::AwsError err;
    auto found = call("DescribeTaskDefinition", {{"taskDefinition", td.family}, {"include", {"TAGS"}}}, &err);
    if (found) {
      const json& d = (*found)["taskDefinition"];
      std::string hash;
      if (auto tags = found->find("tags"); tags != found->end() && tags->is_array())
        for (const auto& t : *tags)
          if (t.is_object() && t.value("key", "") == kHashTag) hash = t.value("value", "");
      if (d.is_object() && d.value("status", "") == "ACTIVE" && (hash.empty() || hash == td.hash) &&
          d.contains("taskDefinitionArn")) {
        std::string arn = d["taskDefinitionArn"].get<std::string>();
        spdlog::info("ECS task definition {} found ({})", td.family, arn);
        known_[td.hash] = arn;
        return arn;
      }
    } else if (err.code != "ClientException") {  // ClientException: no such family (yet)
      return Status(found.status().code(), "cannot look up the task definition " + td.family + ": " +
                                               found.status().message());
    }
    auto reg = call("RegisterTaskDefinition", td.request);
    if (!reg) return Status(reg.status().code(), "cannot register the task definition " + td.family + ": " +
                                                     reg.status().message());
    const json& d = (*reg)["taskDefinition"];
    if (!d.is_object() || !d.contains("taskDefinitionArn") || !d["taskDefinitionArn"].is_string())
      return unavailable("ecs RegisterTaskDefinition: the answer has no taskDefinition.taskDefinitionArn");
    std::string arn = d["taskDefinitionArn"].get<std::string>();
    spdlog::info("ECS task definition {} registered ({})", td.family, arn);
    known_[td.hash] = arn;
    return arn;
  }

  // Forgets the ARN remembered for definition `hash`.
  void forget(const std::string& hash) {
    std::lock_guard lock(mu_);
    known_.erase(hash);
  }

  Status stop_task(const std::string& cluster, const std::string& arn, const std::string& reason) {
    aws::AwsError err;
    auto r = call("StopTask", {{"cluster", cluster}, {"task", arn}, {"reason", bounded_stop_reason(reason)}}, &err);
    if (r) return Status::ok();
    // Gone already (stopped long ago and forgotten by ECS): nothing left to stop.
    if (err.code == "InvalidParameterException" && err.message.find("not found") != std::string::npos)
      return Status::ok();
    return r.status();
  }

  EcsLauncherOptions options;
  std::unique_ptr<aws::AwsJsonClient> client;
  std::unique_ptr<aws::AwsQueryClient> ec2;
  std::unique_ptr<aws::AwsJsonClient> logs;

 private:
  std::mutex subnets_mu_;
  std::vector<std::string> default_subnets_;  // guarded by subnets_mu_
  std::mutex mu_;
  std::map<std::string, std::string> known_;  // content hash -> task definition ARN; guarded by mu_
  std::mutex lingering_mu_;
  std::set<EcsLaunch*> lingering_;  // guarded by lingering_mu_
};

namespace {

class EcsLaunch final : public Launch {
 public:
  // `log_group`: where the flow container's awslogs output goes ("" : nowhere known).
  EcsLaunch(std::shared_ptr<EcsService> service, std::string arn, std::string cluster, std::string run_id,
            std::string log_group)
      : service_(std::move(service)), arn_(std::move(arn)), cluster_(std::move(cluster)), run_id_(std::move(run_id)),
        log_group_(std::move(log_group)), started_(service_->options.clock->steady_now()) {}

  std::optional<ExitInfo> poll() override {
    std::vector<EcsLaunch*> one = {this};
    describe_batch(*service_, cluster_, one);
    return exit();
  }

  // The log tail of a task that stopped before it ran (once). Its exit is held back
  // until this was asked for, or one poll later, so the lines reach the run's log before
  // the run is reported Crashed (the agent drains output before it polls).
  std::vector<std::string> drain_output() override {
    std::vector<std::string> out;
    {
      std::lock_guard lock(mu_);
      out.swap(pending_output_);
    }
    release_held();
    return out;
  }

  // Cancel (or the start timeout): StopTask at once. ECS gives the container its
  // stopTimeout (30 s by default) after SIGTERM.
  void stop(std::chrono::milliseconds grace) override {
    (void)grace;
    if (ended()) return;
    stop_task();
  }

  // Cancel: StopTask at once, its reason naming the run and who cancelled it (bounded to
  // ECS's 255 characters), so the task's stoppedReason says it.
  void cancel(std::chrono::milliseconds grace, const std::string& why) override {
    (void)grace;
    if (ended()) return;
    stop_task("Culvert: flow run " + run_id_ + " cancelled" + (why.empty() ? "" : " (" + why + ")"));
  }

  // The run reported its end and the task still ran at the last poll. Usually it ends by
  // itself a moment later: the flow container exits and ECS stops the task
  // (desiredStatus STOPPED, stopCode EssentialContainerExited). So the task is watched,
  // every poll interval (at least 1 s) for up to `grace`: in the monitor's batched
  // DescribeTasks (poll_all describes lingering launches with the others, so a thousand
  // runs ending at once cost no thousand calls a second), described on its own only when
  // no batch came for two intervals (no monitor polls: a test, or an agent stopping).
  // Only a task still RUNNING then, or not RUNNING at all, gets StopTask. A task ECS is
  // stopping already is not stopped again: its stop code stays what happened, and the
  // usual end of a run costs no call of its own and no StopTask.
  void stop_lingering(std::chrono::milliseconds grace) override {
    Clock& clock = *service_->options.clock;
    const SteadyTime deadline = clock.steady_now() + grace;
    const Millis step = std::max<Millis>(std::chrono::seconds(1), service_->options.poll_interval);
    auto settled = [&](bool& running) {
      std::lock_guard lock(mu_);
      running = last_status_ == "RUNNING";
      return exit_ || held_exit_ || desired_status_ == "STOPPED";
    };
    bool running = false;
    if (settled(running)) return;
    if (!running) {
      // Not RUNNING at the last poll (it may be stale): look now, once.
      std::vector<EcsLaunch*> one = {this};
      describe_batch(*service_, cluster_, one);
      if (settled(running)) return;
      if (!running) {
        stop_task();
        return;
      }
    }
    service_->add_lingering(this);
    uint64_t seen = updates();
    SteadyTime last_update = clock.steady_now();
    bool stopped_by_ecs = false;
    while (clock.steady_now() + step <= deadline) {
      clock.sleep_for(step);
      if (uint64_t now_seen = updates(); now_seen != seen) {
        seen = now_seen;
        last_update = clock.steady_now();
      } else if (clock.steady_now() - last_update >= 2 * step) {
        std::vector<EcsLaunch*> one = {this};
        describe_batch(*service_, cluster_, one);
        seen = updates();
        last_update = clock.steady_now();
      }
      if (settled(running)) {
        stopped_by_ecs = true;
        break;
      }
      if (!running) break;
    }
    service_->remove_lingering(this);
    if (!stopped_by_ecs) stop_task();
  }

  std::string describe() const override { return "ecs task " + short_task_id(arn_); }
  Infrastructure infrastructure() const override { return {"ecs-task", arn_}; }

  const std::string& cluster() const { return cluster_; }
  const std::string& arn() const { return arn_; }

  // Takes one DescribeTasks task object (or the failure reason when ECS reported none).
  void update(const json* task, const std::string& failure) {
    std::lock_guard lock(mu_);
    ++updates_;
    if (exit_) return;
    if (!task) {
      exit_ = ExitInfo{.exit_code = -1,
                       .reason = fmt::format("task {} is gone from cluster {} ({})", short_task_id(arn_), cluster_,
                                             failure.empty() ? "MISSING" : failure)};
      return;
    }
    std::string status = task->value("lastStatus", "");
    if (status == "STOPPED") {
      ExitInfo e = exit_of_stopped_task(*task);
      bool before_running = !reached_running_ || task->value("stopCode", "") == "TaskFailedToStart";
      if (before_running && !log_group_.empty()) {
        pending_output_ = service_->log_tail(log_group_, "culvert/" + std::string(kContainerName) + "/" + short_task_id(arn_));
        held_exit_ = std::move(e);
      } else {
        exit_ = std::move(e);
      }
      return;
    }
    if (status == "RUNNING" || status == "DEACTIVATING" || status == "STOPPING" || status == "DEPROVISIONING")
      reached_running_ = true;
    last_status_ = status;
    desired_status_ = task->value("desiredStatus", "");
    const Millis timeout = service_->options.task_start_timeout;
    if (!reached_running_ && timeout.count() > 0 && service_->options.clock->steady_now() - started_ >= timeout) {
      std::string why = fmt::format("the task was not RUNNING within {} (--task-start-timeout; its last status was {})",
                                    minutes_text(timeout), status.empty() ? "unknown" : status);
      Status st = service_->stop_task(cluster_, arn_, "Culvert: " + why);
      if (!st.is_ok()) spdlog::warn("run {}: stopping ECS task {} failed: {}", run_id_, arn_, st.to_string());
      exit_ = ExitInfo{.exit_code = -1, .reason = why + "; Culvert stopped it"};
    }
  }
  bool ended() const {
    std::lock_guard lock(mu_);
    return exit_.has_value() || held_exit_.has_value();
  }
  void release_held() {
    std::lock_guard lock(mu_);
    if (held_exit_) exit_ = std::move(held_exit_);
    held_exit_.reset();
  }
  std::optional<ExitInfo> exit() const {
    std::lock_guard lock(mu_);
    return exit_;
  }
  // How many DescribeTasks answers (or failures) it has taken.
  uint64_t updates() const {
    std::lock_guard lock(mu_);
    return updates_;
  }

  // One DescribeTasks call per `kDescribeBatch` launches, all in `cluster`.
  static void describe_batch(EcsService& service, const std::string& cluster, std::vector<EcsLaunch*>& launches) {
    std::vector<EcsLaunch*> open;
    for (EcsLaunch* l : launches) {
      if (!l->ended()) open.push_back(l);
      else l->release_held();  // held for one poll at most
    }
    for (size_t from = 0; from < open.size(); from += kDescribeBatch) {
      size_t to = std::min(open.size(), from + kDescribeBatch);
      json arns = json::array();
      for (size_t i = from; i < to; ++i) arns.push_back(open[i]->arn());
      auto r = service.call("DescribeTasks", {{"cluster", cluster}, {"tasks", arns}});
      if (!r) {
        spdlog::warn("watching {} ECS task(s) in cluster {}: {}", to - from, cluster, r.status().to_string());
        continue;  // try again on the next poll
      }
      std::map<std::string, const json*> tasks;
      std::map<std::string, std::string> failures;
      if (auto it = r->find("tasks"); it != r->end() && it->is_array())
        for (const auto& t : *it)
          if (t.is_object() && t.contains("taskArn") && t["taskArn"].is_string()) tasks[t["taskArn"].get<std::string>()] = &t;
      if (auto it = r->find("failures"); it != r->end() && it->is_array())
        for (const auto& f : *it)
          if (f.is_object() && f.contains("arn") && f["arn"].is_string())
            failures[f["arn"].get<std::string>()] = f.value("reason", "MISSING");
      for (size_t i = from; i < to; ++i) {
        EcsLaunch* l = open[i];
        if (auto t = tasks.find(l->arn()); t != tasks.end()) l->update(t->second, "");
        else if (auto f = failures.find(l->arn()); f != failures.end()) l->update(nullptr, f->second);
        // Neither: ECS said nothing of it this time; ask again on the next poll.
      }
    }
  }

 private:
  void stop_task(const std::string& reason = "") {
    Status st = service_->stop_task(cluster_, arn_,
                                    !reason.empty() ? reason
                                                    : "Culvert stopped the task of flow run " + run_id_ +
                                                          " (cancelled, or ended while its task ran on)");
    if (!st.is_ok()) spdlog::warn("run {}: stopping ECS task {} failed: {}", run_id_, arn_, st.to_string());
  }

  std::shared_ptr<EcsService> service_;
  std::string arn_;
  std::string cluster_;
  std::string run_id_;
  std::string log_group_;
  SteadyTime started_;
  // The state below is written by update() (the monitor) and read by stop() (a thread of
  // its own): guarded by mu_.
  mutable std::mutex mu_;
  bool reached_running_ = false;
  std::string last_status_;
  std::string desired_status_;
  std::optional<ExitInfo> exit_;
  std::optional<ExitInfo> held_exit_;        // stopped, its log tail not drained yet
  uint64_t updates_ = 0;                     // update() calls
  std::vector<std::string> pending_output_;  // that log tail
};

}  // namespace

EcsLauncher::EcsLauncher(EcsLauncherOptions options)
    : service_(std::make_shared<EcsService>(std::move(options))) {}

EcsLauncher::~EcsLauncher() = default;

std::chrono::milliseconds EcsLauncher::poll_interval() const { return service_->options.poll_interval; }

Result<std::unique_ptr<Launch>> EcsLauncher::launch(const LaunchSpec& spec) {
  auto rc = parse_ecs_run_config(spec.run_config_json);
  if (!rc) return rc.status();
  const EcsDefaults& defaults = service_->options.defaults;
  auto td = build_task_definition(defaults, *rc, spec.flow_name);
  if (!td) return td.status();
  auto arn = service_->task_definition_arn(*td);
  if (!arn) return arn.status();
  RunIdentity who{spec.flow_run_id, service_->options.agent_name, ""};
  if (auto it = spec.env.find("CULVERT_API_TOKEN"); it != spec.env.end()) who.claim_token = it->second;
  EcsDefaults with_subnets;
  const EcsDefaults* settings = &defaults;
  if (td->request.value("networkMode", "") == "awsvpc" && !rc->subnets && defaults.subnets.empty()) {
    auto subnets = service_->default_subnets();
    if (!subnets) return subnets.status();
    with_subnets = defaults;
    with_subnets.subnets = *subnets;
    settings = &with_subnets;
  }
  auto req = build_run_task(*settings, *rc, *td, *arn, spec.env, who);
  if (!req) return req.status();
  aws::AwsError err;
  auto r = service_->call("RunTask", *req, &err);
  if (!r && err.code == "ClientException" && err.message.find("nactive") != std::string::npos) {
    // The revision the agent remembered was deregistered behind its back: look the
    // definition up again (registering a new revision) and try once more.
    spdlog::warn("ECS task definition {} is inactive ({}); looking it up again", *arn, err.message);
    service_->forget(td->hash);
    arn = service_->task_definition_arn(*td);
    if (!arn) return arn.status();
    (*req)["taskDefinition"] = *arn;
    r = service_->call("RunTask", *req);
  }
  if (!r) return Status(r.status().code(), r.status().message());
  if (auto f = r->find("failures"); f != r->end() && f->is_array() && !f->empty()) {
    const json& first = (*f)[0];
    std::string why = first.value("reason", "unknown");
    if (first.contains("detail") && first["detail"].is_string()) why += " (" + first["detail"].get<std::string>() + ")";
    return unavailable(fmt::format("ECS could not start the task in cluster {}: {}", td->cluster, why));
  }
  auto tasks = r->find("tasks");
  if (tasks == r->end() || !tasks->is_array() || tasks->empty() || !(*tasks)[0].is_object() ||
      !(*tasks)[0].contains("taskArn") || !(*tasks)[0]["taskArn"].is_string())
    return unavailable("ecs RunTask answered without a task and without failures");
  std::string task_arn = (*tasks)[0]["taskArn"].get<std::string>();
  // The flow container logs to --log-group when the definition is ours (a template's own
  // log configuration goes elsewhere).
  std::string log_group;
  for (const auto& c : td->request["containerDefinitions"])
    if (c.value("name", "") == kContainerName && c.contains("logConfiguration") &&
        c["logConfiguration"].value("logDriver", "") == "awslogs" &&
        c["logConfiguration"]["options"].value("awslogs-stream-prefix", "") == "culvert")
      log_group = c["logConfiguration"]["options"].value("awslogs-group", "");
  return std::unique_ptr<Launch>(
      std::make_unique<EcsLaunch>(service_, task_arn, td->cluster, spec.flow_run_id, log_group));
}

Result<std::unique_ptr<Launch>> EcsLauncher::adopt(const LaunchSpec& spec, const Infrastructure& infra) {
  if (infra.kind != "ecs-task")
    return Status(StatusCode::kUnprocessable, "an ecs agent cannot adopt " + infra.kind + " " + infra.id);
  std::string cluster = cluster_of_task_arn(infra.id);
  if (cluster.empty()) {  // an ARN of the old format names no cluster: the run config's
    auto rc = parse_ecs_run_config(spec.run_config_json);
    cluster = rc && rc->cluster ? *rc->cluster : service_->options.defaults.cluster;
  }
  auto r = service_->call("DescribeTasks", {{"cluster", cluster}, {"tasks", {infra.id}}, {"include", {"TAGS"}}});
  if (!r) return r.status();
  const json* task = nullptr;
  if (auto it = r->find("tasks"); it != r->end() && it->is_array())
    for (const auto& t : *it)
      if (t.is_object() && t.value("taskArn", "") == infra.id) task = &t;
  if (!task) return not_found("the run's ECS task " + infra.id + " is gone from cluster " + cluster);
  std::string run_tag;
  if (auto tags = task->find("tags"); tags != task->end() && tags->is_array())
    for (const auto& t : *tags)
      if (t.is_object() && t.value("key", "") == kRunTag) run_tag = t.value("value", "");
  if (run_tag != spec.flow_run_id)
    return Status(StatusCode::kUnprocessable, "ECS task " + infra.id + " is not the task of run " + spec.flow_run_id +
                                                  (run_tag.empty() ? " (it has no culvert:flow-run-id tag)"
                                                                   : " (it is tagged for run " + run_tag + ")"));
  auto launch = std::make_unique<EcsLaunch>(service_, infra.id, cluster, spec.flow_run_id,
                                            service_->options.defaults.log_group);
  launch->update(task, "");
  return std::unique_ptr<Launch>(std::move(launch));
}

Result<std::unique_ptr<Launch>> EcsLauncher::find(const LaunchSpec& spec) {
  constexpr int kMaxPages = 20;  // 2,000 running tasks of this agent at most
  auto rc = parse_ecs_run_config(spec.run_config_json);
  std::string cluster = rc && rc->cluster ? *rc->cluster : service_->options.defaults.cluster;
  const std::string by = started_by(service_->options.agent_name);
  std::string token;
  for (int page = 0; page < kMaxPages; ++page) {
    json req = {{"cluster", cluster}, {"startedBy", by}, {"maxResults", 100}};
    if (!token.empty()) req["nextToken"] = token;
    auto list = service_->call("ListTasks", req);
    if (!list) return list.status();
    json arns = list->value("taskArns", json::array());
    if (arns.is_array() && !arns.empty()) {
      auto d = service_->call("DescribeTasks", {{"cluster", cluster}, {"tasks", arns}, {"include", {"TAGS"}}});
      if (!d) return d.status();
      for (const auto& t : d->value("tasks", json::array())) {
        if (!t.is_object()) continue;
        for (const auto& tag : t.value("tags", json::array()))
          if (tag.is_object() && tag.value("key", "") == kRunTag && tag.value("value", "") == spec.flow_run_id) {
            auto launch = std::make_unique<EcsLaunch>(service_, t.value("taskArn", ""), cluster, spec.flow_run_id,
                                                      service_->options.defaults.log_group);
            launch->update(&t, "");
            return std::unique_ptr<Launch>(std::move(launch));
          }
      }
    }
    auto next = list->find("nextToken");
    if (next == list->end() || !next->is_string() || next->get<std::string>().empty()) break;
    token = next->get<std::string>();
  }
  return not_found("no task of run " + spec.flow_run_id + " among those " + by + " started in cluster " + cluster);
}

std::vector<std::optional<ExitInfo>> EcsLauncher::poll_all(const std::vector<Launch*>& launches) {
  std::map<std::string, std::vector<EcsLaunch*>> by_cluster;
  std::vector<EcsLaunch*> ecs;
  ecs.reserve(launches.size());
  for (Launch* l : launches) {
    auto* e = dynamic_cast<EcsLaunch*>(l);  // every launch here was made by this launcher
    ecs.push_back(e);
    if (e) by_cluster[e->cluster()].push_back(e);
  }
  // And those whose run ended while their task still runs (EcsLaunch::stop_lingering),
  // which the agent does not pass while it stops them: in the same batches. (They live
  // until their stop returned, which the agent waits for on this thread.)
  for (EcsLaunch* l : service_->lingering()) {
    auto& list = by_cluster[l->cluster()];
    if (std::find(list.begin(), list.end(), l) == list.end()) list.push_back(l);
  }
  for (auto& [cluster, list] : by_cluster) EcsLaunch::describe_batch(*service_, cluster, list);
  std::vector<std::optional<ExitInfo>> out;
  out.reserve(launches.size());
  for (size_t i = 0; i < launches.size(); ++i) out.push_back(ecs[i] ? ecs[i]->exit() : launches[i]->poll());
  return out;
}

}  // namespace culvert::agent::ecs

namespace culvert::agent {

namespace {
std::vector<std::string> split_list(const LauncherContext& ctx, const std::string& name) {
  std::vector<std::string> out;
  auto add = [&](const std::string& v) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!item.empty()) out.push_back(item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  };
  if (auto it = ctx.repeated_flags.find(name); it != ctx.repeated_flags.end())
    for (const auto& v : it->second) add(v);
  if (auto it = ctx.flags.find(name); it != ctx.flags.end()) add(it->second);
  return out;
}
// The --task-definition-file template: a JSON object of at most 256 KiB.
Result<nlohmann::json> read_template(const std::string& path) {
  constexpr std::uintmax_t kMax = 256 * 1024;
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return invalid_argument("--task-definition-file " + path + ": " + ec.message());
  if (size > kMax) return invalid_argument("--task-definition-file " + path + " is over 256 KiB");
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return invalid_argument("--task-definition-file " + path + ": cannot read it");
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return invalid_argument("--task-definition-file " + path + " is not a JSON object");
  return j;
}
}  // namespace

LauncherType ecs_launcher_type() {
  using Kind = LauncherFlag::Kind;
  return LauncherType{
      .type = "ecs",
      .description = "runs each flow run as an AWS ECS task (Fargate, Fargate Spot or EC2)",
      .flags =
          {{"cluster", "ecs: the cluster of the tasks (default 'default'; the run config's cluster wins)"},
           {"launch-type", "ecs: FARGATE (default), FARGATE_SPOT (as a capacity-provider strategy) or EC2"},
           {"task-role-arn", "ecs: the IAM role the flow's container runs as (its S3 access)"},
           {"execution-role-arn", "ecs: the IAM role ECS pulls the image and writes logs with"},
           {"subnet", "ecs: a subnet of the tasks' awsvpc network (repeatable, or comma-separated)", Kind::kRepeated},
           {"security-group", "ecs: a security group of the tasks (repeatable, or comma-separated)", Kind::kRepeated},
           {"assign-public-ip", "ecs: give Fargate tasks a public IP (needed in public subnets without a NAT)",
            Kind::kSwitch},
           {"region", "ecs: the AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1)"},
           {"endpoint-url", "ecs: the ECS endpoint, for AWS-compatible services (env CULVERT_AWS_ENDPOINT_URL)"},
           {"task-definition-file",
            "ecs: a task-definition template (JSON, RegisterTaskDefinition's shape) for run configs without one"},
           {"log-group", "ecs: send the flow container's output to this CloudWatch Logs group (created if missing)"},
           {"platform-version", "ecs: the Fargate platform version (default LATEST)"},
           {"task-start-timeout", "ecs: stop a task, and crash its run, when it is not RUNNING within this (default 10m)"},
           {"poll-interval", "ecs: how often the tasks are described, one call per 100 tasks (default 5s)"}},
      .factory = [](const LauncherContext& ctx) -> Result<std::unique_ptr<Launcher>> {
        auto flag = [&](const std::string& name) -> std::string {
          auto it = ctx.flags.find(name);
          return it == ctx.flags.end() ? std::string() : it->second;
        };
        ecs::EcsLauncherOptions o;
        ecs::EcsDefaults& d = o.defaults;
        if (!flag("cluster").empty()) d.cluster = flag("cluster");
        if (!flag("launch-type").empty()) {
          auto lt = ecs::parse_launch_type(flag("launch-type"));
          if (!lt) return lt.status();
          d.launch_type = *lt;
        }
        d.task_role_arn = flag("task-role-arn");
        d.execution_role_arn = flag("execution-role-arn");
        d.subnets = split_list(ctx, "subnet");
        d.security_groups = split_list(ctx, "security-group");
        d.assign_public_ip = flag("assign-public-ip") == "true";
        d.log_group = flag("log-group");
        if (std::string path = flag("task-definition-file"); !path.empty()) {
          auto tmpl = read_template(path);
          if (!tmpl) return tmpl.status();
          d.task_definition_template = std::move(*tmpl);
        }
        d.platform_version = flag("platform-version");
        for (auto [name, value] : {std::pair{"task-start-timeout", &o.task_start_timeout},
                                   std::pair{"poll-interval", &o.poll_interval}}) {
          if (flag(name).empty()) continue;
          auto dur = parse_duration(flag(name));
          if (!dur || dur->count() <= 0)
            return invalid_argument(fmt::format("--{} '{}' is not a duration above 0 (e.g. 90s, 10m)", name, flag(name)));
          *value = *dur;
        }
        aws::EnvLookup env = [getenv = ctx.getenv](std::string_view k) -> std::optional<std::string> {
          return getenv ? getenv(std::string(k)) : std::nullopt;
        };
        o.region = aws::resolve_region(env, flag("region"));
        d.region = o.region;
        o.endpoint_url = flag("endpoint-url");
        if (o.endpoint_url.empty())
          if (auto e = env("CULVERT_AWS_ENDPOINT_URL")) o.endpoint_url = *e;
        if (!o.endpoint_url.empty())
          if (auto u = aws::parse_url(o.endpoint_url); !u)
            return invalid_argument("--endpoint-url: " + u.status().message());
        o.agent_name = ctx.agent_name.empty() ? "ecs-agent" : ctx.agent_name;
        o.credentials = aws::default_credentials_chain(env);
        return std::unique_ptr<Launcher>(std::make_unique<ecs::EcsLauncher>(std::move(o)));
      }};
}

}  // namespace culvert::agent
