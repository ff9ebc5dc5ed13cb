#include "aws/sigv4.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "core/crypto.hpp"

namespace culvert::aws {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims and collapses runs of spaces into one (SigV4 "Trimall").
std::string trimall(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string amz_date(SysTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

SignedRequest sign_v4(const SigningRequest& req, const Credentials& cred,
                      const SigningParams& params, SysTime when) {
  SignedRequest out;
  const std::string date_time = amz_date(when);
  const std::string date = date_time.substr(0, 8);

  // Headers: the caller's, plus host and the x-amz-* ones this signer adds.
  out.headers.emplace_back("x-amz-date", date_time);
  if (params.content_sha256_header) out.headers.emplace_back("x-amz-content-sha256", req.payload_sha256);
  if (!cred.session_token.empty()) out.headers.emplace_back("x-amz-security-token", cred.session_token);

  std::vector<std::pair<std::string, std::string>> signed_hdrs;
  signed_hdrs.emplace_back("host", trimall(req.host));
  for (const auto& [k, v] : req.headers) signed_hdrs.emplace_back(lower(trimall(k)), trimall(v));
  for (const auto& [k, v] : out.headers) signed_hdrs.emplace_back(k, trimall(v));
  std::stable_sort(signed_hdrs.begin(), signed_hdrs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical_headers, signed_names;
  for (size_t i = 0; i < signed_hdrs.size(); ++i) {
    const auto& name = signed_hdrs[i].first;
    if (i > 0 && signed_hdrs[i - 1].first == name) {
      canonical_headers.back() = ',';  // repeated header: values joined with ','
      canonical_headers += signed_hdrs[i].second + "\n";
      continue;
    }
    canonical_headers += name + ":" + signed_hdrs[i].second + "\n";
    if (!signed_names.empty()) signed_names += ';';
    signed_names += name;
  }

  std::vector<std::pair<std::string, std::string>> q;
  for (const auto& [k, v] : req.query) q.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(q.begin(), q.end());
  std::string canonical_query;
  for (const auto& [k, v] : q) {
    if (!canonical_query.empty()) canonical_query += '&';
    canonical_query += k + "=" + v;
  }

  std::string path = req.path.empty() ? "/" : req.path;
  if (params.double_encode_path) path = uri_encode(path, true);

  out.canonical_request = req.method + "\n" + path + "\n" + canonical_query + "\n" +
                          canonical_headers + "\n" + signed_names + "\n" + req.payload_sha256;
  const std::string scope = date + "/" + params.region + "/" + params.service + "/aws4_request";
  out.string_to_sign =
      "AWS4-HMAC-SHA256\n" + date_time + "\n" + scope + "\n" + sha256_hex(out.canonical_request);

  std::string key = hmac_sha256_raw("AWS4" + cred.secret_access_key, date);
  key = hmac_sha256_raw(key, params.region);
  key = hmac_sha256_raw(key, params.service);
  key = hmac_sha256_raw(key, "aws4_request");
  const std::string signature = hex_encode(hmac_sha256_raw(key, out.string_to_sign));

  out.authorization = "AWS4-HMAC-SHA256 Credential=" + cred.access_key_id + "/" + scope +
                      ", SignedHeaders=" + signed_names + ", Signature=" + signature;
  out.headers.emplace_back("Authorization", out.authorization);
  return out;
}

}  // namespace culvert::aws
