#include "server/server.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/crypto.hpp"
#include "server/http_server.hpp"
#include "server/metrics.hpp"
#include "server/ui.hpp"
#include "server/profile.hpp"
#include "server/waiters.hpp"
#include "server/work_pool.hpp"
#include "store/store.hpp"

namespace culvert::server {

Status parse_listen(const std::string& listen, std::string& host, uint16_t& port) {
  std::string h, p;
  if (!listen.empty() && listen.front() == '[') {
    auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
      return invalid_argument("--listen '" + listen + "' must be [IPv6]:PORT");
    h = listen.substr(1, close - 1);
    p = listen.substr(close + 2);
  } else {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) return invalid_argument("--listen '" + listen + "' must be HOST:PORT");
    h = listen.substr(0, colon);
    p = listen.substr(colon + 1);
  }
  if (h == "localhost") h = "127.0.0.1";
  if (h.empty() || p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
    return invalid_argument("--listen '" + listen + "' must be HOST:PORT with a numeric port");
  unsigned long n = std::stoul(p);
  if (n > 65535) return invalid_argument("--listen port " + p + " is out of range");
  host = h;
  port = static_cast<uint16_t>(n);
  return Status::ok();
}

struct Server::Impl {
  ServerOptions options;
  Clock& clock;
  std::string host;
  uint16_t listen_port = 0;
  std::vector<std::unique_ptr<store::Store>> stores;
  std::unique_ptr<WorkPool> pool;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<Waiters> waiters;
  std::unique_ptr<RunEvents> events;
  std::unique_ptr<Api> api;
  std::unique_ptr<UiHandler> ui;  // the web UI in front of the API (same port)
  std::unique_ptr<HttpServer> http;
  std::string bootstrap_token;

  struct ServiceSlot {
    std::unique_ptr<BackgroundService> service;
    SteadyTime next{};
    std::atomic<bool> running{false};
  };
  std::vector<std::unique_ptr<ServiceSlot>> services;

  std::thread timer;
  std::mutex timer_mu;
  std::condition_variable timer_cv;
  bool timer_stop = false;
  bool started = false;
  bool stopped = false;

  Impl(ServerOptions o, Clock& c) : options(std::move(o)), clock(c) {
    auth = std::make_unique<Authenticator>(clock, options.auth);
    waiters = std::make_unique<Waiters>(clock, options.poll_interval);
    events = make_run_events(*waiters, *auth);
  }

  void timer_loop() {
    std::unique_lock<std::mutex> lock(timer_mu);
    while (!timer_stop) {
      timer_cv.wait_for(lock, options.tick);
      if (timer_stop) break;
      lock.unlock();
      waiters->tick();
      auto now = clock.steady_now();
      for (auto& slot : services) {
        if (slot->running.load() || now < slot->next) continue;
        slot->running = true;
        ServiceSlot* s = slot.get();
        bool posted = pool->post([this, s](int worker) {
          try {
            s->service->run_once(*stores[worker]);
          } catch (const std::exception& e) {
            spdlog::error("service {}: {}", s->service->name(), e.what());
          }
          s->next = clock.steady_now() + s->service->interval();
          s->running = false;
        });
        if (!posted) slot->running = false;
      }
      lock.lock();
    }
  }

