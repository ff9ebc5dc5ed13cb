#include "agent/slurm/slurm_job.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <regex>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/timefmt.hpp"

namespace culvert::agent::slurm {

using nlohmann::json;

namespace {

constexpr size_t kMaxOptions = 64;
constexpr size_t kMaxOptionLength = 1024;
constexpr size_t kMaxSetupLines = 100;
constexpr size_t kMaxSetupLine = 4096;

// The options the agent sets itself; a run config or --sbatch-option may not.
constexpr std::array kReservedOptions = {"parsable", "job-name", "comment", "output", "error", "input", "export",
                                         "export-file", "wrap", "array", "wait", "test-only", "uid", "gid",
                                         "open-mode", "help", "usage", "version"};

bool is_env_name(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

Result<std::optional<std::string>> string_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return invalid_argument(fmt::format("run config \"{}\" must be a string", key));
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::vector<std::string>> string_list(const json& j, const char* key, size_t max, size_t max_len) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return invalid_argument(fmt::format("run config \"{}\" must be a list of strings", key));
  if (it->size() > max) return invalid_argument(fmt::format("run config \"{}\" has over {} items", key, max));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_string()) return invalid_argument(fmt::format("run config \"{}\"[{}] must be a string", key, i));
    std::string s = v.get<std::string>();
    if (s.size() > max_len) return invalid_argument(fmt::format("run config \"{}\"[{}] is over {} bytes", key, i, max_len));
    if (s.find('\0') != std::string::npos || s.find('\n') != std::string::npos || s.find('\r') != std::string::npos)
      return invalid_argument(fmt::format("run config \"{}\"[{}] holds a line break or NUL", key, i));
    out.push_back(std::move(s));
  }
  return out;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string signal_name(int sig) {
  switch (sig) {
    case 1: return "SIGHUP";
    case 2: return "SIGINT";
    case 6: return "SIGABRT";
    case 9: return "SIGKILL";
    case 11: return "SIGSEGV";
    case 15: return "SIGTERM";
    default: return "";
  }
}

// "3:0" → {3, 0}
std::pair<int, int> parse_exit_pair(const std::string& s) {
  int code = 0, sig = 0;
  auto colon = s.find(':');
  std::string a = s.substr(0, colon);
  std::from_chars(a.data(), a.data() + a.size(), code);
  if (colon != std::string::npos) {
    std::string b = s.substr(colon + 1);
    std::from_chars(b.data(), b.data() + b.size(), sig);
  }
  return {code, sig};
}

std::string json_state(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array() && !v.empty() && v[0].is_string()) return v[0].get<std::string>();  // 23.02+: a list of flags
  return "";
}

int json_int(const json& v, int fallback = 0) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_object()) {  // 23.02+: {"set":true,"infinite":false,"number":N}
    if (auto n = v.find("number"); n != v.end() && n->is_number_integer()) return n->get<int>();
  }
  return fallback;
}

}  // namespace

bool is_agent_credential(const std::string& name) {
  return name == "CULVERT_API_TOKEN" || name == "CULVERT_API_URL" || name == "CULVERT_PROFILE";
}

Status check_slurm_name(const std::string& value, const std::string& what) {
  if (value.empty() || value.size() > 128)
    return invalid_argument(fmt::format("{} '{}' must have 1 to 128 characters", what, value.substr(0, 140)));
  if (value[0] == '-') return invalid_argument(fmt::format("{} '{}' must not start with '-'", what, value));
  for (char c : value)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_.:@+,-").find(c) != std::string_view::npos))
      return invalid_argument(fmt::format("{} '{}' may hold only letters, digits and _.:@+,-", what, value));
  return Status::ok();
}

