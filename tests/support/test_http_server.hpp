// A small HTTP/1.1 server for unit tests: listens on 127.0.0.1 (an ephemeral port) or on
// a unix socket, serves each connection on a thread of its own with keep-alive (a
// request with "Connection: close" ends its connection), and answers with a handler.
// It plays the Culvert API for client tests, and the ECS credentials endpoint, EC2
// instance metadata, a misbehaving S3 or the Docker Engine for storage and agent tests.
//
// The handler is called for one request at a time (handlers need no locks of their
// own). Every request is recorded before the handler sees it; requests() is
// thread-safe. Test-only; not for production.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace culvert::testing {

struct TestRequest {
  std::string method;
  std::string target;                          // path and query as sent
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct TestResponse {
  int status = 200;
  std::string body;
  // Extra headers; Content-Type is application/json unless given here.
  std::vector<std::pair<std::string, std::string>> headers;
};

class TestHttpServer {
 public:
  using Handler = std::function<TestResponse(const TestRequest&)>;
  // Listens on 127.0.0.1 on an ephemeral port.
  explicit TestHttpServer(Handler handler);
  // Listens on a unix socket at `unix_path` (removed again on destruction).
  TestHttpServer(Handler handler, std::string unix_path);
  ~TestHttpServer();
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<TestRequest> requests() const;
  // Connections accepted so far (keep-alive reuse shows as fewer connections).
  int connections() const { return connections_.load(); }

 private:
  void start();
  void accept_loop();
  void serve(int fd);

  Handler handler_;
  std::string unix_path_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::mutex handler_mu_;
  mutable std::mutex mu_;
  std::vector<TestRequest> requests_;
  std::vector<int> conn_fds_;
  std::vector<std::thread> conn_threads_;
  std::thread accept_thread_;
};

}  // namespace culvert::testing
