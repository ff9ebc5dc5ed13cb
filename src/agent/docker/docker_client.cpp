#include "agent/docker/docker_client.hpp"

#include <curl/curl.h>

#include <cstring>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

namespace culvert::docker {
namespace {

using json = nlohmann::json;

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

std::string url_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Typed field access that never throws on unexpected JSON: the default instead.
std::string str_of(const nlohmann::json& j, const char* key, std::string def = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}
template <typename T>
T num_of(const nlohmann::json& j, const char* key, T def) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<T>() : def;
}
bool bool_of(const nlohmann::json& j, const char* key, bool def = false) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : def;
}

std::string daemon_message(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_object() && !str_of(j, "message").empty()) return str_of(j, "message");
  std::string s = body.substr(0, 300);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

// ---- log demultiplexing ----

bool LogDemuxer::emit(LogStream s, std::string_view payload, const Sink& sink) {
  std::string& part = partial_[static_cast<int>(s)];
  size_t start = 0;
  for (size_t nl = payload.find('\n'); nl != std::string_view::npos; nl = payload.find('\n', start)) {
    part.append(payload.substr(start, nl - start));
    if (!part.empty() && part.back() == '\r') part.pop_back();
    LogLine line{s, std::move(part)};
    part.clear();
    if (!sink(line)) return false;
    start = nl + 1;
  }
  part.append(payload.substr(start));
  return true;
}

bool LogDemuxer::feed(std::string_view bytes, const Sink& sink) {
  pending_.append(bytes);
  size_t pos = 0;
  bool go = true;
  while (go && pending_.size() - pos >= 8) {
    const auto* h = reinterpret_cast<const unsigned char*>(pending_.data() + pos);
    uint32_t len = (uint32_t{h[4]} << 24) | (uint32_t{h[5]} << 16) | (uint32_t{h[6]} << 8) | h[7];
    if (pending_.size() - pos - 8 < len) break;
    // Stream 0 is stdin (never sent in logs); treat anything but stderr as stdout.
    LogStream s = h[0] == 2 ? LogStream::kStderr : LogStream::kStdout;
    go = emit(s, std::string_view(pending_).substr(pos + 8, len), sink);
    pos += 8 + len;
  }
  pending_.erase(0, pos);
  return go;
}

bool LogDemuxer::finish(const Sink& sink) {
  for (LogStream s : {LogStream::kStdout, LogStream::kStderr}) {
    std::string& part = partial_[static_cast<int>(s)];
    if (part.empty()) continue;
    LogLine line{s, std::move(part)};
    part.clear();
    if (!sink(line)) return false;
  }
  return true;
}

// ---- tar ----

