// culvert::main: the command line every flow binary gets.
#include <culvert/main.hpp>

#include <culvert/executor.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <map>
#include <mutex>
#include <poll.h>
#include <signal.h>
#include <thread>
#include <unistd.h>

#include "core/timefmt.hpp"
#include "engine/flow_impl.hpp"

namespace culvert {

namespace {

struct Subcommand {
  std::string help;
  std::string usage;
  SubcommandHandler handler;
};

// The table of added subcommands. A process-wide registry is the point of this seam:
// libraries linked into the flow binary add their subcommands without the engine
// knowing them. Guarded by its mutex.
struct Registry {
  std::mutex mu;
  std::map<std::string, Subcommand> commands;
};
Registry& registry() {
  static Registry r;  // constructed on first use, so static initializers may register
  return r;
}

const char* kBuiltins[] = {"run", "describe", "graph", "help"};

const char kRunUsage[] =
    "usage: {prog} run [--param NAME=VALUE]... [--workers N] [--output table|json] [--flow-run-id ID]\n"
    "Runs the flow here, prints task-run states and logs to stderr and a summary to stdout.\n"
    "  -p, --param NAME=VALUE  a parameter value (repeatable; each name once)\n"
    "  -w, --workers N         worker threads, 1 to 1024 (default: 1)\n"
    "  -o, --output FORMAT     table (default) or json: exactly one JSON document on stdout\n"
    "                          (text is accepted as an older name of table)\n"
    "  --flow-run-id ID        the run's id (default: a new UUID)\n"
    "Exit status: 0 when the run ends Success, 1 otherwise, 2 for bad usage or an invalid flow.\n";
const char kDescribeUsage[] =
    "usage: {prog} describe [--output json]\n"
    "Prints the flow's description (tasks, edges, parameters, run config, schedule) as JSON.\n";
const char kGraphUsage[] =
    "usage: {prog} graph --dot\n"
    "Prints the task graph in Graphviz DOT; dashed edges are ordering-only.\n";

std::string with_prog(std::string_view text, const std::string& prog) {
  std::string out(text);
  for (size_t at = out.find("{prog}"); at != std::string::npos; at = out.find("{prog}", at + prog.size()))
    out.replace(at, 6, prog);
  return out;
}

void usage(std::ostream& os, const std::string& prog) {
  os << "usage: " << prog << " <command> [options]   (" << prog << " <command> --help for its options)\n\n"
     << "commands:\n"
     << "  run [--param NAME=VALUE]... [--workers N] [--output table|json] [--flow-run-id ID]\n"
     << "                      run the flow here and print a summary\n"
     << "  describe            print the flow's description as JSON\n"
     << "  graph --dot         print the task graph in Graphviz DOT\n";
  std::lock_guard lk(registry().mu);
  for (const auto& [name, c] : registry().commands) os << "  " << name << std::string(name.size() < 20 ? 20 - name.size() : 1, ' ') << c.help << "\n";
}

bool asks_for_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

int bad_usage(const std::string& prog, const std::string& msg) {
  std::cerr << prog << ": " << msg << "\n(run '" << prog << " help' for usage)\n";
  return 2;
}

// Prints log lines and task-run state changes to stderr as they happen.
class ConsoleObserver final : public RunObserver {
 public:
  void on_task_run(const TaskRunEvent& ev) override {
    if (ev.state == State::kRunning || ev.state == State::kSuccess) return;  // the summary has them
    std::string line = format_rfc3339(ev.timestamp) + " " + name(ev.task, ev.map_index) + " " + state_name(ev.state);
    if (!ev.message.empty()) line += ": " + std::string(ev.message);
    write(line);
  }
  void on_log(const LogEvent& ev) override {
    write(format_rfc3339(ev.timestamp) + " " + name(ev.task, ev.map_index) + " " + log_level_name(ev.level) + " " +
          std::string(ev.message));
  }

