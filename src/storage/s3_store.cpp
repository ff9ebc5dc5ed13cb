#include "storage/s3_store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <openssl/evp.h>
#include <pugixml.hpp>

#include "aws/http.hpp"
#include "aws/sigv4.hpp"

namespace culvert::storage {
namespace fs = std::filesystem;

struct S3Store::Call {
  std::string method;
  S3Location loc;
  std::string uri;  // s3://bucket/key, for messages
  std::vector<std::pair<std::string, std::string>> query;
  aws::HeaderList headers;
  std::string_view body;
  std::string body_file;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  std::string payload_sha256 = std::string(aws::kEmptySha256);
  std::string response_file;
};

struct S3Store::Reply {
  aws::HttpResponse http;
  std::string key_id;  // the access key the request was signed with
  int attempts = 0;
  bool transport_error = false;
  Status transport_status;
};

namespace {

struct S3Error {
  std::string code, message;
};

S3Error parse_error(const std::string& body) {
  S3Error e;
  if (body.empty()) return e;
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return e;
  pugi::xml_node err = doc.child("Error");
  e.code = err.child_value("Code");
  e.message = err.child_value("Message");
  return e;
}

bool retryable(const S3Store::Reply& r) {
  if (r.transport_error) return true;
  long s = r.http.status;
  if (s >= 500 || s == 429) return true;
  if (s == 400) {
    std::string code = parse_error(r.http.body).code;
    return code == "RequestTimeout" || code == "Throttling" || code == "ThrottlingException" ||
           code == "SlowDown";
  }
  return false;
}

// Hex SHA-256 of `len` bytes of a file from `offset`, read in chunks.
Result<std::string> sha256_file_range(const std::string& path, uint64_t offset, uint64_t len) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read local file " + path);
  in.seekg(static_cast<std::streamoff>(offset));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (len > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), len));
    in.read(buf.data(), static_cast<std::streamsize>(want));
    if (static_cast<size_t>(in.gcount()) != want) return unavailable("short read from " + path);
    EVP_DigestUpdate(ctx.get(), buf.data(), want);
    len -= want;
  }
  unsigned char md[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  return hex_encode(std::string_view(reinterpret_cast<char*>(md), n));
}

bool valid_bucket_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

}  // namespace

Result<S3Location> parse_s3_uri(std::string_view uri) {
  constexpr std::string_view kPrefix = "s3://";
  if (!uri.starts_with(kPrefix)) return invalid_argument("not an s3:// URI: '" + std::string(uri) + "'");
  std::string_view rest = uri.substr(kPrefix.size());
  auto slash = rest.find('/');
  S3Location loc;
  loc.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) loc.key = std::string(rest.substr(slash + 1));
  if (loc.bucket.size() < 3 || loc.bucket.size() > 63 ||
      !std::all_of(loc.bucket.begin(), loc.bucket.end(), valid_bucket_char))
    return invalid_argument("bad S3 bucket name '" + loc.bucket + "' in '" + std::string(uri) +
                            "' (3-63 characters: a-z 0-9 . -)");
  return loc;
}

S3Target s3_target(const std::string& endpoint, const std::string& region, const S3Location& loc) {
  S3Target t;
  std::string key_path = aws::uri_encode(loc.key, true);
  if (!endpoint.empty()) {
    auto parts = aws::parse_url(endpoint);
    if (!parts) return t;
    std::string base = parts->path;
    while (!base.empty() && base.back() == '/') base.pop_back();
    t.scheme = parts->scheme;
    t.host = parts->host_header();
    t.path = base + "/" + loc.bucket + "/" + key_path;
  } else if (loc.bucket.find('.') != std::string::npos) {
    // Dotted names cannot match the *.s3 TLS certificate: path-style on the regional host.
    t.scheme = "https";
    t.host = "s3." + region + ".amazonaws.com";
    t.path = "/" + loc.bucket + "/" + key_path;
  } else {
    t.scheme = "https";
    t.host = loc.bucket + ".s3." + region + ".amazonaws.com";
    t.path = "/" + key_path;
  }
  return t;
}

S3Store::S3Store(S3Config config) : cfg_(std::move(config)) {
  if (!cfg_.clock) cfg_.clock = &system_clock();
  if (!cfg_.random) cfg_.random = &secure_random_;
  if (cfg_.max_attempts < 1) cfg_.max_attempts = 1;
  if (cfg_.part_size == 0) cfg_.part_size = 8ull << 20;
  if (!cfg_.endpoint.empty()) {
    auto parts = aws::parse_url(cfg_.endpoint);
    if (!parts) endpoint_status_ = invalid_argument("S3 endpoint: " + parts.status().message());
  }
}