std::string make_tar(const std::vector<TarEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    char h[512] = {};
    std::snprintf(h, 100, "%s", e.name.c_str());
    std::snprintf(h + 100, 8, "%07o", e.mode);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    const bool is_file = e.type == TarEntry::Type::kFile;
    std::snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(is_file ? e.content.size() : 0));
    std::snprintf(h + 136, 12, "%011o", 0);
    h[156] = is_file ? '0' : e.type == TarEntry::Type::kDirectory ? '5' : '2';
    if (e.type == TarEntry::Type::kSymlink) std::snprintf(h + 157, 100, "%s", e.link.c_str());
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memcpy(h + 265, "root", 4);  // uname
    std::memcpy(h + 297, "root", 4);  // gname
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    out.append(h, 512);
    if (!is_file) continue;
    out.append(e.content);
    out.append((512 - e.content.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

// ---- the create body ----

std::string create_body(const ContainerSpec& spec) {
  json j;
  j["Image"] = spec.image;
  if (!spec.cmd.empty()) j["Cmd"] = spec.cmd;
  if (!spec.entrypoint.empty()) j["Entrypoint"] = spec.entrypoint;
  if (!spec.env.empty()) {
    json env = json::array();
    for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
    j["Env"] = env;
  }
  if (!spec.working_dir.empty()) j["WorkingDir"] = spec.working_dir;
  j["Labels"] = spec.labels;
  j["Tty"] = false;
  j["AttachStdout"] = false;
  j["AttachStderr"] = false;
  json hc = json::object();
  if (!spec.network_mode.empty()) hc["NetworkMode"] = spec.network_mode;
  if (!spec.binds.empty()) hc["Binds"] = spec.binds;
  if (spec.nano_cpus > 0) hc["NanoCpus"] = spec.nano_cpus;
  if (spec.memory_bytes > 0) {
    hc["Memory"] = spec.memory_bytes;
    hc["MemorySwap"] = spec.memory_bytes;  // no swap beyond the limit
  }
  j["HostConfig"] = hc;
  return j.dump();
}

// ---- the client ----

struct DockerClient::Reply {
  long status = 0;
  std::string body;
  bool stopped_by_caller = false;
};

DockerClient::DockerClient(Options options) : opts_(std::move(options)) {
  socket_ = opts_.host;
  if (socket_.starts_with("unix://")) socket_ = socket_.substr(7);
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<DockerClient::Reply> DockerClient::call(const std::string& method, const std::string& path,
                                               std::string_view body, std::string_view content_type,
                                               const std::function<bool(std::string_view)>& stream) const {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return internal_error("curl_easy_init failed");
  CURL* c = curl.get();
  Reply reply;
  struct Ctx {
    CURL* c;
    Reply* reply;
    const std::function<bool(std::string_view)>* stream;
  } ctx{c, &reply, &stream};
  std::string url = "http://localhost/" + opts_.api_version + path;
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, opts_.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST" || !body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  if (method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  std::unique_ptr<curl_slist, SlistDeleter> hdrs;
  auto add = [&](const std::string& line) {
    if (curl_slist* n = curl_slist_append(hdrs.get(), line.c_str())) {
      (void)hdrs.release();
      hdrs.reset(n);
    }
  };
  add("Expect:");
  add(content_type.empty() ? "Content-Type:" : "Content-Type: " + std::string(content_type));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs.get());
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* ud) -> size_t {
    auto* x = static_cast<Ctx*>(ud);
    size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &code);
    if (*x->stream && code >= 200 && code < 300) {
      if (!(*x->stream)(std::string_view(data, len))) {
        x->reply->stopped_by_caller = true;
        return 0;  // aborts the transfer
      }
      return len;
    }
    x->reply->body.append(data, len);
    return len;
  });
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && reply.stopped_by_caller)) {
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_RESOLVE_HOST)
      return unavailable("the Docker daemon at unix://" + socket_ + " is unreachable (" +
                         curl_easy_strerror(rc) + "): is dockerd running, and may this user use its socket?");
    return unavailable("Docker API " + method + " " + path + " via unix://" + socket_ + " failed: " +
                       curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

Status DockerClient::error_for(const Reply& r, std::string_view what) const {
  std::string msg = daemon_message(r.body);
  std::string text = std::string(what) + ": " + msg;
  switch (r.status) {
    case 400: return invalid_argument(text);
    case 401:
    case 403: return Status(StatusCode::kPermissionDenied, text);
    case 404: return not_found(text);
    case 409: return conflict(text);
    default:
      if (r.status >= 500) return Status(StatusCode::kInternal, "Docker daemon error (HTTP " + std::to_string(r.status) + ") for " + text);
      return internal_error("unexpected HTTP " + std::to_string(r.status) + " for " + text);
  }
}

Status DockerClient::ping() {
  auto r = call("GET", "/_ping", {}, {});
  if (!r) return r.status();
  if (r->status != 200) return error_for(*r, "ping");
  return Status::ok();
}

Result<std::string> DockerClient::create(const ContainerSpec& spec) {
  if (spec.image.empty()) return invalid_argument("container spec has no image");
  std::string path = "/containers/create";
  if (!spec.name.empty()) path += "?name=" + url_escape(spec.name);
  auto r = call("POST", path, create_body(spec), "application/json");
  if (!r) return r.status();
  if (r->status == 404)
    return not_found("image '" + spec.image + "' not found on the Docker daemon (" + daemon_message(r->body) +
                     "); build it or pull it on this host first");
  if (r->status != 201) return error_for(*r, "create container from '" + spec.image + "'");
  auto j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || str_of(j, "Id").empty()) return internal_error("create container: no Id in " + r->body);
  return str_of(j, "Id");
}

Status DockerClient::start(const std::string& id) {
  auto r = call("POST", "/containers/" + url_escape(id) + "/start", {}, {});
  if (!r) return r.status();
  if (r->status == 204 || r->status == 304) return Status::ok();
  return error_for(*r, "start container " + id);
}

Result<int> DockerClient::wait(const std::string& id) {
  auto r = call("POST", "/containers/" + url_escape(id) + "/wait?condition=not-running", {}, {});
  if (!r) return r.status();
  if (r->status != 200) return error_for(*r, "wait for container " + id);
  auto j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("StatusCode") || !j["StatusCode"].is_number_integer())
    return internal_error("wait: unexpected answer " + r->body);
  if (j.contains("Error") && j["Error"].is_object() && !str_of(j["Error"], "Message").empty())
    return internal_error("wait for container " + id + ": " + str_of(j["Error"], "Message"));
  return j["StatusCode"].get<int>();
}

Result<std::vector<LogLine>> DockerClient::logs(const std::string& id) {
  std::vector<LogLine> lines;
  LogDemuxer demux;
  auto sink = [&](const LogLine& l) {
    lines.push_back(l);
    return true;
  };
  auto r = call("GET", "/containers/" + url_escape(id) + "/logs?stdout=true&stderr=true", {}, {},
                [&](std::string_view chunk) { return demux.feed(chunk, sink); });
  if (!r) return r.status();
  if (r->status != 200) return error_for(*r, "logs of container " + id);
  demux.finish(sink);
  return lines;
}

