// `culvert server start`: runs the orchestration server (SPEC §5, §11) until SIGTERM or
// SIGINT. Defaults: SQLite at ~/.culvert/culvert.db, listening on 127.0.0.1:4200.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <pthread.h>
#include <sys/stat.h>

#include "core/timefmt.hpp"
#include "server/http_server.hpp"
#include "server/profile.hpp"
#include "server/server.hpp"

namespace {

struct ServerFlags {
  std::string db;
  std::string listen = "127.0.0.1:4200";
  size_t max_body = 1 << 20;
  int max_connections = 0;
  std::string header_timeout = "10s";
  std::string idle_timeout = "30s";
  int io_threads = 0;
  int db_threads = 4;
  std::string port_file;
  std::string heartbeat_interval = "10s";
  int missed_heartbeats = 3;
  std::string submitted_deadline = "60s";
  std::string liveness_interval = "2s";
  std::string scheduler_interval = "5s";
  std::string log_retention = "0";
  std::string poll_interval = "250ms";
  std::string max_wait = "60s";
  std::string auth_cache_ttl = "2s";
  std::string run_token_grace = "60s";
  std::string run_token_ttl = "7d";
  std::string shutdown_grace = "10s";
  bool no_profile = false;
  std::string log_level = "info";
};

std::optional<culvert::Millis> duration_flag(const std::string& name, const std::string& value) {
  auto d = culvert::parse_duration(value);
  if (!d) {
    fmt::print(stderr, "error: {} '{}' is not a duration (e.g. 500ms, 10s, 5m)\n", name, value);
    return std::nullopt;
  }
  return *d;
}

int run_server(const ServerFlags& f) {
  auto logger = spdlog::stderr_logger_mt("culvert-server");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [server] %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(f.log_level));

  culvert::server::ServerOptions o;
  auto home = culvert::server::culvert_home();
  o.db_url = f.db;
  if (o.db_url.empty()) {
    if (!home) {
      fmt::print(stderr, "error: {} (give --db)\n", home.status().message());
      return 2;
    }
    o.db_url = "sqlite://" + *home + "/culvert.db";
  }
  if (o.db_url.rfind("sqlite://", 0) == 0 && o.db_url.find(":memory:") == std::string::npos) {
    std::filesystem::path db_path(o.db_url.substr(9));
    std::error_code ec;
    if (db_path.has_parent_path() && !std::filesystem::exists(db_path.parent_path(), ec)) {
      std::filesystem::create_directories(db_path.parent_path(), ec);
      if (ec) {
        fmt::print(stderr, "error: cannot create {}: {}\n", db_path.parent_path().string(), ec.message());
        return 1;
      }
      ::chmod(db_path.parent_path().c_str(), 0700);
    }
  }
  o.listen = f.listen;
  o.max_body = f.max_body;
  o.io_threads = f.io_threads;
  o.db_threads = f.db_threads;
  auto hb = duration_flag("--heartbeat-interval", f.heartbeat_interval);
  auto sd = duration_flag("--submitted-deadline", f.submitted_deadline);
  auto li = duration_flag("--liveness-interval", f.liveness_interval);
  auto si = duration_flag("--scheduler-interval", f.scheduler_interval);
  auto pi = duration_flag("--poll-interval", f.poll_interval);
  auto mw = duration_flag("--max-wait", f.max_wait);
  auto ct = duration_flag("--auth-cache-ttl", f.auth_cache_ttl);
  auto rg = duration_flag("--run-token-grace", f.run_token_grace);
  auto rt = duration_flag("--run-token-ttl", f.run_token_ttl);
  auto sg = duration_flag("--shutdown-grace", f.shutdown_grace);
  auto ht = duration_flag("--header-timeout", f.header_timeout);
  auto it = duration_flag("--idle-timeout", f.idle_timeout);
  if (!si || !ht || !it) return 2;
  if (ht->count() <= 0 || it->count() <= 0) {
    fmt::print(stderr, "error: --header-timeout and --idle-timeout must be above 0\n");
    return 2;
  }
  o.max_connections = f.max_connections;
  o.header_timeout = *ht;
  o.idle_timeout = *it;
  o.scheduler.interval = *si;
  if (f.log_retention != "0") {
    auto lr = duration_flag("--log-retention", f.log_retention);
    if (!lr) return 2;
    o.retention.retention = *lr;
  }
  if (!hb || !sd || !li || !pi || !mw || !ct || !rg || !rt || !sg) return 2;
  o.api.agent_heartbeat_interval = *hb;
  o.api.agent_missed_heartbeats = f.missed_heartbeats;
  o.api.max_wait = *mw;
  o.api.run_token_ttl = *rt;
  o.api.version = CULVERT_VERSION;
  o.liveness.heartbeat_timeout = *hb * f.missed_heartbeats;
  o.liveness.submitted_deadline = *sd;
  o.liveness.interval = *li;
  o.poll_interval = *pi;
  o.auth.cache_ttl = *ct;
  o.auth.run_token_grace = *rg;
  o.shutdown_grace = *sg;
  if (!f.no_profile && home) o.profile_path = *home + "/config.toml";

