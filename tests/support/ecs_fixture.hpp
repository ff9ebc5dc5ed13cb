// The test-only ECS-compatible endpoint (tests/support/ecs_fixture.py) as a child process
// of a test or benchmark: it runs each ECS task as a real Docker container. Started on a
// free port of 127.0.0.1 with the Python whose botocore is newest (its models check every
// request); stopped with the object. Not thread-safe.
#pragma once

#include <culvert/status.hpp>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace culvert::e2e {

// The interpreter (an absolute path) of `python3` on PATH or /usr/bin/python3, whichever
// has the newer botocore; "" if neither has one.
std::string newest_botocore_python();

class EcsFixture {
 public:
  // How the fixture runs a task (its --task-mode): as a Docker container, or as a plain
  // local process (for benchmarks that time everything but Docker's cost per container;
  // no Docker daemon needed, `culvert` found on PATH, the build's first).
  enum class TaskMode { kContainers, kProcesses };
  // Runs the fixture against the Docker daemon at `docker_socket` (unused for
  // kProcesses), its files in sandbox.dir()/`name`. `max_starting` > 0: its
  // --max-starting (the containers created or started, or removed, at once); 0: the
  // fixture's default (8). Check ok().
  EcsFixture(Sandbox& sandbox, const std::string& docker_socket, const std::string& name = "ecs-fixture",
             TaskMode mode = TaskMode::kContainers, int max_starting = 0);
  ~EcsFixture();
  bool ok() const { return !url_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& url() const { return url_; }  // http://127.0.0.1:PORT
  std::string output() const { return process_ ? process_->output() : ""; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  // GET /_fixture/state: calls, injected faults, invalid requests, tasks, revisions.
  nlohmann::json state();
  // POST /_fixture/faults.
  Status set_faults(const nlohmann::json& faults);
  // The fixture's tasks tagged culvert:flow-run-id = run_id.
  std::vector<nlohmann::json> tasks_of(const std::string& run_id);

 private:
  std::unique_ptr<Process> process_;
  std::string url_;
  std::string error_;
};

}  // namespace culvert::e2e