S3Store::~S3Store() = default;

std::string S3Store::endpoint_name() const {
  return cfg_.endpoint.empty() ? "https://s3." + cfg_.region + ".amazonaws.com" : cfg_.endpoint;
}

double S3Store::jitter() {
  std::lock_guard lock(random_mu_);
  return 0.5 + 0.5 * cfg_.random->uniform01();
}

Result<S3Store::Reply> S3Store::send(const Call& call) {
  if (!endpoint_status_.is_ok()) return endpoint_status_;
  S3Target target = s3_target(cfg_.endpoint, cfg_.region, call.loc);
  const std::string& scheme = target.scheme;
  const std::string& host = target.host;
  const std::string& path = target.path;
  std::string query;
  for (const auto& [k, v] : call.query)
    query += (query.empty() ? "?" : "&") + aws::uri_encode(k, false) + "=" + aws::uri_encode(v, false);

  Reply reply;
  for (int attempt = 1;; ++attempt) {
    auto creds = cfg_.credentials->get();
    if (!creds) return creds.status();
    reply = Reply{};
    reply.key_id = creds->access_key_id;
    reply.attempts = attempt;

    aws::SigningRequest sr;
    sr.method = call.method;
    sr.host = host;
    sr.path = path;
    sr.query = call.query;
    sr.headers = call.headers;
    sr.payload_sha256 = call.payload_sha256;
    aws::SignedRequest signed_req =
        aws::sign_v4(sr, *creds, {.region = cfg_.region, .service = "s3"}, cfg_.clock->now());

    aws::HttpRequest hr;
    hr.method = call.method;
    hr.url = scheme + "://" + host + path + query;
    hr.headers = call.headers;
    hr.headers.emplace_back("Host", host);
    for (auto& h : signed_req.headers) hr.headers.push_back(std::move(h));
    hr.body = call.body;
    hr.body_file = call.body_file;
    hr.body_offset = call.body_offset;
    hr.body_length = call.body_length;
    hr.response_file = call.response_file;
    hr.connect_timeout_ms = cfg_.connect_timeout_ms;

    auto resp = aws::http_send(hr);
    if (resp) {
      reply.http = std::move(*resp);
    } else {
      if (resp.status().code() != StatusCode::kUnavailable) return resp.status();
      reply.transport_error = true;
      reply.transport_status = resp.status();
    }
    bool ok = !reply.transport_error && reply.http.status >= 200 && reply.http.status < 300;
    if (ok || !retryable(reply) || attempt >= cfg_.max_attempts) return reply;
    auto delay = std::min<Millis::rep>(cfg_.max_backoff.count(),
                                       cfg_.base_backoff.count() << std::min(attempt - 1, 20));
    cfg_.clock->sleep_for(Millis(static_cast<Millis::rep>(static_cast<double>(delay) * jitter())));
  }
}

Status S3Store::error_for(const Call& call, const Reply& r) const {
  const std::string op = call.method + " " + call.uri;
  const std::string tries = r.attempts > 1 ? " after " + std::to_string(r.attempts) + " attempts" : "";
  if (r.transport_error)
    return unavailable("S3 endpoint " + endpoint_name() + " is unreachable (" + op + tries +
                       "): " + r.transport_status.message());
  S3Error e = parse_error(r.http.body);
  const long s = r.http.status;
  const std::string detail = "HTTP " + std::to_string(s) + (e.code.empty() ? "" : " " + e.code) +
                             (e.message.empty() ? "" : ": " + e.message);
  if (e.code == "NoSuchBucket")
    return not_found("S3 bucket '" + call.loc.bucket + "' does not exist at " + endpoint_name() +
                     " (" + op + ")");
  if (e.code == "NoSuchKey" || (s == 404 && e.code.empty())) return not_found("no object at " + call.uri);
  if (e.code == "NoSuchUpload") return not_found("multipart upload for " + call.uri + " is gone: " + detail);
  if (e.code == "InvalidAccessKeyId")
    return Status(StatusCode::kUnauthenticated,
                  "S3 at " + endpoint_name() + " does not know the access key '" + r.key_id +
                      "' (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID or the AWS profile");
  if (e.code == "SignatureDoesNotMatch")
    return Status(StatusCode::kUnauthenticated,
                  "S3 at " + endpoint_name() + " rejected the signature for access key '" + r.key_id +
                      "' (SignatureDoesNotMatch): check the secret access key");
  if (e.code == "ExpiredToken" || e.code == "InvalidToken" || e.code == "TokenRefreshRequired")
    return Status(StatusCode::kUnauthenticated, "S3 rejected the session token (" + e.code +
                                                    "): refresh the AWS credentials");
  if (e.code == "RequestTimeTooSkewed")
    return Status(StatusCode::kUnauthenticated,
                  "S3 at " + endpoint_name() + " refused the request because this machine's clock is "
                  "more than 15 minutes off (RequestTimeTooSkewed): synchronise the clock (NTP)");
  if (e.code == "AccessDenied" || s == 403)
    return Status(StatusCode::kPermissionDenied, "access denied to " + call.uri + " (" + op + "): " + detail);
  if (e.code == "EntityTooLarge") return Status(StatusCode::kTooLarge, op + ": " + detail);
  if (e.code == "PermanentRedirect" || e.code == "AuthorizationHeaderMalformed" ||
      e.code == "IllegalLocationConstraintException")
    return invalid_argument("S3 bucket '" + call.loc.bucket + "' is not in region '" + cfg_.region +
                            "' (set AWS_REGION): " + detail);
  if (s >= 500 || retryable(r))
    return unavailable("S3 at " + endpoint_name() + " failed " + op + tries + ": " + detail);
  return internal_error("S3 " + op + " failed: " + detail);
}