  // SIGINT/SIGTERM are taken by sigwait below; block them before any thread starts so
  // that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  culvert::server::Server server(o);
  if (auto s = server.start(); !s) {
    fmt::print(stderr, "error: {}\n", s.message());
    return s.code() == culvert::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (!server.bootstrap_token().empty()) {
    fmt::print("Created the first admin token (shown only once):\n  {}\n", server.bootstrap_token());
    if (!o.profile_path.empty())
      fmt::print("Saved it to {} (profile \"default\").\n", o.profile_path);
  }
  fmt::print("listening on {}\n", server.url());
  std::fflush(stdout);
  if (!f.port_file.empty()) {
    std::string tmp = f.port_file + ".tmp";
    std::error_code ec;
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << server.port() << "\n";
      if (!out) ec = std::make_error_code(std::errc::io_error);
    }
    if (!ec) std::filesystem::rename(tmp, f.port_file, ec);
    if (ec) {
      fmt::print(stderr, "error: cannot write --port-file {}: {}\n", f.port_file, ec.message());
      server.stop();
      return 1;
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}; shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  server.stop();
  return 0;
}

}  // namespace

void add_server_command(CLI::App& app) {
  auto* server = app.add_subcommand("server", "Run the orchestration server");
  server->require_subcommand(1);
  auto flags = std::make_shared<ServerFlags>();
  auto* start = server->add_subcommand("start", "Start the server (until SIGTERM/SIGINT)");
  start->add_option("--db", flags->db, "sqlite:///PATH or postgresql://... (default: SQLite at ~/.culvert/culvert.db)")
      ->envname("CULVERT_SERVER_DB");
  start->add_option("--listen", flags->listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->envname("CULVERT_SERVER_LISTEN")
      ->capture_default_str();
  start->add_option("--max-body", flags->max_body, "largest request body in bytes (larger: 413)")->capture_default_str();
  start->add_option("--max-connections", flags->max_connections,
                    "open connections at most; more wait in the listen backlog (default: from RLIMIT_NOFILE: "
                    "the limit minus 64, now " + std::to_string(culvert::server::default_max_connections()) + ")")
      ->check(CLI::Range(0, 1 << 20));
  start->add_option("--header-timeout", flags->header_timeout,
                    "a request's header must arrive within this (after connecting, or after its first byte)")
      ->capture_default_str();
  start->add_option("--idle-timeout", flags->idle_timeout,
                    "an idle keep-alive connection is closed after this (long polls are not idle)")
      ->capture_default_str();
  start->add_option("--io-threads", flags->io_threads, "HTTP I/O threads (default: number of cores)");
  start->add_option("--db-threads", flags->db_threads, "database connections / worker threads")->capture_default_str();
  start->add_option("--port-file", flags->port_file, "write the bound port to FILE once listening");
  start->add_option("--heartbeat-interval", flags->heartbeat_interval, "heartbeat interval of agents and runs")
      ->capture_default_str();
  start->add_option("--missed-heartbeats", flags->missed_heartbeats,
                    "missed heartbeats before an agent is unhealthy / a run Crashed")
      ->capture_default_str();
  start->add_option("--submitted-deadline", flags->submitted_deadline,
                    "a Submitted run not Running within this returns to Pending")
      ->capture_default_str();
  start->add_option("--liveness-interval", flags->liveness_interval, "how often liveness checks run")
      ->capture_default_str();
  start->add_option("--scheduler-interval", flags->scheduler_interval,
                    "how often the schedule service creates upcoming runs")
      ->capture_default_str();
  start->add_option("--log-retention", flags->log_retention,
                    "delete the log lines of runs that ended longer ago than this (e.g. 30d); 0 keeps them")
      ->capture_default_str();
  start->add_option("--poll-interval", flags->poll_interval, "long polls re-check the database this often")
      ->capture_default_str();
  start->add_option("--max-wait", flags->max_wait, "largest wait_ms accepted by long polls")->capture_default_str();
  start->add_option("--auth-cache-ttl", flags->auth_cache_ttl,
                    "token look-ups are cached this long (bounds revocation delay across replicas)")
      ->capture_default_str();
  start->add_option("--run-token-grace", flags->run_token_grace, "run tokens keep working this long after the run ends")
      ->capture_default_str();
  start->add_option("--run-token-ttl", flags->run_token_ttl, "absolute lifetime of a run token")->capture_default_str();
  start->add_option("--shutdown-grace", flags->shutdown_grace, "in-flight requests get this long at shutdown")
      ->capture_default_str();
  start->add_flag("--no-profile", flags->no_profile, "do not save the first admin token to ~/.culvert/config.toml");
  start->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  start->callback([flags] {
    int rc = run_server(*flags);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}
