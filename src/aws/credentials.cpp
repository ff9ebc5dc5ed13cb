#include "aws/credentials.hpp"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/timefmt.hpp"
#include "aws/http.hpp"

namespace culvert::aws {
namespace {

using Section = std::map<std::string, std::string>;

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Reads one section of an INI-style AWS file. nullopt when the file or section is absent.
std::optional<Section> read_ini_section(const std::string& path, const std::vector<std::string>& names) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::map<std::string, Section> sections;
  std::string line, current;
  bool in_wanted = false;
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      current = trim(std::string_view(t).substr(1, t.size() - 2));
      in_wanted = false;
      for (const auto& n : names) in_wanted |= (n == current);
      if (in_wanted) sections[current];
      continue;
    }
    if (!in_wanted) continue;
    auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    sections[current][trim(std::string_view(t).substr(0, eq))] = trim(std::string_view(t).substr(eq + 1));
  }
  for (const auto& n : names) {
    auto it = sections.find(n);
    if (it != sections.end()) return it->second;
  }
  return std::nullopt;
}

std::optional<Section> config_section(const ProfileLocation& loc) {
  std::vector<std::string> names{"profile " + loc.profile};
  if (loc.profile == "default") names.emplace_back("default");
  return read_ini_section(loc.config_file, names);
}

std::string get_or(const EnvLookup& env, std::string_view name, std::string fallback = {}) {
  auto v = env(name);
  return v && !v->empty() ? *v : fallback;
}

// Typed field access that never throws on unexpected JSON: the default instead.
std::string str_of(const nlohmann::json& j, const char* key, std::string def = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}

std::string first_line(std::string_view s) {
  auto nl = s.find('\n');
  return std::string(s.substr(0, std::min<size_t>(nl, 200)));
}

}  // namespace

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

