// The web UI's serving (ui.hpp): headers, ETag/304, gzip, deep links, unknown assets,
// path tricks, the API left alone, and the embedded files themselves (budget, no
// inline script).
#include "server/ui.hpp"

#include <zlib.h>

#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace culvert::server {
namespace {

std::string header(const Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

Request get(std::string_view target, std::string accept_encoding = "gzip, deflate, br") {
  Request r;
  r.method = "GET";
  EXPECT_TRUE(parse_target(target, r)) << target;
  r.accept_encoding = std::move(accept_encoding);
  return r;
}

const UiAsset kFake[] = {
    {"app/main.js", "text/javascript; charset=utf-8", "console.log(1)", "GZ-main", "\"e-main\""},
    {"index.html", "text/html; charset=utf-8", "<html></html>", "GZ-index", "\"e-index\""},
};
constexpr std::string_view kBase = "/assets/0123456789abcdef";

Response fake(std::string_view target, std::string accept = "gzip") {
  return ui_response(get(target, std::move(accept)), kFake, kBase);
}

std::string gunzip(std::string_view in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

TEST(UiServing, AnAssetIsGzippedWithAnEtagAndCachedForGood) {
  auto r = fake("/assets/0123456789abcdef/app/main.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GZ-main");
  EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(header(r, "Content-Encoding"), "gzip");
  EXPECT_EQ(header(r, "ETag"), "\"e-main\"");
  EXPECT_EQ(header(r, "Vary"), "Accept-Encoding");
  EXPECT_EQ(header(r, "Cache-Control"), "public, max-age=31536000, immutable");
}

TEST(UiServing, WithoutGzipInAcceptEncodingTheBytesGoAsTheyAre) {
  for (std::string accept : {"", "identity", "gzip;q=0", "br, gzip; q=0.000", "*;q=0"}) {
    auto r = fake("/assets/0123456789abcdef/app/main.js", accept);
    EXPECT_EQ(r.body, "console.log(1)") << accept;
    EXPECT_EQ(header(r, "Content-Encoding"), "") << accept;
  }
  EXPECT_TRUE(accepts_gzip("GZIP"));
  EXPECT_TRUE(accepts_gzip("deflate, gzip;q=0.5"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_FALSE(accepts_gzip("deflate, br"));
}

TEST(UiServing, IfNoneMatchWithTheEtagIs304WithoutABody) {
  for (std::string inm : {"\"e-main\"", "W/\"e-main\"", "\"old\", \"e-main\"", "*"}) {
    auto req = get("/assets/0123456789abcdef/app/main.js");
    req.if_none_match = inm;
    auto r = ui_response(req, kFake, kBase);
    EXPECT_EQ(r.status, 304) << inm;
    EXPECT_EQ(r.body, "") << inm;
    EXPECT_EQ(header(r, "ETag"), "\"e-main\"") << inm;
  }
  auto req = get("/assets/0123456789abcdef/app/main.js");
  req.if_none_match = "\"e-index\"";
  EXPECT_EQ(ui_response(req, kFake, kBase).status, 200);
}

TEST(UiServing, EveryAnswerCarriesTheSecurityHeaders) {
  for (auto target : {"/", "/runs/abc", "/assets/0123456789abcdef/app/main.js", "/assets/nope.js", "/x.png"}) {
    auto r = fake(target);
    auto csp = header(r, "Content-Security-Policy");
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << target;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << target;
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << target;
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << target;
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << target;
    EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff") << target;
    EXPECT_EQ(header(r, "X-Frame-Options"), "DENY") << target;
    EXPECT_EQ(header(r, "Referrer-Policy"), "no-referrer") << target;
  }
}

TEST(UiServing, DeepLinksGetIndexHtmlRevalidatedEachTime) {
  for (auto target : {"/", "/runs", "/runs/0193-abc", "/flows/f1/run?x=1", "/agents/"}) {
    auto r = fake(target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.body, "GZ-index") << target;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(header(r, "Cache-Control"), "no-cache") << target;
    EXPECT_EQ(header(r, "ETag"), "\"e-index\"") << target;
  }
}

TEST(UiServing, UnknownAssetsAndFileLikePathsAre404NotTheIndex) {
  for (auto target : {"/assets/0123456789abcdef/app/nope.js", "/assets/ffffffffffffffff/app/main.js",
                      "/assets/app/main.js", "/favicon.ico", "/runs/x.json", "/assets/0123456789abcdef/"}) {
    auto r = fake(target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(header(r, "Cache-Control"), "no-store") << target;
  }
}

TEST(UiServing, PathTraversalFindsNothing) {
  for (auto target : {"/assets/0123456789abcdef/../0123456789abcdef/app/main.js",
                      "/assets/0123456789abcdef/%2e%2e/%2e%2e/etc/passwd", "/assets/0123456789abcdef/./app/main.js",
                      "/assets/0123456789abcdef/app%5cmain.js", "/assets/0123456789abcdef/app/main.js%00",
                      "/..", "/runs/%2e%2e", "/assets/0123456789abcdef/app/.."}) {
    EXPECT_EQ(fake(target).status, 404) << target;
  }
}

TEST(UiServing, OnlyGetIsAllowed) {
  auto req = get("/runs");
  req.method = "POST";
  auto r = ui_response(req, kFake, kBase);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(header(r, "Allow"), "GET");
}

struct RecordingApi : RequestHandler {
  std::vector<std::string> paths;
  void handle(Request req, Responder respond) override {
    paths.push_back(req.path);
    Response r;
    r.body = "api";
    respond(std::move(r));
  }
};

TEST(UiServing, ApiPathsGoToTheApiUnchanged) {
  RecordingApi api;
  UiHandler ui(api);
  std::vector<std::string> bodies;
  for (auto target : {"/api/health", "/api/v1/flow-runs?state=Running", "/api", "/api/v1/nope", "/metrics", "/", "/apix",
                      "/runs"}) {
    ui.handle(get(target), [&](Response r) { bodies.push_back(r.body); });
  }
  EXPECT_EQ(api.paths, (std::vector<std::string>{"/api/health", "/api/v1/flow-runs", "/api", "/api/v1/nope", "/metrics"}));
  ASSERT_EQ(bodies.size(), 8u);
  EXPECT_NE(bodies[5], "api");
  EXPECT_NE(bodies[6], "api");
  EXPECT_TRUE(is_api_path("/api/v1/agents"));
  EXPECT_FALSE(is_api_path("/apiary"));
}

// ---- the embedded files themselves

TEST(UiAssets, AreSortedAndTheirGzipIsTheirBytes) {
  auto assets = ui_assets();
  ASSERT_FALSE(assets.empty());
  for (size_t i = 0; i < assets.size(); ++i) {
    if (i > 0) EXPECT_LT(assets[i - 1].path, assets[i].path);
    EXPECT_EQ(gunzip(assets[i].gzip), assets[i].body) << assets[i].path;
    EXPECT_EQ(assets[i].etag.size(), 34u) << assets[i].path;
  }
  EXPECT_TRUE(std::regex_match(std::string(ui_asset_base()), std::regex("/assets/[0-9a-f]{16}")));
}

TEST(UiAssets, JavaScriptStaysWithinItsBudget) {
  size_t js = 0;
  for (const auto& a : ui_assets())
    if (a.content_type.starts_with("text/javascript")) js += a.gzip.size();
  EXPECT_GT(js, 0u);
  EXPECT_LE(js, static_cast<size_t>(CULVERT_UI_JS_BUDGET));
  RecordProperty("js_gzip_bytes", static_cast<int>(js));
}

TEST(UiAssets, IndexHtmlHasNoInlineScriptAndLoadsFromTheBase) {
  const UiAsset* index = nullptr;
  for (const auto& a : ui_assets())
    if (a.path == "index.html") index = &a;
  ASSERT_NE(index, nullptr);
  std::string html(index->body);
  std::regex script("<script([^>]*)>([\\s\\S]*?)</script>");
  int scripts = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), script), end; it != end; ++it, ++scripts) {
    EXPECT_NE((*it)[1].str().find("src=\"" + std::string(ui_asset_base()) + "/"), std::string::npos) << (*it)[0];
    EXPECT_EQ((*it)[2].str(), "") << "inline script: " << (*it)[0];
  }
  EXPECT_GE(scripts, 1);
  EXPECT_EQ(html.find("%ASSET_BASE%"), std::string::npos);
  EXPECT_FALSE(std::regex_search(html, std::regex("\\son[a-z]+\\s*=", std::regex::icase))) << "an inline event handler";
  // Every file index.html names is embedded.
  std::regex ref("\"" + std::string(ui_asset_base()) + "/([^\"]+)\"");
  for (std::sregex_iterator it(html.begin(), html.end(), ref), end; it != end; ++it) {
    auto r = ui_response(get(std::string(ui_asset_base()) + "/" + (*it)[1].str()), ui_assets(), ui_asset_base());
    EXPECT_EQ(r.status, 200) << (*it)[1];
  }
}

}  // namespace
}  // namespace culvert::server
