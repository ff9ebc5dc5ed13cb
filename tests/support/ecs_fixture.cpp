#include "ecs_fixture.hpp"

#include <csignal>
#include <cctype>
#include <cstdio>
#include <vector>

#include "aws/http.hpp"

namespace culvert::e2e {

using nlohmann::json;

std::string newest_botocore_python() {
  std::string best;
  std::vector<int> best_version;
  for (const char* py : {"python3", "/usr/bin/python3"}) {
    std::string cmd =
        std::string(py) + " -c 'import botocore, sys; print(botocore.__version__, sys.executable)' 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) continue;
    char buf[512] = {0};
    std::string out = std::fgets(buf, sizeof(buf), p) ? buf : "";
    if (::pclose(p) != 0 || out.find(' ') == std::string::npos) continue;
    std::string executable = out.substr(out.find(' ') + 1);
    while (!executable.empty() && (executable.back() == '\n' || executable.back() == ' ')) executable.pop_back();
    std::vector<int> v;
    size_t i = 0;
    while (i < out.size() && std::isdigit(static_cast<unsigned char>(out[i]))) {
      v.push_back(std::atoi(out.c_str() + i));
      while (i < out.size() && std::isdigit(static_cast<unsigned char>(out[i]))) ++i;
      if (i < out.size() && out[i] == '.') ++i;
    }
    if (best.empty() || v > best_version) {
      best = executable;
      best_version = v;
    }
  }
  return best;
}

EcsFixture::EcsFixture(Sandbox& sandbox, const std::string& docker_socket, const std::string& name, TaskMode mode,
                       int max_starting) {
  std::string py = newest_botocore_python();
  if (py.empty()) {
    error_ = "no Python with botocore (install python3-botocore: scripts/install-deps.sh)";
    return;
  }
  fs::path dir = sandbox.dir() / name;
  fs::create_directories(dir);
  std::vector<std::string> argv = {py, std::string(CULVERT_SOURCE_DIR) + "/tests/support/ecs_fixture.py", "--dir",
                                   dir.string()};
  auto env = sandbox.env();
  if (mode == TaskMode::kProcesses) {
    argv.insert(argv.end(), {"--task-mode", "processes"});
    env["PATH"] = fs::path(culvert_binary()).parent_path().string() + ":" + env["PATH"];
  } else {
    argv.insert(argv.end(), {"--docker-socket", docker_socket});
  }
  if (max_starting > 0) argv.insert(argv.end(), {"--max-starting", std::to_string(max_starting)});
  process_ = std::make_unique<Process>(argv, env, dir / "log");
  bool up = wait_until([&] { return fs::exists(dir / "port") || !process_->running(); }, std::chrono::seconds(60));
  if (!up || !fs::exists(dir / "port")) {
    error_ = "the ECS fixture did not start: " + process_->output();
    return;
  }
  std::string port = read_file(dir / "port");
  while (!port.empty() && (port.back() == '\n' || port.back() == ' ')) port.pop_back();
  url_ = "http://127.0.0.1:" + port;
}

EcsFixture::~EcsFixture() {
  if (!process_ || !process_->running()) return;
  process_->signal(SIGTERM);  // it removes its containers, then ends
  (void)process_->wait(std::chrono::seconds(60));
}  // then the Process kills whatever is left

json EcsFixture::state() {
  aws::HttpRequest r;
  r.url = url_ + "/_fixture/state";
  auto resp = aws::http_send(r);
  if (!resp || resp->status != 200) return json::object();
  json j = json::parse(resp->body, nullptr, false);
  return j.is_object() ? j : json::object();
}

Status EcsFixture::set_faults(const json& faults) {
  aws::HttpRequest r;
  r.method = "POST";
  r.url = url_ + "/_fixture/faults";
  std::string body = faults.dump();
  r.body = body;
  r.headers.emplace_back("Content-Type", "application/json");
  auto resp = aws::http_send(r);
  if (!resp) return resp.status();
  if (resp->status != 200) return unavailable("the ECS fixture refused the faults: " + resp->body);
  return Status::ok();
}

std::vector<json> EcsFixture::tasks_of(const std::string& run_id) {
  std::vector<json> out;
  json s = state();
  for (const auto& t : s.value("tasks", json::array()))
    for (const auto& tag : t.value("tags", json::array()))
      if (tag.value("key", "") == "culvert:flow-run-id" && tag.value("value", "") == run_id) out.push_back(t);
  return out;
}

}  // namespace culvert::e2e