 private:
  static std::string name(std::string_view task, int map_index) {
    std::string n(task);
    if (map_index >= 0) n += "[" + std::to_string(map_index) + "]";
    return n;
  }
  void write(const std::string& line) {
    std::lock_guard lk(mu_);
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
  std::mutex mu_;
};

int cmd_run(const Flow& flow, const std::string& prog, const std::vector<std::string>& args) {
  RunOptions opts;
  int workers = 1;
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool has_inline = false;
    if (a.starts_with("--") && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline = true;
    }
    auto next = [&](const char* flag) -> bool {
      if (has_inline) return true;
      if (i + 1 >= args.size()) return false;
      value = args[++i];
      (void)flag;
      return true;
    };
    if (a == "--param" || a == "-p") {
      if (!next("--param")) return bad_usage(prog, "--param needs NAME=VALUE");
      std::string k, v;
      if (Status s = parse_param_assignment(value, k, v); !s) return bad_usage(prog, s.message());
      if (opts.parameters.count(k) != 0) return bad_usage(prog, "parameter '" + k + "' is given twice");
      opts.parameters[k] = v;
    } else if (a == "--workers" || a == "-w") {
      if (!next("--workers")) return bad_usage(prog, "--workers needs a number");
      char* end = nullptr;
      long n = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 1 || n > 1024)
        return bad_usage(prog, "--workers expects a number from 1 to 1024, got '" + value + "'");
      workers = static_cast<int>(n);
    } else if (a == "--output" || a == "-o") {
      if (!next("--output")) return bad_usage(prog, "--output needs table or json");
      if (value == "json") json = true;
      else if (value == "table" || value == "text") json = false;  // text: the older name of table
      else return bad_usage(prog, "--output expects table or json, got '" + value + "'");
    } else if (a == "--flow-run-id") {
      if (!next("--flow-run-id")) return bad_usage(prog, "--flow-run-id needs an id");
      opts.flow_run_id = value;
    } else {
      return bad_usage(prog, "run: unknown option '" + args[i] + "'");
    }
  }
  CancellationSource cancel;
  SignalCancellation signals(cancel);
  ConsoleObserver console;
  opts.observers.push_back(&console);
  opts.cancel = &cancel;
  Executor executor(workers);
  auto result = executor.run(flow, opts);
  if (!result) {
    std::cerr << prog << ": " << result.status().message() << "\n";
    return 2;
  }
  if (json) {
    std::cout << result->to_json() << std::endl;
  } else {
    std::cout << result->to_text() << std::flush;
  }
  return result->state == State::kSuccess ? 0 : 1;
}

}  // namespace

Status parse_param_assignment(const std::string& text, std::string& name, std::string& value) {
  size_t eq = text.find('=');
  if (eq == std::string::npos) return invalid_argument("--param expects NAME=VALUE, got '" + text + "'");
  name = text.substr(0, eq);
  value = text.substr(eq + 1);
  if (name.empty()) return invalid_argument("--param expects NAME=VALUE, got '" + text + "' (empty name)");
  return Status::ok();
}

bool register_subcommand(std::string name, std::string help, SubcommandHandler handler, std::string usage) {
  for (const char* b : kBuiltins)
    if (name == b) return false;
  if (usage.empty()) usage = "usage: {prog} " + name + "\n" + help + "\n";
  std::lock_guard lk(registry().mu);
  return registry()
      .commands.emplace(std::move(name), Subcommand{std::move(help), std::move(usage), std::move(handler)})
      .second;
}

