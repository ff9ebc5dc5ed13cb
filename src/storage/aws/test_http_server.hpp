// A tiny HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for unit tests: it plays the
// ECS credentials endpoint, EC2 instance metadata or a misbehaving S3. One request per
// connection; the handler decides the answer. Requests are recorded.
// The handler runs on the server's thread; requests() is thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <stdexcept>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace culvert::aws::testing {

struct TestRequest {
  std::string method;
  std::string target;  // path and query as sent
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct TestResponse {
  int status = 200;
  std::string body;
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

 private:
  void serve();
  void listen_and_start();
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::string unix_path_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<TestRequest> requests_;
  std::thread thread_;
};

}  // namespace culvert::aws::testing