Status check_sbatch_option(const std::string& option, const std::string& what) {
  if (option.size() > kMaxOptionLength) return invalid_argument(fmt::format("{}: an option is over 1024 bytes", what));
  if (option.find('\0') != std::string::npos || option.find('\n') != std::string::npos ||
      option.find('\r') != std::string::npos)
    return invalid_argument(fmt::format("{} '{}' holds a line break or NUL", what, option));
  static const std::regex form("--([a-z][a-z0-9-]*)(=.*)?");
  std::smatch m;
  if (!std::regex_match(option, m, form))
    return invalid_argument(fmt::format(
        "{} '{}' is not an sbatch option in its long form, --name or --name=value (e.g. --constraint=haswell)", what,
        option));
  std::string name = m[1].str();
  for (const char* r : kReservedOptions)
    if (name == r)
      return invalid_argument(fmt::format("{} '{}': the agent sets --{} itself", what, option, name));
  return Status::ok();
}

Result<std::string> slurm_time_limit(const std::string& value) {
  static const std::regex slurm_form(R"((\d+-)?\d+(:\d+){0,2}|\d+-\d+)");
  static const std::regex duration_form(R"(\d+(ms|s|m|h|d)((\d+(ms|s|m|h|d))*))");
  if (value.empty() || value.size() > 32)
    return invalid_argument(fmt::format("run config \"time_limit\" '{}' is not a time limit", value.substr(0, 40)));
  if (std::regex_match(value, duration_form)) {
    auto d = parse_duration(value);
    if (!d || d->count() <= 0)
      return invalid_argument(fmt::format("run config \"time_limit\" '{}' is not a duration above 0", value));
    auto minutes = (d->count() + 59999) / 60000;
    return std::to_string(minutes);
  }
  if (std::regex_match(value, slurm_form)) return value;
  return invalid_argument(fmt::format(
      "run config \"time_limit\" '{}' is neither a duration (90s, 30m, 2h) nor Slurm's form (minutes, H:M:S, D-H:M:S)",
      value));
}

Result<std::string> slurm_memory(const std::string& value) {
  static const std::regex form(R"((\d{1,12})([kKmMgGtT])?[bB]?)");
  std::smatch m;
  if (!std::regex_match(value, m, form) || m[1].str() == "0")
    return invalid_argument(fmt::format("run config \"memory\" '{}' is not an amount such as 512M or 4G", value.substr(0, 40)));
  return m[1].str() + upper(m[2].str());
}

Result<SlurmRunConfig> parse_slurm_run_config(const std::string& run_config_json) {
  json j = json::parse(run_config_json.empty() ? "{}" : run_config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument("the run config is not a JSON object");
  SlurmRunConfig rc;
  for (auto [key, into] : {std::pair{"partition", &rc.partition}, std::pair{"account", &rc.account},
                           std::pair{"qos", &rc.qos}}) {
    auto v = string_field(j, key);
    if (!v) return v.status();
    if (*v) {
      Status st = check_slurm_name(**v, fmt::format("run config \"{}\"", key));
      if (!st.is_ok()) return st;
    }
    *into = *v;
  }
  if (auto it = j.find("cpus"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<long long>() < 1 || it->get<long long>() > 100000)
      return invalid_argument("run config \"cpus\" must be a whole number from 1 to 100000");
    rc.cpus = it->get<int>();
  }
  if (auto it = j.find("memory"); it != j.end() && !it->is_null()) {
    std::string text;
    if (it->is_number_integer() && it->get<long long>() > 0) text = std::to_string(it->get<long long>());
    else if (it->is_string()) text = it->get<std::string>();
    else return invalid_argument("run config \"memory\" must be a string such as \"4G\" (or a number of MB)");
    auto m = slurm_memory(text);
    if (!m) return m.status();
    rc.memory = *m;
  }
  if (auto it = j.find("time_limit"); it != j.end() && !it->is_null()) {
    std::string text;
    if (it->is_number_integer() && it->get<long long>() > 0) text = std::to_string(it->get<long long>());
    else if (it->is_string()) text = it->get<std::string>();
    else return invalid_argument("run config \"time_limit\" must be a string such as \"30m\" (or a number of minutes)");
    auto t = slurm_time_limit(text);
    if (!t) return t.status();
    rc.time_limit = *t;
  }
  auto opts = string_list(j, "sbatch_options", kMaxOptions, kMaxOptionLength);
  if (!opts) return opts.status();
  for (size_t i = 0; i < opts->size(); ++i) {
    Status st = check_sbatch_option((*opts)[i], fmt::format("run config \"sbatch_options\"[{}]", i));
    if (!st.is_ok()) return st;
  }
  rc.sbatch_options = std::move(*opts);
  auto setup = string_list(j, "setup", kMaxSetupLines, kMaxSetupLine);
  if (!setup) return setup.status();
  rc.setup = std::move(*setup);
  return rc;
}

std::string job_name_for(const std::string& flow_name, const std::string& run_id) {
  std::string flow;
  for (char c : flow_name) {
    if (flow.size() >= 64) break;
    flow += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '_';
  }
  if (flow.empty()) flow = "flow";
  return "culvert-" + flow + "-" + run_id;
}

std::string job_comment_for(const std::string& run_id) { return "culvert-run=" + run_id; }

namespace {
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}
}  // namespace

