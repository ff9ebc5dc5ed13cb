#include "server_process.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "store/testing.hpp"

namespace culvert::testing {
namespace {

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

HttpClient::HttpClient(std::string base_url) : base_(std::move(base_url)), curl_(curl_easy_init()) {}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

Reply HttpClient::request(const std::string& method, const std::string& path, const std::string& body,
                          const std::string& token, long timeout_ms) {
  CURL* h = static_cast<CURL*>(curl_);
  curl_easy_reset(h);
  std::string url = base_ + path;
  Reply r;
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  std::string auth = "Authorization: Bearer " + token;
  if (!token.empty()) headers = curl_slist_append(headers, auth.c_str());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.text);
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  r.body = nlohmann::json::parse(r.text, nullptr, false);
  return r;
}

TempDir::TempDir() {
  std::string t = (std::filesystem::temp_directory_path() / "culvert-e2e-XXXXXX").string();
  if (!mkdtemp(t.data())) std::abort();
  path_ = t;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::unique_ptr<ServerProcess> ServerProcess::start(const std::string& home, const std::string& db_url,
                                                    const std::vector<std::string>& extra, ServerLimits limits) {
  auto p = std::unique_ptr<ServerProcess>(new ServerProcess());
  p->log_path_ = home + "/server.log";
  int out[2];
  if (pipe(out) != 0) {
    ADD_FAILURE() << "pipe failed";
    return nullptr;
  }
  std::vector<std::string> args = {CULVERT_BINARY_DIR "/culvert", "server", "start", "--listen", "127.0.0.1:0",
                                   "--db", db_url};
  args.insert(args.end(), extra.begin(), extra.end());
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    int log = open(p->log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) dup2(log, 2);
    close(out[0]);
    close(out[1]);
    setenv("HOME", home.c_str(), 1);
    if (limits.nofile > 0) {
      rlimit rl{static_cast<rlim_t>(limits.nofile), static_cast<rlim_t>(limits.nofile)};
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(126);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  p->pid_ = pid;
  // Read stdout until the "listening on" line (or EOF: the server died).
  std::string buf;
  char chunk[512];
  for (;;) {
    ssize_t n = read(out[0], chunk, sizeof chunk);
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    auto at = buf.find("listening on ");
    if (at != std::string::npos && buf.find('\n', at) != std::string::npos) {
      auto end = buf.find('\n', at);
      p->url_ = buf.substr(at + 13, end - at - 13);
      break;
    }
  }
  close(out[0]);
  p->banner_ = buf;
  if (p->url_.empty()) {
    std::ifstream log(p->log_path_);
    std::stringstream ss;
    ss << log.rdbuf();
    ADD_FAILURE() << "server did not start; stdout:\n" << buf << "\nstderr:\n" << ss.str();
    return nullptr;
  }
  return p;
}

std::string ServerProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) kill9();
}

void ServerProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int ServerProcess::terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

TestDb make_test_db(const std::string& backend) {
  auto db = store::TestDatabase::create(backend);
  if (!db) {
    ADD_FAILURE() << db.status().to_string();
    return {};
  }
  auto holder = std::make_shared<store::TestDatabase>(std::move(db).value());
  TestDb t;
  t.url = holder->url();
  t.keep = holder;
  return t;
}

}  // namespace culvert::testing
