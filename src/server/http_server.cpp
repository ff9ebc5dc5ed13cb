#include "server/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace culvert::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kHeaderLimit = 16 * 1024;
constexpr size_t kFirstRead = 4096;
// From the end of a request's header to the end of its body (1 MiB by default).
constexpr auto kBodyTimeout = std::chrono::seconds(30);

class Session;

}  // namespace

struct HttpServer::Impl {
  // Declared before the io_context: sessions destroyed with it still count down.
  std::atomic<int> connections{0};
  std::atomic<bool> accepting{false};  // an accept is pending or about to be
  std::atomic<bool> stopping{false};
  int max_connections = 0;
  HttpServerOptions options;
  RequestHandler& handler;
  net::io_context ioc;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> backoff;  // on the acceptor's strand
  std::vector<std::thread> threads;
  std::atomic<int> in_flight{0};
  std::atomic<uint16_t> port{0};
  bool stopped = false;
  std::mutex stop_mu;
  // Work guard: the I/O threads keep running while the server is up even when no
  // socket operation is pending.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  // Accept failures (on the acceptor's strand): counted, logged once per interval.
  int64_t failures_unlogged = 0;
  int64_t failures_in_row = 0;
  std::chrono::steady_clock::time_point last_failure_log{};
  std::chrono::steady_clock::time_point first_failure{};

  Impl(HttpServerOptions o, RequestHandler& h)
      : options(std::move(o)), handler(h), ioc(options.threads > 0 ? options.threads : 1) {}

  void do_accept();
  void on_accept_failure(const beast::error_code& ec);
  // A session closed: resumes accepting if the cap had paused it. Any thread.
  void connection_closed();
  // Pauses accepting at the cap; whether accepting may go on. On the acceptor's strand.
  bool below_cap();
};