Result<Submission> build_submission(const SlurmDefaults& defaults, const SlurmRunConfig& rc, const LaunchSpec& spec,
                                    const std::map<std::string, std::string>& base_env) {
  Submission s;
  s.job_name = job_name_for(spec.flow_name, spec.flow_run_id);
  s.output_pattern = defaults.job_output_dir + "/" + spec.flow_run_id + "-%j.out";
  // sbatch's environment: the agent's (without its credentials), then the run's. Only
  // the names in --export reach the job.
  for (const auto& [k, v] : base_env)
    if (!is_agent_credential(k)) s.env[k] = v;
  std::vector<std::string> exported;
  for (const char* k : {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"})
    if (s.env.count(k) && !spec.env.count(k)) exported.push_back(k);
  // The agent's own Culvert settings (CULVERT_HEARTBEAT_SECONDS, ...), as a local run
  // inherits them; the run's own variables win.
  for (const auto& [k, v] : s.env)
    if (k.starts_with("CULVERT_") && !spec.env.count(k) && is_env_name(k)) exported.push_back(k);
  for (const auto& [k, v] : spec.env) {
    if (!is_env_name(k))
      return invalid_argument(fmt::format("the run's environment variable '{}' is not a valid name for Slurm's --export "
                                          "(letters, digits and _, not starting with a digit)",
                                          k.substr(0, 64)));
    s.env[k] = v;
    exported.push_back(k);
  }
  std::string export_list;
  for (const auto& k : exported) export_list += (export_list.empty() ? "" : ",") + k;
  s.argv = {"sbatch",
            "--parsable",
            "--job-name=" + s.job_name,
            "--comment=" + job_comment_for(spec.flow_run_id),
            "--output=" + s.output_pattern,
            "--export=" + (export_list.empty() ? std::string("NONE") : export_list)};
  for (const auto& o : defaults.sbatch_options) s.argv.push_back(o);
  auto pick = [](const std::optional<std::string>& mine, const std::string& agent) { return mine ? *mine : agent; };
  if (std::string p = pick(rc.partition, defaults.partition); !p.empty()) s.argv.push_back("--partition=" + p);
  if (std::string a = pick(rc.account, defaults.account); !a.empty()) s.argv.push_back("--account=" + a);
  if (std::string q = pick(rc.qos, defaults.qos); !q.empty()) s.argv.push_back("--qos=" + q);
  if (rc.cpus) s.argv.push_back("--cpus-per-task=" + std::to_string(*rc.cpus));
  if (rc.memory) s.argv.push_back("--mem=" + *rc.memory);
  if (rc.time_limit) s.argv.push_back("--time=" + *rc.time_limit);
  for (const auto& o : rc.sbatch_options) s.argv.push_back(o);

  std::string flow_label;
  for (char c : spec.flow_name) flow_label += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  std::ostringstream script;
  script << "#!/bin/sh\n"
         << "# Culvert flow run " << spec.flow_run_id << " of flow " << flow_label.substr(0, 200) << ".\n"
         << "# Its settings (and its token) come in the environment, named by sbatch --export.\n"
         << "set -e\n"
         // Slurm's own SIGTERM (time limit, preemption) is not a cancel: the agent sets
         // the run's end from the job's state.
         << "export CULVERT_SIGNALLED_END=agent\n";
  for (const auto& line : rc.setup) script << line << "\n";
  script << "exec " << shell_quote(defaults.culvert_binary) << " execute\n";
  s.script = script.str();
  return s;
}

Result<std::vector<JobRecord>> parse_squeue_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument("squeue --json: the output is not a JSON object");
  auto jobs = j.find("jobs");
  if (jobs == j.end() || !jobs->is_array()) return invalid_argument("squeue --json: the output has no \"jobs\" list");
  std::vector<JobRecord> out;
  out.reserve(jobs->size());
  for (const auto& job : *jobs) {
    if (!job.is_object()) continue;
    auto id = job.find("job_id");
    if (id == job.end() || !id->is_number_integer()) continue;
    JobRecord r;
    r.id = std::to_string(id->get<long long>());
    r.name = job.value("name", "");
    if (auto c = job.find("comment"); c != job.end() && c->is_string()) r.comment = c->get<std::string>();
    if (auto u = job.find("user_name"); u != job.end() && u->is_string()) r.user = u->get<std::string>();
    if (auto st = job.find("job_state"); st != job.end()) r.state = json_state(*st);
    if (auto re = job.find("state_reason"); re != job.end() && re->is_string()) r.reason = re->get<std::string>();
    if (auto ec = job.find("exit_code"); ec != job.end()) {
      if (ec->is_object() && ec->contains("return_code")) {  // 23.02+
        r.exit_code = json_int((*ec)["return_code"]);
        if (auto sig = ec->find("signal"); sig != ec->end() && sig->is_object())
          r.signal = json_int(sig->value("id", json()), 0);
      } else {
        int status = json_int(*ec);  // 22.05: the wait status
        r.signal = status & 0x7f;
        r.exit_code = (status >> 8) & 0xff;
      }
    }
    if (auto f = job.find("flags"); f != job.end() && f->is_array())
      for (const auto& flag : *f)
        if (flag.is_string() && flag.get<std::string>() == "JOB_MEM_SET") r.memory_set = true;
    if (auto m = job.find("memory_per_node"); m != job.end()) {
      int mb = json_int(*m, 0);
      if (mb > 0) r.memory = std::to_string(mb) + "M";
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<JobRecord> parse_sacct(const std::string& text) {
  std::vector<JobRecord> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    size_t start = 0;
    while (true) {
      size_t bar = line.find('|', start);
      f.push_back(line.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
    if (f.size() < 3 || f[0].empty() || !std::all_of(f[0].begin(), f[0].end(), ::isdigit)) continue;
    JobRecord r;
    r.id = f[0];
    std::string state = f[1];
    if (auto by = state.find(" by "); by != std::string::npos) {
      r.cancelled_by = state.substr(by + 4);
      state = state.substr(0, by);
    }
    r.state = state;
    auto [code, sig] = parse_exit_pair(f[2]);
    r.exit_code = code;
    r.signal = sig;
    if (f.size() > 3) r.name = f[3];
    if (f.size() > 4) r.comment = f[4];
    if (f.size() > 5 && !f[5].empty() && f[5] != "0" && f[5] != "0n") {
      r.memory_set = true;
      r.memory = f[5];
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::map<std::string, JobRecord> parse_jobcomp(const std::string& text) {
  std::map<std::string, JobRecord> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::map<std::string, std::string> kv;
    std::istringstream words(line);
    for (std::string w; words >> w;)
      if (auto eq = w.find('='); eq != std::string::npos) kv[w.substr(0, eq)] = w.substr(eq + 1);
    auto id = kv.find("JobId");
    if (id == kv.end() || id->second.empty() || !kv.count("JobState")) continue;
    JobRecord r;
    r.id = id->second;
    r.name = kv["Name"];
    r.state = kv["JobState"];
    auto [code, sig] = parse_exit_pair(kv.count("ExitCode") ? kv["ExitCode"] : "0:0");
    r.exit_code = code;
    r.signal = sig;
    if (auto t = kv.find("Tres"); t != kv.end())
      if (auto m = t->second.find("mem="); m != std::string::npos) {
        auto end = t->second.find(',', m);
        r.memory = t->second.substr(m + 4, end == std::string::npos ? std::string::npos : end - m - 4);
      }
    out[r.id] = std::move(r);
  }
  return out;
}

bool is_pending_state(const std::string& state) {
  return state == "PENDING" || state == "CONFIGURING" || state == "REQUEUED" || state == "REQUEUE_HOLD" ||
         state == "REQUEUE_FED" || state == "RESV_DEL_HOLD";
}

bool is_final_state(const std::string& state) {
  return state == "COMPLETED" || state == "FAILED" || state == "TIMEOUT" || state == "CANCELLED" ||
         state == "OUT_OF_MEMORY" || state == "NODE_FAIL" || state == "PREEMPTED" || state == "BOOT_FAIL" ||
         state == "DEADLINE" || state == "REVOKED" || state == "SPECIAL_EXIT";
}

ExitInfo exit_of_job(const JobRecord& job) {
  ExitInfo e;
  e.exit_code = job.exit_code;
  e.signal = job.signal;
  const std::string head = fmt::format("Slurm job {} ended {}", job.id, job.state);
  auto by_signal = [&] {
    std::string name = signal_name(job.signal);
    return fmt::format("killed by signal {}{}", job.signal, name.empty() ? "" : " (" + name + ")");
  };
  if (job.state == "COMPLETED") {
    e.reason = fmt::format("Slurm job {} COMPLETED with exit code {}", job.id, job.exit_code);
  } else if (job.state == "FAILED") {
    if (job.signal != 0) {
      e.reason = fmt::format("Slurm job {} FAILED: {}", job.id, by_signal());
      if (job.signal == 9 && job.memory_set)
        e.reason += fmt::format(
            "; it asked for --mem={}, and a node without cgroups (jobacct_gather OverMemoryKill) ends a job over its "
            "memory this way",
            job.memory.empty() ? "?" : job.memory);
    } else {
      e.reason = fmt::format("Slurm job {} FAILED with exit code {}", job.id, job.exit_code);
    }
    if (e.exit_code == 0 && e.signal == 0) e.exit_code = -1;
  } else if (job.state == "OUT_OF_MEMORY") {
    e.reason = head + (job.memory.empty() ? ": it used more memory than it asked for"
                                           : fmt::format(": it used more than the {} it asked for (--mem)", job.memory));
    e.oom_killed = false;  // the reason names it; the agent's container wording does not apply
    e.exit_code = -1;
  } else if (job.state == "TIMEOUT") {
    e.reason = head + ": Slurm killed it at its time limit";
    e.timed_out = true;
  } else if (job.state == "NODE_FAIL") {
    e.reason = head + ": its node failed";
  } else if (job.state == "PREEMPTED") {
    e.reason = head + ": another job preempted it";
  } else if (job.state == "BOOT_FAIL") {
    e.reason = head + ": its node failed to boot";
  } else if (job.state == "DEADLINE") {
    e.reason = head + ": it reached its deadline";
  } else if (job.state == "CANCELLED") {
    e.reason = job.cancelled_by.empty() ? head + " (scancel, not by this agent)"
                                        : head + " by uid " + job.cancelled_by + " (scancel, not by this agent)";
  } else {
    e.reason = head;
  }
  if (job.state != "COMPLETED" && job.state != "FAILED" && e.exit_code == 0 && e.signal == 0) e.exit_code = -1;
  return e;
}

}  // namespace culvert::agent::slurm