int main(const Flow& flow, int argc, char** argv) {
  std::string prog = argc > 0 && argv[0] != nullptr ? argv[0] : flow.name();
  if (size_t slash = prog.rfind('/'); slash != std::string::npos) prog = prog.substr(slash + 1);
  if (argc < 2) {
    usage(std::cerr, prog);
    return 2;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    usage(std::cout, prog);
    return 0;
  }
  // `<command> --help` answers before the flow is validated or anything runs.
  if (asks_for_help(args)) {
    if (cmd == "run") std::cout << with_prog(kRunUsage, prog);
    else if (cmd == "describe") std::cout << with_prog(kDescribeUsage, prog);
    else if (cmd == "graph") std::cout << with_prog(kGraphUsage, prog);
    else {
      std::string text;
      {
        std::lock_guard lk(registry().mu);
        auto it = registry().commands.find(cmd);
        if (it == registry().commands.end()) return bad_usage(prog, "unknown command '" + cmd + "'");
        text = it->second.usage;
      }
      std::cout << with_prog(text, prog);
    }
    return 0;
  }
  // Running (`run`, `execute`) and drawing need only the flow's structure; a cron
  // schedule's zone is looked up in the time-zone database only where the schedule is
  // handed on (`describe`; `register` checks for itself), so a run executes in an image
  // without that database.
  Status valid = cmd == "describe" ? flow.validate() : detail::FlowAccess::of(flow).validate();
  if (!valid) {
    std::cerr << prog << ": " << valid.message() << "\n";
    return 2;
  }
  if (cmd == "run") return cmd_run(flow, prog, args);
  if (cmd == "describe") {
    // The description is JSON only; `--output json` is accepted for symmetry with run.
    if (!args.empty() && args != std::vector<std::string>{"--output", "json"} &&
        args != std::vector<std::string>{"--output=json"} && args != std::vector<std::string>{"-o", "json"})
      return bad_usage(prog, "describe: unknown option '" + args[0] + "' (describe prints JSON; --output json only)");
    std::cout << flow.describe_json() << std::endl;
    return 0;
  }
  if (cmd == "graph") {
    for (const auto& a : args)
      if (a != "--dot") return bad_usage(prog, "graph: unknown option '" + a + "' (only --dot is supported)");
    std::cout << flow.graph_dot() << std::flush;
    return 0;
  }
  SubcommandHandler handler;
  {
    std::lock_guard lk(registry().mu);
    auto it = registry().commands.find(cmd);
    if (it != registry().commands.end()) handler = it->second.handler;
  }
  if (handler) return handler(flow, args);
  return bad_usage(prog, "unknown command '" + cmd + "'");
}

// ---- SignalCancellation ----

namespace {
// The write end of the signal pipe, for the async-signal-safe handler (a signal
// handler can reach nothing else).
int g_signal_fd = -1;

extern "C" void culvert_on_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  if (g_signal_fd >= 0) (void)!::write(g_signal_fd, &b, 1);
  errno = saved;
}
}  // namespace

struct SignalCancellation::Impl {
  int fds[2] = {-1, -1};
  std::thread watcher;
  std::atomic<int> received{0};
  struct sigaction old_int {}, old_term {};
};

SignalCancellation::SignalCancellation(CancellationSource& source) : impl_(std::make_unique<Impl>()) {
  if (::pipe2(impl_->fds, O_CLOEXEC) != 0) return;
  g_signal_fd = impl_->fds[1];
  struct sigaction sa {};
  sa.sa_handler = culvert_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;  // a second signal acts as usual
  ::sigaction(SIGINT, &sa, &impl_->old_int);
  ::sigaction(SIGTERM, &sa, &impl_->old_term);
  Impl* impl = impl_.get();
  impl_->watcher = std::thread([impl, &source] {
    for (;;) {
      unsigned char b = 0;
      ssize_t n = ::read(impl->fds[0], &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || b == 0) return;  // closed, or the destructor's stop byte
      impl->received.store(b);
      std::fprintf(stderr, "received %s: cancelling the flow run\n", b == SIGINT ? "SIGINT" : "SIGTERM");
      source.cancel();
    }
  });
}

SignalCancellation::~SignalCancellation() {
  if (impl_->fds[1] < 0) return;
  ::sigaction(SIGINT, &impl_->old_int, nullptr);
  ::sigaction(SIGTERM, &impl_->old_term, nullptr);
  g_signal_fd = -1;
  unsigned char stop = 0;
  (void)!::write(impl_->fds[1], &stop, 1);
  impl_->watcher.join();
  ::close(impl_->fds[0]);
  ::close(impl_->fds[1]);
}

int SignalCancellation::signal_received() const { return impl_->received.load(); }

}  // namespace culvert
