// Command tasks: /bin/sh -c in a new process group through the ProcessLauncher,
// output lines logged, SIGTERM then SIGKILL on timeout or cancellation.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <signal.h>
#include <thread>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "engine/run_core.hpp"

namespace culvert {
namespace detail {
namespace {

bool is_env_name(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

}  // namespace

void RunCore::run_shell(TaskRunRt* tr, const Node& node, TaskContext& ctx) {
  const NodeOptions& o = *node.opt;
  ProcessSpec spec{o.command, o.env, o.working_dir};
  spec.env.emplace("CULVERT_FLOW_NAME", flow.name);
  spec.env.emplace("CULVERT_FLOW_RUN_ID", flow_run_id);
  spec.env.emplace("CULVERT_TASK_NAME", node.name);
  spec.env.emplace("CULVERT_MAP_INDEX", std::to_string(tr->map_index));
  // The run's parameter values, one variable per parameter whose name can be one
  // (YAML flow files refer to them for their {{ name }} placeholders).
  for (const auto& [name, value] : param_text)
    if (is_env_name(name)) spec.env.emplace("CULVERT_PARAM_" + name, value);
  auto proc = launcher_->spawn(spec);
  if (!proc) throw std::runtime_error(proc.status().message());
  Process& p = **proc;
  auto on_line = [&](bool is_err, std::string_view line) {
    ctx.log(is_err ? LogLevel::kWarning : LogLevel::kInfo, line);
  };
  bool closed = false, exited = false, term_sent = false, kill_sent = false;
  int status = 0;
  SteadyTime term_at{};
  for (;;) {
    if (!closed) closed = p.read_output(50, on_line);
    if (!exited) exited = p.try_wait(&status);
    if (exited) {
      for (int i = 0; i < 64 && !closed; ++i) closed = p.read_output(0, on_line);
      p.flush(on_line);
      break;
    }
    if (closed) std::this_thread::sleep_for(std::chrono::milliseconds(10));  // child still running, pipes closed
    if (!term_sent && ctx.cancelled()) {
      p.signal_group(SIGTERM);
      term_sent = true;
      term_at = clock.steady_now();
      ctx.warning(std::string(ctx.token().timed_out() ? "timeout" : "cancelled") + ": sent SIGTERM to process group " +
                  std::to_string(p.pid()));
    } else if (term_sent && !kill_sent && clock.steady_now() - term_at >= o.kill_grace) {
      p.signal_group(SIGKILL);
      kill_sent = true;
      ctx.warning("sent SIGKILL to process group " + std::to_string(p.pid()));
    }
  }
  if (term_sent) p.signal_group(SIGKILL);  // whatever is left of the group
  if (term_sent && ctx.token().timed_out()) throw std::runtime_error("process group killed");
  if (term_sent) throw std::runtime_error("process group killed");
  if (status != 0) throw CommandFailed(status, "command exited with status " + std::to_string(status));
}


}  // namespace detail
}  // namespace culvert
