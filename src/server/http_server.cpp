#include "server/http_server.hpp"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
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

class Session;

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  RequestHandler& handler;
  net::io_context ioc;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};
  std::atomic<uint16_t> port{0};
  bool stopped = false;
  std::mutex stop_mu;
  // Work guard: the I/O threads keep running while the server is up even when no
  // socket operation is pending.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;

  Impl(HttpServerOptions o, RequestHandler& h)
      : options(std::move(o)), handler(h), ioc(options.threads > 0 ? options.threads : 1) {}

  void do_accept();
};

namespace {

// One connection. Owned by the shared_ptrs held by its pending operations (the
// Beast idiom); lives on its own strand so its handlers never run concurrently.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {}

  void start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    if (server_.stopping.load()) return close();
    parser_.emplace();
    parser_->body_limit(server_.options.body_limit);
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(server_.options.idle_timeout);
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
  unsigned version_ = 11;
};

}  // namespace

void HttpServer::Impl::do_accept() {
  acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
      spdlog::warn("http: accept failed: {}", ec.message());
    } else {
      beast::error_code nec;
      socket.set_option(tcp::no_delay(true), nec);
      std::make_shared<Session>(std::move(socket), *this)->start();
    }
    if (!stopping.load() && acceptor->is_open()) do_accept();
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
  im.guard.emplace(im.ioc.get_executor());
  im.do_accept();
  int n = im.options.threads > 0 ? im.options.threads
                                 : std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i < n; ++i) im.threads.emplace_back([&im] { im.ioc.run(); });
  return Status::ok();
}

uint16_t HttpServer::port() const { return impl_->port.load(); }

int HttpServer::in_flight() const { return impl_->in_flight.load(); }

void HttpServer::stop_accepting() {
  auto& im = *impl_;
  if (!im.acceptor) return;
  im.stopping = true;
  net::post(im.acceptor->get_executor(), [&im] {
    beast::error_code ec;
    im.acceptor->close(ec);
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