namespace {

// One connection. Owned by the shared_ptrs held by its pending operations (the
// Beast idiom); lives on its own strand so its handlers never run concurrently.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // The caller has counted this connection in `server.connections`.
  Session(tcp::socket&& socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {}
  ~Session() { server_.connection_closed(); }

  void start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

 private:
  // Between requests. The first request of a connection must arrive within the header
  // deadline; later ones may be preceded by up to the idle timeout of silence.
  void do_read() {
    if (server_.stopping.load()) return close();
    parser_.emplace();
    parser_->body_limit(server_.options.body_limit);
    parser_->header_limit(kHeaderLimit);
    if (first_request_ || buffer_.size() > 0) {
      first_request_ = false;
      return read_header();
    }
    stream_.expires_after(server_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kFirstRead),
                            beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, size_t n) {
    if (ec) return close();  // idle timeout, EOF or reset
    buffer_.commit(n);
    read_header();
  }

  void read_header() {
    stream_.expires_after(server_.options.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t) {
    if (ec) return on_read(ec, 0);
    stream_.expires_after(kBodyTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == net::error::eof) return close();
    if (ec == http::error::body_limit) {
      return write_error(413, "request body exceeds the limit of " +
                                  std::to_string(server_.options.body_limit) + " bytes");
    }
    if (ec == http::error::header_limit) return write_error(413, "request header too large");
    if (ec) {
      if (ec.category() == http::make_error_code(http::error::bad_target).category() && ec != http::error::partial_message)
        return write_error(400, "malformed HTTP request: " + ec.message());
      return close();
    }
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    Request req;
    req.method = std::string(msg.method_string());
    if (!parse_target(msg.target(), req)) {
      return write_error(400, "malformed request target");
    }
    if (auto it = msg.find(http::field::authorization); it != msg.end())
      req.authorization = std::string(it->value());
    if (auto it = msg.find(http::field::content_type); it != msg.end())
      req.content_type = std::string(it->value());
    if (auto it = msg.find(http::field::if_none_match); it != msg.end())
      req.if_none_match = std::string(it->value());
    if (auto it = msg.find(http::field::accept_encoding); it != msg.end())
      req.accept_encoding = std::string(it->value());
    req.body = std::move(msg.body());
    beast::error_code rec;
    auto ep = stream_.socket().remote_endpoint(rec);
    if (!rec) req.remote = ep.address().to_string();

    req.watch_peer = [weak = weak_from_this()](std::function<void()> on_gone) {
      if (auto self = weak.lock())
        net::dispatch(self->stream_.get_executor(), [self, on_gone = std::move(on_gone)]() mutable {
          self->watch_peer(std::move(on_gone));
        });
    };
    // Long polls may take a while; the idle timeout applies to reads only.
    stream_.expires_never();
    server_.in_flight.fetch_add(1);
    auto self = shared_from_this();
    // dispatch: a handler that answers at once (on this strand) writes without a
    // queue hop; an answer from another thread is posted onto the strand.
    server_.handler.handle(std::move(req), [self](Response resp) {
      net::dispatch(self->stream_.get_executor(), [self, resp = std::move(resp)]() mutable {
        self->write(std::move(resp));
      });
    });
  }

  // Waits for the socket to turn readable while a long poll is parked: EOF (or an
  // error) there means the client has gone. Bytes of a next request are left alone.
  void watch_peer(std::function<void()> on_gone) {
    stream_.socket().async_wait(
        net::socket_base::wait_read,
        net::bind_executor(stream_.get_executor(),
                           [self = shared_from_this(), on_gone = std::move(on_gone)](beast::error_code ec) {
                             if (ec == net::error::operation_aborted) return;
                             char byte;
                             ssize_t n = ::recv(self->stream_.socket().native_handle(), &byte, 1,
                                                MSG_PEEK | MSG_DONTWAIT);
                             if (ec || n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) on_gone();
                           }));
  }

  void write_error(int status, const std::string& message) {
    keep_alive_ = false;
    server_.in_flight.fetch_add(1);
    write(error_response(status, error_code_for(status), message));
  }

  void write(Response resp) {
    bool keep = keep_alive_ && !server_.stopping.load();
    res_ = {};
    res_.version(version_);
    res_.result(static_cast<unsigned>(resp.status));
    res_.set(http::field::server, "culvert");
    res_.set(http::field::content_type, resp.content_type);
    for (auto& [k, v] : resp.headers) res_.set(k, v);
    res_.body() = std::move(resp.body);
    res_.keep_alive(keep);
    res_.prepare_payload();
    stream_.expires_after(std::chrono::seconds(30));
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this(), keep));
  }

  void on_write(bool keep, beast::error_code ec, size_t) {
    server_.in_flight.fetch_sub(1);
    if (ec) return;
    if (!keep) return close();
    do_read();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  bool keep_alive_ = true;
  bool first_request_ = true;
  unsigned version_ = 11;
};

}  // namespace

int max_connections_for_nofile(long nofile) {
  long n = nofile >= 128 ? nofile - 64 : nofile / 2;
  return static_cast<int>(std::clamp<long>(n, 4, 1 << 20));
}

int default_max_connections() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return max_connections_for_nofile(1 << 20);
  return max_connections_for_nofile(static_cast<long>(rl.rlim_cur));
}

bool HttpServer::Impl::below_cap() {
  if (connections.load() < max_connections) return true;
  // Pause; a session closing in between sees `accepting` false and resumes, or this
  // re-check sees its decrement: exactly one of the two goes on.
  accepting.store(false);
  return connections.load() < max_connections && !accepting.exchange(true);
}

void HttpServer::Impl::connection_closed() {
  int left = connections.fetch_sub(1) - 1;
  if (stopping.load() || left >= max_connections) return;
  if (accepting.exchange(true)) return;  // not paused
  net::post(acceptor->get_executor(), [this] {
    if (!stopping.load() && acceptor->is_open()) do_accept();
  });
}