Result<std::string> S3Store::get(const std::string& uri) {
  auto loc = parse_s3_uri(uri);
  if (!loc) return loc.status();
  Call c{.method = "GET", .loc = *loc, .uri = uri};
  auto r = send(c);
  if (!r) return r.status();
  if (r->transport_error || r->http.status != 200) return error_for(c, *r);
  return std::move(r->http.body);
}

Status S3Store::put(const std::string& uri, std::string_view data) {
  auto loc = parse_s3_uri(uri);
  if (!loc) return loc.status();
  if (loc->key.empty()) return invalid_argument("S3 URI '" + uri + "' has no object key");
  Call c{.method = "PUT", .loc = *loc, .uri = uri};
  c.headers.emplace_back("Content-Type", "application/octet-stream");
  c.body = data;
  c.payload_sha256 = sha256_hex(data);
  auto r = send(c);
  if (!r) return r.status();
  if (r->transport_error || r->http.status / 100 != 2) return error_for(c, *r);
  return Status::ok();
}

Result<bool> S3Store::exists(const std::string& uri) {
  auto loc = parse_s3_uri(uri);
  if (!loc) return loc.status();
  if (loc->key.empty()) return invalid_argument("S3 URI '" + uri + "' has no object key");
  Call c{.method = "HEAD", .loc = *loc, .uri = uri};
  auto r = send(c);
  if (!r) return r.status();
  if (!r->transport_error && r->http.status == 200) return true;
  if (!r->transport_error && r->http.status == 404) return false;
  return error_for(c, *r);
}

Status S3Store::put_file(const std::string& uri, const std::string& local_path) {
  auto loc = parse_s3_uri(uri);
  if (!loc) return loc.status();
  if (loc->key.empty()) return invalid_argument("S3 URI '" + uri + "' has no object key");
  std::error_code ec;
  uint64_t size = fs::file_size(local_path, ec);
  if (ec) return not_found("cannot read local file " + local_path + ": " + ec.message());
  Call c{.method = "PUT", .loc = *loc, .uri = uri};
  c.body_file = local_path;
  if (cfg_.multipart_threshold > 0 && size >= cfg_.multipart_threshold) return put_multipart(c, size);
  c.headers.emplace_back("Content-Type", "application/octet-stream");
  c.body_length = size;
  auto hash = sha256_file_range(local_path, 0, size);
  if (!hash) return hash.status();
  c.payload_sha256 = *hash;
  auto r = send(c);
  if (!r) return r.status();
  if (r->transport_error || r->http.status / 100 != 2) return error_for(c, *r);
  return Status::ok();
}