  Status bootstrap(store::Store& st) {
    auto n = st.count_tokens();
    if (!n) return n.status();
    if (*n > 0 || !options.bootstrap_admin) return Status::ok();
    std::string secret = new_api_token();
    store::NewToken t;
    t.name = "admin (created at first start)";
    t.scope = "admin";
    t.hash = sha256_hex(secret);
    auto r = st.create_token(t);
    if (!r) return r.status();
    bootstrap_token = secret;
    spdlog::info("created the first admin token ({})", r->id);
    return Status::ok();
  }
};

Server::Server(ServerOptions options, Clock& clock) : impl_(std::make_unique<Impl>(std::move(options), clock)) {}

Server::~Server() { stop(); }

void Server::add_service(std::unique_ptr<BackgroundService> service) {
  auto slot = std::make_unique<Impl::ServiceSlot>();
  slot->service = std::move(service);
  impl_->services.push_back(std::move(slot));
}

RunEvents& Server::events() { return *impl_->events; }

Status Server::start() {
  auto& im = *impl_;
  if (im.started) return internal_error("server already started");
  im.started = true;
  if (auto s = parse_listen(im.options.listen, im.host, im.listen_port); !s) return s;
  int db_threads = std::max(1, im.options.db_threads);
  // Each connection of an in-memory SQLite database would be a separate database.
  if (im.options.db_url.find(":memory:") != std::string::npos) db_threads = 1;
  store::StoreOptions so;
  so.clock = &im.clock;
  for (int i = 0; i < db_threads; ++i) {
    auto st = store::open_store(im.options.db_url, so);
    if (!st) return st.status();
    im.stores.push_back(std::move(*st));
  }
  spdlog::info("store: {} ({} connections)", im.stores[0]->backend(), db_threads);
  if (auto s = im.bootstrap(*im.stores[0]); !s) return s;

  im.pool = std::make_unique<WorkPool>(db_threads);
  im.api = std::make_unique<Api>(
      im.clock, *im.pool, [&im](int worker) -> store::Store& { return *im.stores[static_cast<size_t>(worker)]; },
      *im.auth, *im.waiters, *im.events, im.options.api);
  if (im.options.scheduler_enabled) {
    add_service(std::make_unique<SchedulerService>(im.clock, im.options.scheduler, *im.events));
  }
  if (im.options.liveness_enabled) {
    add_service(std::make_unique<LivenessService>(im.clock, im.options.liveness, *im.events, &im.api->metrics()));
  }
  if (im.options.retention.retention.count() > 0) {
    add_service(std::make_unique<RetentionService>(im.clock, im.options.retention));
  }
  HttpServerOptions ho;
  ho.host = im.host;
  ho.port = im.listen_port;
  ho.threads = im.options.io_threads;
  ho.body_limit = im.options.max_body;
  ho.max_connections = im.options.max_connections;
  ho.header_timeout = im.options.header_timeout;
  ho.idle_timeout = im.options.idle_timeout;
  im.ui = std::make_unique<UiHandler>(*im.api);
  im.http = std::make_unique<HttpServer>(ho, *im.ui);
  if (auto s = im.http->start(); !s) return s;
  spdlog::info("http: at most {} open connections", im.http->max_connections());
  im.timer = std::thread([&im] { im.timer_loop(); });

  if (!im.bootstrap_token.empty() && !im.options.profile_path.empty()) {
    if (auto s = save_profile(im.options.profile_path, im.options.profile_name, url(), im.bootstrap_token); !s)
      spdlog::warn("could not save the admin token to {}: {}", im.options.profile_path, s.to_string());
  }
  spdlog::info("listening on {}", url());
  return Status::ok();
}

uint16_t Server::port() const { return impl_->http ? impl_->http->port() : 0; }

std::string Server::url() const {
  std::string h = impl_->host;
  if (h == "0.0.0.0") h = "127.0.0.1";
  if (h == "::") h = "::1";
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return "http://" + h + ":" + std::to_string(port());
}

const std::string& Server::bootstrap_token() const { return impl_->bootstrap_token; }

void Server::stop() {
  auto& im = *impl_;
  if (!im.started || im.stopped) return;
  im.stopped = true;
  if (im.timer.joinable()) {
    {
      std::lock_guard<std::mutex> lock(im.timer_mu);
      im.timer_stop = true;
    }
    im.timer_cv.notify_all();
    im.timer.join();
  }
  if (im.http) {
    im.http->stop_accepting();
    im.waiters->fire_all();
    im.http->stop(im.options.shutdown_grace);
  }
  if (im.pool) im.pool->stop();
  im.api.reset();
  im.stores.clear();
  spdlog::info("server stopped");
}

}  // namespace culvert::server
