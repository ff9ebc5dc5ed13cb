// `culvert server start`: runs the orchestration server until SIGTERM or SIGINT.
// Defaults: SQLite at ~/.culvert/culvert.db, listening on 127.0.0.1:4200.
// `culvert server create-admin-token`: mints an admin token straight in the database.
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

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "cli/command.hpp"
#include "server/api_json.hpp"
#include "server/http_server.hpp"
#include "server/profile.hpp"
#include "server/server.hpp"
#include "store/store.hpp"

namespace {

struct ServerFlags {
  std::string db;
  std::string listen = "127.0.0.1:4200";
  size_t max_body = 1 << 20;
  int64_t max_log_bytes_per_run = int64_t{128} << 20;
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

// The database URL of --db, or the default SQLite file under ~/.culvert; "" after
// printing why there is none.
std::string database_url(const std::string& db_flag) {
  if (!db_flag.empty()) return db_flag;
  auto home = culvert::server::culvert_home();
  if (!home) {
    fmt::print(stderr, "error: {} (give --db)\n", home.status().message());
    return "";
  }
  return "sqlite://" + *home + "/culvert.db";
}

struct AdminTokenFlags {
  std::string db;
  std::string name;
  std::string expires;
  std::string output = "table";
};

// `culvert server create-admin-token`: the recovery path when no admin token is left
// (all revoked, expired or lost). Writes straight into the database, which is the
// proof of authority: whoever can open it could change anything anyway. Works while a
// server is running on the same database (servers look tokens up on each request, after
// their short cache).
int create_admin_token(const AdminTokenFlags& f) {
  std::string url = database_url(f.db);
  if (url.empty()) return 2;
  if (url.rfind("sqlite://", 0) == 0 && url.find(":memory:") == std::string::npos) {
    std::string path = url.substr(9);
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      fmt::print(stderr, "error: there is no database at {} (give --db, the one the server uses)\n", path);
      return 1;
    }
  }
  std::optional<culvert::SysTime> expires;
  if (!f.expires.empty()) {
    auto d = duration_flag("--expires", f.expires);
    if (!d) return 2;
    if (d->count() <= 0) {
      fmt::print(stderr, "error: --expires must be above 0\n");
      return 2;
    }
    expires = culvert::system_clock().now() + *d;
  }
  auto store = culvert::store::open_store(url);
  if (!store) {
    fmt::print(stderr, "error: cannot open the database: {}\n", store.status().message());
    return 1;
  }
  std::string secret = culvert::new_api_token();
  culvert::store::NewToken t;
  t.name = f.name;
  t.scope = "admin";
  t.hash = culvert::sha256_hex(secret);
  t.expires = expires;
  auto r = (*store)->create_token(t);
  if (!r) {
    fmt::print(stderr, "error: {}\n", r.status().message());
    return 1;
  }
  if (f.output == "json") {
    // The document `culvert auth create-token -o json` prints.
    auto j = culvert::server::to_json(*r);
    j["token"] = secret;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("Created admin token '{}' (id {}), shown only once:\n  {}\n", r->name, r->id, secret);
  return 0;
}

int run_server(const ServerFlags& f) {
  auto logger = spdlog::stderr_logger_mt("culvert-server");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [server] %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(f.log_level));

  culvert::server::ServerOptions o;
  auto home = culvert::server::culvert_home();
  o.db_url = database_url(f.db);
  if (o.db_url.empty()) return 2;
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
  o.api.max_log_bytes_per_run = f.max_log_bytes_per_run;
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
  start->add_option("--max-log-bytes-per-run", flags->max_log_bytes_per_run,
                    "bytes of log messages one flow run may store (all its attempts); a batch past it gets 413; "
                    "0: no quota")
      ->check(CLI::Range(int64_t{0}, INT64_MAX))
      ->capture_default_str();
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

  auto tflags = std::make_shared<AdminTokenFlags>();
  auto* mint = server->add_subcommand(
      "create-admin-token",
      "Create an admin token directly in the database (recovery when no admin token is left)");
  mint->add_option("--db", tflags->db, "the server's database (default: SQLite at ~/.culvert/culvert.db)")
      ->envname("CULVERT_SERVER_DB");
  mint->add_option("--name", tflags->name, "a name for the token (shown by `culvert auth list-tokens`)")
      ->required()
      ->check([](const std::string& v) {
        if (v.empty() || v.size() > 200) return std::string("must be 1-200 characters");
        for (unsigned char c : v)
          if (c < 0x20) return std::string("must not contain control characters");
        return std::string();
      });
  mint->add_option("--expires", tflags->expires, "lifetime such as 30d (default: does not expire)");
  culvert::cli::add_output_option(mint, tflags->output);
  mint->callback([tflags] {
    int rc = create_admin_token(*tflags);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}