Status S3Store::put_multipart(const Call& base, uint64_t size) {
  Call init = base;
  init.method = "POST";
  init.body_file.clear();
  init.query = {{"uploads", ""}};
  init.headers = {{"Content-Type", "application/octet-stream"}};
  auto r = send(init);
  if (!r) return r.status();
  if (r->transport_error || r->http.status != 200) return error_for(init, *r);
  pugi::xml_document doc;
  doc.load_buffer(r->http.body.data(), r->http.body.size());
  std::string upload_id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
  if (upload_id.empty())
    return internal_error("S3 did not return an UploadId for " + base.uri + ": " + r->http.body.substr(0, 200));

  auto abort_upload = [&](Status why) {
    Call ab = base;
    ab.method = "DELETE";
    ab.body_file.clear();
    ab.query = {{"uploadId", upload_id}};
    (void)send(ab);  // best effort: the original error is what the caller needs
    return why;
  };

  // S3 allows at most 10000 parts: grow the part size for very large files.
  const uint64_t part_size = std::max<uint64_t>(cfg_.part_size, (size + 9999) / 10000);
  std::string parts_xml;
  std::ifstream in(base.body_file, std::ios::binary);
  if (!in) return abort_upload(not_found("cannot read local file " + base.body_file));
  std::string buf;
  int part = 0;
  for (uint64_t off = 0; off < size; off += part_size) {
    ++part;
    uint64_t len = std::min<uint64_t>(part_size, size - off);
    buf.resize(static_cast<size_t>(len));
    in.read(buf.data(), static_cast<std::streamsize>(len));
    if (static_cast<uint64_t>(in.gcount()) != len)
      return abort_upload(unavailable("short read from " + base.body_file));
    Call pc = base;
    pc.body_file.clear();
    pc.body = buf;
    pc.payload_sha256 = sha256_hex(buf);
    pc.query = {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}};
    auto pr = send(pc);
    if (!pr) return abort_upload(pr.status());
    if (pr->transport_error || pr->http.status != 200) return abort_upload(error_for(pc, *pr));
    std::string etag = pr->http.header("etag");
    if (etag.empty()) return abort_upload(internal_error("S3 returned no ETag for part " + std::to_string(part) + " of " + base.uri));
    parts_xml += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" + etag + "</ETag></Part>";
  }

  std::string body = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">" +
                     parts_xml + "</CompleteMultipartUpload>";
  Call done = base;
  done.method = "POST";
  done.body_file.clear();
  done.body = body;
  done.payload_sha256 = sha256_hex(body);
  done.query = {{"uploadId", upload_id}};
  done.headers = {{"Content-Type", "application/xml"}};
  auto dr = send(done);
  if (!dr) return abort_upload(dr.status());
  if (dr->transport_error || dr->http.status != 200) return abort_upload(error_for(done, *dr));
  // S3 may answer 200 and report the failure in the body.
  pugi::xml_document ddoc;
  if (ddoc.load_buffer(dr->http.body.data(), dr->http.body.size()) && ddoc.child("Error")) {
    Reply failed = *dr;
    failed.http.status = 500;
    return abort_upload(error_for(done, failed));
  }
  return Status::ok();
}

Status S3Store::get_file(const std::string& uri, const std::string& local_path) {
  auto loc = parse_s3_uri(uri);
  if (!loc) return loc.status();
  std::error_code ec;
  fs::path dest(local_path);
  if (dest.has_parent_path()) fs::create_directories(dest.parent_path(), ec);
  std::string tmp = local_path + ".part-" + hex_encode(random_bytes(6));
  Call c{.method = "GET", .loc = *loc, .uri = uri};
  c.response_file = tmp;
  auto r = send(c);
  auto fail = [&](Status st) {
    fs::remove(tmp, ec);
    return st;
  };
  if (!r) return fail(r.status());
  if (r->transport_error || r->http.status != 200) return fail(error_for(c, *r));
  fs::rename(tmp, local_path, ec);
  if (ec) return fail(unavailable("cannot rename into " + local_path + ": " + ec.message()));
  return Status::ok();
}

Status S3Store::remove(const std::string& uri) {
  auto loc = parse_s3_uri(uri);
  if (!loc) return loc.status();
  if (loc->key.empty()) return invalid_argument("S3 URI '" + uri + "' has no object key");
  Call c{.method = "DELETE", .loc = *loc, .uri = uri};
  auto r = send(c);
  if (!r) return r.status();
  if (r->transport_error || r->http.status / 100 != 2) {
    // Deleting a missing object succeeds (S3 answers 204; some services 404).
    bool missing_key = !r->transport_error && r->http.status == 404 &&
                       parse_error(r->http.body).code != "NoSuchBucket";
    if (!missing_key) return error_for(c, *r);
  }
  return Status::ok();
}

std::unique_ptr<ObjectStore> make_s3_store(const StorageOptions& options) {
  aws::EnvLookup env = aws::process_env();
  S3Config cfg;
  cfg.endpoint = options.s3_endpoint;
  if (cfg.endpoint.empty()) cfg.endpoint = env("CULVERT_S3_ENDPOINT").value_or("");
  cfg.region = aws::resolve_region(env, options.region, options.aws_profile);
  cfg.credentials = aws::default_credentials_chain(env, options.aws_profile);
  if (options.s3_multipart_threshold > 0) cfg.multipart_threshold = options.s3_multipart_threshold;
  if (options.s3_part_size > 0) cfg.part_size = options.s3_part_size;
  return std::make_unique<S3Store>(std::move(cfg));
}

}  // namespace culvert::storage