Status DockerClient::follow_logs(const std::string& id, const std::function<bool(const LogLine&)>& on_line) {
  LogDemuxer demux;
  auto r = call("GET", "/containers/" + url_escape(id) + "/logs?stdout=true&stderr=true&follow=true", {}, {},
                [&](std::string_view chunk) { return demux.feed(chunk, on_line); });
  if (!r) return r.status();
  if (r->stopped_by_caller) return Status::ok();
  if (r->status != 200) return error_for(*r, "logs of container " + id);
  demux.finish(on_line);
  return Status::ok();
}

Result<ContainerInfo> DockerClient::inspect(const std::string& id) {
  auto r = call("GET", "/containers/" + url_escape(id) + "/json", {}, {});
  if (!r) return r.status();
  if (r->status != 200) return error_for(*r, "inspect container " + id);
  auto j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) return internal_error("inspect container " + id + ": not JSON");
  ContainerInfo info;
  info.id = str_of(j, "Id");
  info.name = str_of(j, "Name");
  if (info.name.starts_with('/')) info.name.erase(0, 1);
  info.image = j.contains("Config") && j["Config"].is_object() ? str_of(j["Config"], "Image") : "";
  if (j.contains("State") && j["State"].is_object()) {
    const json& s = j["State"];
    info.status = str_of(s, "Status");
    info.running = bool_of(s, "Running");
    info.exit_code = num_of<int>(s, "ExitCode", 0);
    info.oom_killed = bool_of(s, "OOMKilled");
    info.error = str_of(s, "Error");
  }
  if (j.contains("HostConfig") && j["HostConfig"].is_object()) {
    const json& h = j["HostConfig"];
    info.network_mode = str_of(h, "NetworkMode");
    info.memory_bytes = num_of<int64_t>(h, "Memory", 0);
    info.nano_cpus = num_of<int64_t>(h, "NanoCpus", 0);
  }
  if (j.contains("Config") && j["Config"].is_object() && j["Config"].contains("Labels") &&
      j["Config"]["Labels"].is_object())
    for (const auto& [k, v] : j["Config"]["Labels"].items())
      if (v.is_string()) info.labels[k] = v.get<std::string>();
  return info;
}

Status DockerClient::stop(const std::string& id, int timeout_s) {
  auto r = call("POST", "/containers/" + url_escape(id) + "/stop?t=" + std::to_string(timeout_s), {}, {});
  if (!r) return r.status();
  if (r->status == 204 || r->status == 304) return Status::ok();
  return error_for(*r, "stop container " + id);
}

Status DockerClient::remove(const std::string& id, bool force) {
  auto r = call("DELETE", "/containers/" + url_escape(id) + "?v=true&force=" + (force ? "true" : "false"), {}, {});
  if (!r) return r.status();
  if (r->status == 204 || r->status == 404) return Status::ok();
  return error_for(*r, "remove container " + id);
}

Result<std::string> DockerClient::build_image(std::string_view context_tar, const std::string& tag) {
  auto r = call("POST", "/build?t=" + url_escape(tag) + "&rm=true&forcerm=true", context_tar, "application/x-tar");
  if (!r) return r.status();
  if (r->status != 200) return error_for(*r, "build image " + tag);
  // The answer is a stream of JSON messages; a failed build reports {"error": ...}.
  std::string id, output;
  size_t start = 0;
  while (start < r->body.size()) {
    size_t nl = r->body.find('\n', start);
    if (nl == std::string::npos) nl = r->body.size();
    auto j = json::parse(std::string_view(r->body).substr(start, nl - start), nullptr, false);
    start = nl + 1;
    if (!j.is_object()) continue;
    if (j.contains("error")) return invalid_argument("build image " + tag + " failed: " + str_of(j, "error") + "\n" + output);
    if (j.contains("stream") && j["stream"].is_string()) output += j["stream"].get<std::string>();
    if (j.contains("aux") && j["aux"].is_object()) id = str_of(j["aux"], "ID", id);
  }
  if (id.empty()) return internal_error("build image " + tag + ": no image id in the answer\n" + output);
  return id;
}

Status DockerClient::remove_image(const std::string& tag) {
  auto r = call("DELETE", "/images/" + url_escape(tag) + "?force=true", {}, {});
  if (!r) return r.status();
  if (r->status == 200 || r->status == 404) return Status::ok();
  return error_for(*r, "remove image " + tag);
}

Result<ImageInfo> DockerClient::inspect_image(const std::string& name) {
  auto r = call("GET", "/images/" + url_escape(name) + "/json", {}, {});
  if (!r) return r.status();
  if (r->status == 404) return not_found("image '" + name + "' is not on the Docker daemon at unix://" + socket_);
  if (r->status != 200) return error_for(*r, "inspect image " + name);
  auto j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) return internal_error("inspect image " + name + ": not JSON");
  ImageInfo info;
  info.id = str_of(j, "Id");
  info.os = str_of(j, "Os");
  info.architecture = str_of(j, "Architecture");
  if (j.contains("Config") && j["Config"].is_object() && j["Config"].contains("Env") && j["Config"]["Env"].is_array())
    for (const auto& e : j["Config"]["Env"])
      if (e.is_string()) info.env.push_back(e.get<std::string>());
  return info;
}

}  // namespace culvert::docker