void HttpServer::Impl::on_accept_failure(const beast::error_code& ec) {
  using namespace std::chrono;
  auto now = steady_clock::now();
  if (failures_in_row++ == 0) first_failure = now;
  ++failures_unlogged;
  if (failures_unlogged == 1 || now - last_failure_log >= options.accept_log_interval) {
    spdlog::warn("http: accept failed: {} ({} time{} since the last report; {} connections open, at most {}; "
                 "retrying every {} ms)",
                 ec.message(), failures_unlogged, failures_unlogged == 1 ? "" : "s", connections.load(),
                 max_connections, options.accept_backoff.count());
    failures_unlogged = 0;
    last_failure_log = now;
  }
}

void HttpServer::Impl::do_accept() {
  acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (ec == net::error::connection_aborted || ec == net::error::connection_reset || ec.value() == EPROTO ||
        ec == net::error::interrupted) {
      // That one connection went away before it was accepted: take the next.
      spdlog::debug("http: accept: {}", ec.message());
    } else if (ec) {
      // Out of descriptors (EMFILE, ENFILE) or memory, or anything else: accepting
      // again at once would fail again at once (the pending connection stays in the
      // backlog), spinning an I/O thread. Wait on a timer instead.
      on_accept_failure(ec);
      backoff->expires_after(options.accept_backoff);
      backoff->async_wait([this](beast::error_code tec) {
        if (tec || stopping.load() || !acceptor->is_open()) return;
        do_accept();
      });
      return;
    } else {
      if (failures_in_row > 0) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                        first_failure);
        spdlog::info("http: accepting again after {} failed accept{} over {} ms", failures_in_row,
                     failures_in_row == 1 ? "" : "s", ms.count());
        failures_in_row = 0;
        failures_unlogged = 0;
      }
      beast::error_code nec;
      socket.set_option(tcp::no_delay(true), nec);
      connections.fetch_add(1);
      std::make_shared<Session>(std::move(socket), *this)->start();
    }
    if (stopping.load() || !acceptor->is_open()) return;
    if (below_cap()) do_accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, RequestHandler& handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

HttpServer::~HttpServer() { stop(std::chrono::milliseconds(0)); }

Status HttpServer::start() {
  auto& im = *impl_;
  beast::error_code ec;
  auto addr = net::ip::make_address(im.options.host, ec);
  if (ec) return invalid_argument("listen address '" + im.options.host + "' is not an IP address");
  tcp::endpoint ep(addr, im.options.port);
  im.acceptor.emplace(net::make_strand(im.ioc));
  im.acceptor->open(ep.protocol(), ec);
  if (!ec) im.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor->bind(ep, ec);
  if (!ec) im.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return unavailable("cannot listen on " + im.options.host + ":" + std::to_string(im.options.port) +
                       ": " + ec.message());
  }
  im.port = im.acceptor->local_endpoint().port();
  im.max_connections = im.options.max_connections > 0 ? im.options.max_connections : default_max_connections();
  im.backoff.emplace(im.acceptor->get_executor());
  im.guard.emplace(im.ioc.get_executor());
  im.accepting = true;
  im.do_accept();
  int n = im.options.threads > 0 ? im.options.threads
                                 : std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i < n; ++i) im.threads.emplace_back([&im] { im.ioc.run(); });
  return Status::ok();
}

uint16_t HttpServer::port() const { return impl_->port.load(); }

int HttpServer::in_flight() const { return impl_->in_flight.load(); }

int HttpServer::connections() const { return impl_->connections.load(); }

int HttpServer::max_connections() const { return impl_->max_connections; }

void HttpServer::stop_accepting() {
  auto& im = *impl_;
  if (!im.acceptor) return;
  im.stopping = true;
  net::post(im.acceptor->get_executor(), [&im] {
    beast::error_code ec;
    im.acceptor->close(ec);
    im.backoff->cancel();
  });
}

void HttpServer::stop(std::chrono::milliseconds grace) {
  auto& im = *impl_;
  std::lock_guard<std::mutex> lock(im.stop_mu);
  if (im.stopped) return;
  im.stopped = true;
  if (im.threads.empty()) return;
  stop_accepting();
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (im.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  im.guard.reset();
  im.ioc.stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
}

}  // namespace culvert::server