Result<Credentials> EnvCredentialsProvider::get() {
  std::string key = get_or(env_, "AWS_ACCESS_KEY_ID");
  std::string secret = get_or(env_, "AWS_SECRET_ACCESS_KEY");
  if (key.empty() && secret.empty()) return not_found("AWS_ACCESS_KEY_ID is not set");
  if (key.empty() || secret.empty())
    return invalid_argument(std::string(key.empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
                            " is not set but " +
                            (key.empty() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") + " is");
  Credentials c;
  c.access_key_id = key;
  c.secret_access_key = secret;
  c.session_token = get_or(env_, "AWS_SESSION_TOKEN");
  return c;
}

ProfileLocation profile_location(const EnvLookup& env, std::string_view profile) {
  ProfileLocation loc;
  std::string home = get_or(env, "HOME", "/");
  loc.credentials_file = get_or(env, "AWS_SHARED_CREDENTIALS_FILE", home + "/.aws/credentials");
  loc.config_file = get_or(env, "AWS_CONFIG_FILE", home + "/.aws/config");
  loc.profile = !profile.empty() ? std::string(profile) : get_or(env, "AWS_PROFILE", "default");
  return loc;
}

Result<Credentials> ProfileCredentialsProvider::get() {
  ProfileLocation loc = profile_location(env_, profile_);
  std::optional<Section> sec = read_ini_section(loc.credentials_file, {loc.profile});
  std::string where = loc.credentials_file;
  if (!sec || !sec->count("aws_access_key_id")) {
    sec = config_section(loc);
    where = loc.config_file;
  }
  if (!sec || !sec->count("aws_access_key_id"))
    return not_found("no keys for profile '" + loc.profile + "' in " + loc.credentials_file +
                     " or " + loc.config_file);
  Credentials c;
  c.access_key_id = (*sec)["aws_access_key_id"];
  c.secret_access_key = (*sec)["aws_secret_access_key"];
  c.session_token = (*sec)["aws_session_token"];
  if (c.secret_access_key.empty())
    return invalid_argument("profile '" + loc.profile + "' in " + where +
                            " has aws_access_key_id but no aws_secret_access_key");
  return c;
}

Result<Credentials> parse_credentials_json(std::string_view json, std::string_view source) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return unavailable("credentials from " + std::string(source) + " are not JSON: " + first_line(json));
  if (std::string code = str_of(j, "Code"); !code.empty() && code != "Success")
    return unavailable("credentials from " + std::string(source) + " failed: " + code + " " +
                       str_of(j, "Message"));
  Credentials c;
  c.access_key_id = str_of(j, "AccessKeyId");
  c.secret_access_key = str_of(j, "SecretAccessKey");
  c.session_token = str_of(j, "Token");
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    return unavailable("credentials from " + std::string(source) +
                       " lack AccessKeyId/SecretAccessKey");
  std::string exp = str_of(j, "Expiration");
  if (!exp.empty()) {
    auto t = parse_rfc3339(exp);
    if (!t) return unavailable("credentials from " + std::string(source) + " have a bad Expiration '" + exp + "'");
    c.expiration = *t;
  }
  return c;
}

Result<Credentials> EcsCredentialsProvider::get() {
  std::string full = get_or(env_, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  std::string rel = get_or(env_, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  HttpRequest req;
  if (!rel.empty()) {
    req.url = relative_base_ + (rel.front() == '/' ? "" : "/") + rel;
  } else if (!full.empty()) {
    // Like the AWS SDKs: plain http only to this host or the ECS/EKS agent addresses,
    // so credentials are never fetched from (or a token sent to) an arbitrary server.
    auto parts = parse_url(full);
    if (!parts) return invalid_argument("AWS_CONTAINER_CREDENTIALS_FULL_URI: " + parts.status().message());
    const std::string& h = parts->host;
    bool local = h == "localhost" || h.starts_with("127.") || h == "[::1]" || h == "169.254.170.2" ||
                 h == "169.254.170.23" || h == "[fd00:ec2::23]";
    if (parts->scheme != "https" && !local)
      return invalid_argument("AWS_CONTAINER_CREDENTIALS_FULL_URI '" + full +
                              "' must use https or a loopback/ECS agent address");
    req.url = full;
    std::string token = get_or(env_, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (!token.empty()) req.headers.emplace_back("Authorization", token);
  } else {
    return not_found("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are not set");
  }
  req.connect_timeout_ms = 2000;
  req.timeout_ms = 5000;
  auto resp = http_send(req);
  if (!resp) return unavailable("ECS container credentials: " + resp.status().message());
  if (resp->status != 200)
    return unavailable("ECS container credentials endpoint " + req.url + " answered HTTP " +
                       std::to_string(resp->status) + ": " + first_line(resp->body));
  return parse_credentials_json(resp->body, "the ECS container credentials endpoint");
}

Result<Credentials> ImdsCredentialsProvider::get() {
  std::string disabled = get_or(env_, "AWS_EC2_METADATA_DISABLED");
  for (char& c : disabled) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (disabled == "true") return not_found("EC2 instance metadata is disabled (AWS_EC2_METADATA_DISABLED)");
  std::string base = get_or(env_, "AWS_EC2_METADATA_SERVICE_ENDPOINT", default_endpoint_);
  while (!base.empty() && base.back() == '/') base.pop_back();

  HttpRequest tok;
  tok.method = "PUT";
  tok.url = base + "/latest/api/token";
  tok.headers.emplace_back("X-aws-ec2-metadata-token-ttl-seconds", "21600");
  tok.connect_timeout_ms = 1000;
  tok.timeout_ms = 2000;
  auto t = http_send(tok);
  if (!t) return not_found("no EC2 instance metadata at " + base + " (" + t.status().message() + ")");
  if (t->status != 200)
    return unavailable("EC2 instance metadata token request to " + base + " answered HTTP " +
                       std::to_string(t->status));
  const std::string token = trim(t->body);

  auto get = [&](const std::string& path) -> Result<std::string> {
    HttpRequest r;
    r.url = base + path;
    r.headers.emplace_back("X-aws-ec2-metadata-token", token);
    r.connect_timeout_ms = 1000;
    r.timeout_ms = 2000;
    auto resp = http_send(r);
    if (!resp) return unavailable("EC2 instance metadata: " + resp.status().message());
    if (resp->status == 404) return not_found("no IAM role is attached to this instance (" + r.url + ")");
    if (resp->status != 200)
      return unavailable("EC2 instance metadata " + r.url + " answered HTTP " + std::to_string(resp->status));
    return std::move(resp->body);
  };
  auto role = get("/latest/meta-data/iam/security-credentials/");
  if (!role) return role.status();
  std::string role_name = trim(first_line(*role));
  if (role_name.empty()) return not_found("no IAM role is attached to this instance");
  auto body = get("/latest/meta-data/iam/security-credentials/" + role_name);
  if (!body) return body.status();
  return parse_credentials_json(*body, "EC2 instance metadata (role " + role_name + ")");
}

ChainCredentialsProvider::ChainCredentialsProvider(
    std::vector<std::unique_ptr<CredentialsProvider>> providers, Clock& clock)
    : providers_(std::move(providers)), clock_(clock) {}

Result<Credentials> ChainCredentialsProvider::get() {
  std::lock_guard lock(mu_);
  if (cached_ && (!cached_->expiration || clock_.now() < *cached_->expiration - std::chrono::minutes(5)))
    return *cached_;
  cached_.reset();
  std::string tried;
  for (auto& p : providers_) {
    auto c = p->get();
    if (c) {
      cached_ = *c;
      return c;
    }
    if (c.status().code() != StatusCode::kNotFound)
      return Status(c.status().code(), "AWS credentials (" + p->name() + "): " + c.status().message());
    tried += "; " + p->name() + ": " + c.status().message();
  }
  return Status(StatusCode::kUnauthenticated, "no AWS credentials found" + tried);
}

std::unique_ptr<CredentialsProvider> default_credentials_chain(EnvLookup env, std::string profile,
                                                               Clock& clock) {
  std::vector<std::unique_ptr<CredentialsProvider>> ps;
  ps.push_back(std::make_unique<EnvCredentialsProvider>(env));
  ps.push_back(std::make_unique<ProfileCredentialsProvider>(env, std::move(profile)));
  ps.push_back(std::make_unique<EcsCredentialsProvider>(env));
  ps.push_back(std::make_unique<ImdsCredentialsProvider>(env));
  return std::make_unique<ChainCredentialsProvider>(std::move(ps), clock);
}

std::string resolve_region(const EnvLookup& env, std::string_view explicit_region, std::string_view profile) {
  if (!explicit_region.empty()) return std::string(explicit_region);
  std::string r = get_or(env, "AWS_REGION");
  if (r.empty()) r = get_or(env, "AWS_DEFAULT_REGION");
  if (!r.empty()) return r;
  auto sec = config_section(profile_location(env, profile));
  if (sec && sec->count("region") && !(*sec)["region"].empty()) return (*sec)["region"];
  return "us-east-1";
}

}  // namespace culvert::aws
