// The API in process (no sockets): real router, auth, JSON handling and a real SQLite
// store, with a ManualClock. Covers the error classes, scopes, run-token isolation,
// state rules, long polls (woken by notifications and by deadlines).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <future>
#include <set>
#include <thread>

#include <sqlite3.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/crypto.hpp"
#include "core/timefmt.hpp"
#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/waiters.hpp"
#include "server/work_pool.hpp"
#include "store/store.hpp"
#include "store/testing.hpp"

namespace culvert::server {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Reply {
  int status = 0;
  json body;
  std::string text;
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    auto db = store::TestDatabase::create("sqlite");
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    db_ = std::make_unique<store::TestDatabase>(std::move(db).value());
    store::StoreOptions so;
    so.clock = &clock_;
    auto st = store::open_store(db_->url(), so);
    ASSERT_TRUE(st.is_ok()) << st.status().to_string();
    store_ = std::move(st).value();
    auth_ = std::make_unique<Authenticator>(clock_, AuthOptions{});
    waiters_ = std::make_unique<Waiters>(clock_, milliseconds(250));
    events_ = make_run_events(*waiters_, *auth_);
    pool_ = std::make_unique<WorkPool>(1);
    ApiOptions ao;
    ao.version = "test";
    api_ = std::make_unique<Api>(clock_, *pool_, [this](int) -> store::Store& { return *store_; }, *auth_,
                                 *waiters_, *events_, ao);
    admin_ = make_token("admin");
    user_ = make_token("user");
    runner_ = make_token("runner");
  }
  // The API again, with these options.
  void restart_api(ApiOptions ao) {
    ao.version = "test";
    api_ = std::make_unique<Api>(clock_, *pool_, [this](int) -> store::Store& { return *store_; }, *auth_,
                                 *waiters_, *events_, ao);
  }
  void TearDown() override {
    if (waiters_) waiters_->fire_all();
    if (pool_) pool_->stop();
  }

  std::string make_token(const std::string& scope) {
    std::string secret = new_api_token();
    store::NewToken t;
    t.name = scope + " token";
    t.scope = scope;
    t.hash = sha256_hex(secret);
    EXPECT_TRUE(store_->create_token(t).is_ok());
    return secret;
  }

  // Sends a request and returns a future of its reply.
  std::future<Reply> send(const std::string& method, const std::string& target, const std::string& body,
                          const std::string& token) {
    Request r;
    r.method = method;
    EXPECT_TRUE(parse_target(target, r));
    r.body = body;
    if (!token.empty()) r.authorization = "Bearer " + token;
    auto promise = std::make_shared<std::promise<Reply>>();
    auto fut = promise->get_future();
    api_->handle(std::move(r), [promise](Response resp) {
      Reply rep;
      rep.status = resp.status;
      rep.text = resp.body;
      rep.body = json::parse(resp.body, nullptr, false);
      promise->set_value(std::move(rep));
    });
    return fut;
  }
  Reply call(const std::string& method, const std::string& target, const json& body, const std::string& token) {
    return send(method, target, body.is_null() ? "" : body.dump(), token).get();
  }
  Reply get(const std::string& target, const std::string& token) { return call("GET", target, nullptr, token); }
  Reply post(const std::string& target, const json& body, const std::string& token) {
    return call("POST", target, body, token);
  }

  // Tasks `a` (not mapped) and `b` (mapped), unless `tasks` says otherwise.
  json flow_body(const std::string& name, std::vector<std::string> labels = {"dev"}, json tasks = nullptr) {
    json edges = json::array();
    if (tasks.is_null()) {
      tasks = {{{"name", "a"}}, {{"name", "b"}, {"mapped", true}}};
      edges = {{{"from", "a"}, {"to", "b"}}};
    }
    return {{"project", "p"},
            {"name", name},
            {"artifact", {{"uri", "file:///flows/" + name}, {"sha256", sha256_hex(name)}}},
            {"tasks", tasks},
            {"edges", edges},
            {"parameters",
             {{{"name", "rows"}, {"type", "int"}, {"default", 10}},
              {{"name", "day"}, {"type", "string"}, {"required", true}}}},
            {"run_config", {{"type", "local"}, {"labels", labels}}},
            {"max_run_retries", 1}};
  }
  std::string register_flow(const std::string& name, std::vector<std::string> labels = {"dev"},
                            json tasks = nullptr) {
    auto r = post("/api/v1/flows", flow_body(name, labels, std::move(tasks)), user_);
    EXPECT_EQ(r.status, 201) << r.text;
    return r.body.value("id", "");
  }
  json create_run(const std::string& flow_id, json extra = json::object()) {
    json b = {{"flow_id", flow_id}, {"parameters", {{"day", "mon"}}}};
    b.update(extra);
    auto r = post("/api/v1/flow-runs", b, user_);
    EXPECT_EQ(r.status, 201) << r.text;
    return r.body;
  }
  std::string register_agent(const std::string& name, std::vector<std::string> labels) {
    auto r = post("/api/v1/agents", {{"name", name}, {"type", "local"}, {"labels", labels}}, runner_);
    EXPECT_EQ(r.status, 201) << r.text;
    return r.body.value("id", "");
  }

  // A flow whose mapped task `b` is distributed (its children run with a docker run config).
  std::string register_distributed_flow(const std::string& name, int max_run_retries = 1) {
    json tasks = {{{"name", "a"}},
                  {{"name", "b"},
                   {"mapped", true},
                   {"distributed",
                    {{"max_workers", 4},
                     {"chunk_size", 10},
                     {"storage", "file:///shared/maps"},
                     {"run_config", {{"type", "docker"}, {"image", "small"}}}}}}};
    json body = flow_body(name, {"dev"}, tasks);
    body["max_run_retries"] = max_run_retries;
    auto r = post("/api/v1/flows", body, user_);
    EXPECT_EQ(r.status, 201) << r.text;
    return r.body.value("id", "");
  }
  // Claims one due run for `agent` (types local and docker) and returns {id, token}.
  std::pair<std::string, std::string> claim_one(const std::string& agent) {
    auto claim = post("/api/v1/agents/" + agent + "/claim", {{"max", 1}, {"types", {"docker", "local"}}}, runner_);
    EXPECT_EQ(claim.status, 200) << claim.text;
    if (claim.body["runs"].size() != 1u) {
      ADD_FAILURE() << "nothing to claim: " << claim.text;
      return {};
    }
    return {claim.body["runs"][0]["id"], claim.body["runs"][0]["token"]};
  }
  // A parent run of a distributed flow, claimed and Running: {id, token}.
  std::pair<std::string, std::string> running_parent(const std::string& flow, const std::string& agent) {
    std::string id = create_run(flow)["id"];
    auto [claimed, token] = claim_one(agent);
    EXPECT_EQ(claimed, id);
    EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, token).status, 200);
    return {id, token};
  }
  static json chunks(std::vector<std::array<int64_t, 3>> cs) {
    json out = json::array();
    for (auto [n, a, b] : cs) out.push_back({{"chunk", n}, {"start", a}, {"end", b}});
    return out;
  }
  // Waits until `n` requests are parked.
  void await_parked(size_t n) {
    for (int i = 0; i < 2000 && waiters_->parked() < n; ++i) std::this_thread::sleep_for(milliseconds(1));
    ASSERT_EQ(waiters_->parked(), n);
  }

  ManualClock clock_;
  std::unique_ptr<store::TestDatabase> db_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<Waiters> waiters_;
  std::unique_ptr<RunEvents> events_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<Api> api_;
  std::string admin_, user_, runner_;
};

TEST_F(ApiTest, HealthNeedsNoToken) {
  auto r = get("/api/health", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body["status"], "ok");
  EXPECT_EQ(r.body["version"], "test");
}

TEST_F(ApiTest, ErrorClasses) {
  // 404 unknown route, with the JSON error body.
  auto r = get("/api/v1/nope", admin_);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body["error"]["code"], "not_found");
  EXPECT_THAT(r.body["error"]["message"].get<std::string>(), HasSubstr("/api/v1/nope"));
  // 405 known path, wrong method.
  EXPECT_EQ(call("PUT", "/api/v1/projects", nullptr, admin_).status, 405);
  // 401 no token, unknown token, malformed header.
  EXPECT_EQ(get("/api/v1/projects", "").status, 401);
  EXPECT_EQ(get("/api/v1/projects", "cvt_unknown").status, 401);
  EXPECT_EQ(get("/api/v1/projects", "").body["error"]["code"], "unauthenticated");
  // 403 scope: a runner may not create projects, a user may not manage tokens.
  auto f = post("/api/v1/projects", {{"name", "x"}}, runner_);
  EXPECT_EQ(f.status, 403);
  EXPECT_THAT(f.body["error"]["message"].get<std::string>(), HasSubstr("user"));
  EXPECT_EQ(get("/api/v1/tokens", user_).status, 403);
  // 400 malformed JSON.
  auto bad = send("POST", "/api/v1/projects", "{\"name\":", user_).get();
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body["error"]["code"], "bad_request");
  // 422 valid JSON, invalid content.
  auto inv = post("/api/v1/projects", {{"name", 5}}, user_);
  EXPECT_EQ(inv.status, 422);
  EXPECT_THAT(inv.body["error"]["message"].get<std::string>(), HasSubstr("name"));
  EXPECT_EQ(post("/api/v1/projects", json::array(), user_).status, 422);
  // 409 duplicate project.
  EXPECT_EQ(post("/api/v1/projects", {{"name", "dup"}}, user_).status, 201);
  EXPECT_EQ(post("/api/v1/projects", {{"name", "dup"}}, user_).status, 409);
  EXPECT_EQ(post("/api/v1/projects", {{"name", "dup"}, {"skip_if_exists", true}}, user_).status, 201);
  // 404 unknown object.
  EXPECT_EQ(get("/api/v1/flow-runs/00000000-0000-0000-0000-000000000000", runner_).status, 404);
}

TEST_F(ApiTest, ScopesAreOrdered) {
  // admin ⊃ user ⊃ runner.
  EXPECT_EQ(get("/api/v1/projects", runner_).status, 200);
  EXPECT_EQ(get("/api/v1/projects", user_).status, 200);
  EXPECT_EQ(get("/api/v1/projects", admin_).status, 200);
  EXPECT_EQ(post("/api/v1/projects", {{"name", "a"}}, admin_).status, 201);
  EXPECT_EQ(get("/api/v1/tokens", admin_).status, 200);
  EXPECT_EQ(post("/api/v1/flows", flow_body("f"), runner_).status, 403);
}

TEST_F(ApiTest, FlowRegistrationVersionsAndIdempotency) {
  auto a = post("/api/v1/flows", flow_body("etl"), user_);
  ASSERT_EQ(a.status, 201) << a.text;
  EXPECT_EQ(a.body["version"], 1);
  // The same bytes and metadata again: the existing version, 200.
  auto same = post("/api/v1/flows", flow_body("etl"), user_);
  ASSERT_EQ(same.status, 200) << same.text;
  EXPECT_EQ(same.body["version"], 1);
  EXPECT_EQ(same.body["id"], a.body["id"]);
  auto changed = flow_body("etl");
  changed["artifact"]["sha256"] = std::string(64, 'b');
  auto b = post("/api/v1/flows", changed, user_);
  EXPECT_EQ(b.status, 201) << b.text;
  EXPECT_EQ(b.body["version"], 2);
  auto keyed = flow_body("etl");
  keyed["idempotency_key"] = "k1";
  auto c = post("/api/v1/flows", keyed, user_);
  auto d = post("/api/v1/flows", keyed, user_);
  EXPECT_EQ(c.status, 201) << c.text;
  EXPECT_EQ(c.body["version"], 3);
  EXPECT_EQ(d.status, 200) << d.text;
  EXPECT_EQ(d.body["id"], c.body["id"]);
  auto list = get("/api/v1/flows?project=p", runner_);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["flows"].size(), 1u);
  EXPECT_EQ(list.body["flows"][0]["version"], 3);
  EXPECT_EQ(get("/api/v1/flows?project=nosuch", runner_).status, 404);
  auto one = get("/api/v1/flows/" + a.body["id"].get<std::string>(), runner_);
  EXPECT_EQ(one.status, 200);
  EXPECT_TRUE(one.body["archived"].get<bool>());
  EXPECT_EQ(one.body["tasks"].size(), 2u);
}

TEST_F(ApiTest, FlowRegistrationIsValidated) {
  auto cyc = flow_body("c");
  cyc["edges"].push_back({{"from", "b"}, {"to", "a"}});
  auto r = post("/api/v1/flows", cyc, user_);
  EXPECT_EQ(r.status, 422);
  EXPECT_THAT(r.text, HasSubstr("cycle"));
  auto unknown = flow_body("u");
  unknown["edges"].push_back({{"from", "a"}, {"to", "zzz"}});
  EXPECT_EQ(post("/api/v1/flows", unknown, user_).status, 422);
  auto noart = flow_body("n");
  noart.erase("artifact");
  EXPECT_EQ(post("/api/v1/flows", noart, user_).status, 422);
  auto badrc = flow_body("r");
  badrc["run_config"]["type"] = "kubernetes";
  EXPECT_EQ(post("/api/v1/flows", badrc, user_).status, 422);
}

// A version keeps the kind of its artifact ("binary" unless the description names one)
// and answers it inside "artifact"; an unknown kind is refused naming the field.
TEST_F(ApiTest, FlowVersionsAnswerTheirArtifactKind) {
  auto binary = post("/api/v1/flows", flow_body("etl"), user_);
  ASSERT_EQ(binary.status, 201) << binary.text;
  EXPECT_EQ(binary.body["artifact"]["kind"], "binary");
  for (const char* kind : {"binary", "python", "python-package", "yaml"}) {
    auto body = flow_body(std::string("flow-") + kind);
    body["artifact_kind"] = kind;
    auto r = post("/api/v1/flows", body, user_);
    ASSERT_EQ(r.status, 201) << kind << ": " << r.text;
    EXPECT_EQ(r.body["artifact"]["kind"], kind);
    auto one = get("/api/v1/flows/" + r.body["id"].get<std::string>(), runner_);
    ASSERT_EQ(one.status, 200) << one.text;
    EXPECT_EQ(one.body["artifact"]["kind"], kind);
    EXPECT_FALSE(one.body.contains("artifact_kind")) << "kept with the artifact, not twice";
  }
  auto list = get("/api/v1/flows?project=p", runner_);
  ASSERT_EQ(list.status, 200) << list.text;
  for (const auto& f : list.body["flows"])
    EXPECT_EQ(f["artifact"]["kind"], f["name"] == "etl" ? "binary" : f["name"].get<std::string>().substr(5));
  // The same bytes registered as another kind are another version.
  auto as_yaml = flow_body("etl");
  as_yaml["artifact_kind"] = "yaml";
  auto v2 = post("/api/v1/flows", as_yaml, user_);
  EXPECT_EQ(v2.status, 201) << v2.text;
  EXPECT_EQ(v2.body["version"], 2);
  for (json bad : {json("shell"), json(""), json(3), json(std::string(100, 'x'))}) {
    auto body = flow_body("bad");
    body["artifact_kind"] = bad;
    auto r = post("/api/v1/flows", body, user_);
    EXPECT_EQ(r.status, 422) << bad.dump() << ": " << r.text;
    EXPECT_THAT(r.text, HasSubstr("artifact_kind")) << bad.dump();
  }
}

TEST_F(ApiTest, RunParametersLabelsAndIdempotency) {
  auto flow = register_flow("etl", {"dev", "gpu"});
  // Unknown parameter, missing required, wrong type: 422.
  auto r1 = post("/api/v1/flow-runs", {{"flow_id", flow}, {"parameters", {{"day", "x"}, {"nope", 1}}}}, user_);
  EXPECT_EQ(r1.status, 422);
  EXPECT_THAT(r1.text, HasSubstr("nope"));
  auto r2 = post("/api/v1/flow-runs", {{"flow_id", flow}, {"parameters", {{"rows", 3}}}}, user_);
  EXPECT_EQ(r2.status, 422);
  EXPECT_THAT(r2.text, HasSubstr("day"));
  auto r3 = post("/api/v1/flow-runs", {{"flow_id", flow}, {"parameters", {{"day", 3}}}}, user_);
  EXPECT_EQ(r3.status, 422);
  // Labels inherited from the flow unless given.
  auto inherited = create_run(flow);
  EXPECT_EQ(inherited["labels"], json({"dev", "gpu"}));
  auto own = create_run(flow, {{"labels", {"x"}}});
  EXPECT_EQ(own["labels"], json({"x"}));
  // By project + flow name, with an idempotency key.
  json b = {{"project", "p"}, {"flow", "etl"}, {"parameters", {{"day", "d"}}}, {"idempotency_key", "once"}};
  auto first = post("/api/v1/flow-runs", b, user_);
  auto again = post("/api/v1/flow-runs", b, user_);
  EXPECT_EQ(first.status, 201);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(first.body["id"], again.body["id"]);
  EXPECT_EQ(post("/api/v1/flow-runs", {{"project", "p"}, {"flow", "none"}}, user_).status, 404);
}

TEST_F(ApiTest, ListRunsFiltersAndPaginates) {
  auto flow = register_flow("etl");
  std::set<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    ids.insert(create_run(flow)["id"].get<std::string>());
    clock_.advance(milliseconds(5));
  }
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = get("/api/v1/flow-runs?flow_id=" + flow + "&limit=3" + (cursor.empty() ? "" : "&cursor=" + percent_encode(cursor)),
                 runner_);
    ASSERT_EQ(r.status, 200) << r.text;
    for (const auto& run : r.body["runs"]) seen.insert(run["id"].get<std::string>());
    cursor = r.body["next_cursor"].is_null() ? "" : r.body["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(get("/api/v1/flow-runs?state=Running", runner_).body["runs"].size(), 0u);
  EXPECT_EQ(get("/api/v1/flow-runs?state=Scheduled", runner_).body["runs"].size(), 7u);
  EXPECT_EQ(get("/api/v1/flow-runs?state=Bogus", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flow-runs?limit=0", runner_).status, 422);
}

// The flow listing comes in pages: by `limit`, at the byte cap (descriptions here carry
// 20 KiB each), through the store's steps of 100, and with the name filter.
TEST_F(ApiTest, FlowListingIsPagedAndBoundedInBytes) {
  ApiOptions ao;
  ao.max_answer_bytes = 64 * 1024;
  restart_api(ao);
  std::set<std::string> ids;
  for (int i = 0; i < 130; ++i) {
    json body = flow_body("flow" + std::to_string(1000 + i), {"dev"}, {{{"name", "a"}}});
    body["description"] = i % 10 == 0 ? std::string(9000, 'd') : "small";
    auto r = post("/api/v1/flows", body, user_);
    ASSERT_EQ(r.status, 201) << r.text.substr(0, 200);
    ids.insert(r.body["id"].get<std::string>());
  }
  auto read_all = [&](const std::string& query, int* pages) {
    std::vector<std::string> seen;
    std::string cursor;
    *pages = 0;
    while (*pages < 100) {
      auto r = get("/api/v1/flows?" + query + (cursor.empty() ? "" : "&cursor=" + percent_encode(cursor)), runner_);
      EXPECT_EQ(r.status, 200) << r.text.substr(0, 200);
      if (r.status != 200) break;
      EXPECT_LE(r.text.size(), ao.max_answer_bytes + 24 * 1024);
      for (const auto& f : r.body["flows"]) seen.push_back(f["id"].get<std::string>());
      ++*pages;
      if (r.body["next_cursor"].is_null()) break;
      cursor = r.body["next_cursor"].get<std::string>();
    }
    return seen;
  };
  int pages = 0;
  auto whole = read_all("limit=1000", &pages);
  EXPECT_EQ(std::set<std::string>(whole.begin(), whole.end()), ids);
  EXPECT_EQ(whole.size(), ids.size());
  EXPECT_GT(pages, 1);
  EXPECT_EQ(read_all("limit=7", &pages), whole);
  EXPECT_EQ(pages, 19);
  auto one = get("/api/v1/flows?name=flow1042", runner_);
  ASSERT_EQ(one.body["flows"].size(), 1u);
  EXPECT_TRUE(one.body["next_cursor"].is_null());
  EXPECT_EQ(get("/api/v1/flows?cursor=nope", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flows?limit=0", runner_).status, 422);
}

// A run's state history comes in pages: by `limit`, and at the byte cap (each Failed
// state here carries a 16 KiB message), each page going on from its cursor.
TEST_F(ApiTest, RunHistoryIsPagedAndBoundedInBytes) {
  ApiOptions ao;
  ao.max_answer_bytes = 64 * 1024;
  restart_api(ao);
  auto flow = register_flow("etl", {});
  std::string id = create_run(flow)["id"];
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, runner_).status, 200);
    auto failed = post("/api/v1/flow-runs/" + id + "/state",
                       {{"state", "Failed"}, {"message", std::string(16 * 1024, 'a' + i)}}, runner_);
    ASSERT_EQ(failed.status, 200) << failed.text.substr(0, 200);
    ASSERT_EQ(post("/api/v1/flow-runs/" + id + "/retry", nullptr, user_).status, 200);
  }
  auto read_all = [&](const std::string& query, int* pages) {
    std::vector<int64_t> ids;
    std::string cursor = "0";
    *pages = 0;
    while (*pages < 100) {
      auto r = get("/api/v1/flow-runs/" + id + "/history?after=" + cursor + query, runner_);
      EXPECT_EQ(r.status, 200) << r.text.substr(0, 200);
      if (r.status != 200) break;
      EXPECT_LE(r.text.size(), ao.max_answer_bytes + 24 * 1024);
      for (const auto& e : r.body["history"]) ids.push_back(e["id"].get<int64_t>());
      ++*pages;
      cursor = r.body["next_cursor"].get<std::string>();
      if (cursor.empty()) break;
    }
    return ids;
  };
  int pages = 0;
  auto whole = read_all("", &pages);
  EXPECT_EQ(whole.size(), 31u);  // created Scheduled, then 10 × (Running, Failed, Scheduled)
  EXPECT_TRUE(std::is_sorted(whole.begin(), whole.end()));
  EXPECT_EQ(std::set<int64_t>(whole.begin(), whole.end()).size(), whole.size());
  EXPECT_GT(pages, 2);  // 160 KiB of messages through a 64 KiB cap
  EXPECT_EQ(read_all("&limit=4", &pages), whole);
  EXPECT_GE(pages, 8);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/history?after=-1", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/history?limit=0", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flow-runs/nope/history", runner_).status, 404);
}

// Runs carry their parameters (up to the body limit each): a listing of 1000 of them
// stops at the byte cap and goes on from its cursor, across the store's steps of 50.
TEST_F(ApiTest, ListRunsStopsAtTheByteCap) {
  ApiOptions ao;
  ao.max_answer_bytes = 64 * 1024;
  restart_api(ao);
  json body = flow_body("big", {"dev"}, {{{"name", "a"}}});
  body["parameters"] = json::array({{{"name", "blob"}, {"type", "string"}}});
  auto flow = post("/api/v1/flows", body, user_);
  ASSERT_EQ(flow.status, 201) << flow.text;
  std::set<std::string> ids;
  for (int i = 0; i < 120; ++i) {
    json params = {{"blob", i % 40 == 0 ? std::string(20 * 1024, 'x') : "s"}};
    auto r = post("/api/v1/flow-runs", {{"flow_id", flow.body["id"]}, {"parameters", params}}, user_);
    ASSERT_EQ(r.status, 201) << r.text;
    ids.insert(r.body["id"].get<std::string>());
    clock_.advance(milliseconds(1));
  }
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = get("/api/v1/flow-runs?limit=1000" + (cursor.empty() ? "" : "&cursor=" + percent_encode(cursor)), runner_);
    ASSERT_EQ(r.status, 200) << r.text.substr(0, 200);
    EXPECT_LE(r.text.size(), ao.max_answer_bytes + 24 * 1024);
    for (const auto& run : r.body["runs"]) EXPECT_TRUE(seen.insert(run["id"].get<std::string>()).second);
    cursor = r.body["next_cursor"].is_null() ? "" : r.body["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 50);
  EXPECT_EQ(seen, ids);
  EXPECT_GT(pages, 1);
}

TEST_F(ApiTest, ClaimLongPollWakesWhenARunIsCreated) {
  auto flow = register_flow("etl", {"dev"});
  auto agent = register_agent("a1", {"dev", "linux"});
  auto pending = send("POST", "/api/v1/agents/" + agent + "/claim", R"({"max":1,"wait_ms":30000})", runner_);
  // Parks: nothing is due.
  for (int i = 0; i < 200 && waiters_->parked() == 0; ++i) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_EQ(waiters_->parked(), 1u);
  ASSERT_EQ(pending.wait_for(milliseconds(0)), std::future_status::timeout);
  auto run = create_run(flow);
  auto reply = pending.get();  // woken by the creation, no clock advance
  ASSERT_EQ(reply.status, 200) << reply.text;
  ASSERT_EQ(reply.body["runs"].size(), 1u);
  EXPECT_EQ(reply.body["runs"][0]["id"], run["id"]);
  EXPECT_EQ(reply.body["runs"][0]["state"], "Submitted");
  EXPECT_THAT(reply.body["runs"][0]["token"].get<std::string>(), HasSubstr("cvt_run_"));
  // The server's heartbeat interval for runs, in whole seconds (the default, 10 s).
  EXPECT_EQ(reply.body["runs"][0]["heartbeat_seconds"], 10);
}

TEST_F(ApiTest, ClaimRespectsLabelsAndTimesOut) {
  auto flow = register_flow("etl", {"gpu"});
  auto agent = register_agent("a1", {"dev"});
  create_run(flow);
  auto pending = send("POST", "/api/v1/agents/" + agent + "/claim", R"({"wait_ms":1000})", runner_);
  for (int i = 0; i < 200 && waiters_->parked() == 0; ++i) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_EQ(waiters_->parked(), 1u);
  clock_.advance(milliseconds(1001));
  waiters_->tick();
  auto reply = pending.get();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body["runs"].size(), 0u);
  // Diagnosis names the missing label.
  auto runs = get("/api/v1/flow-runs?flow_id=" + flow, runner_);
  auto d = get("/api/v1/flow-runs/" + runs.body["runs"][0]["id"].get<std::string>() + "/diagnosis", runner_);
  EXPECT_EQ(d.status, 200);
  EXPECT_EQ(d.body["agents"][0]["missing_labels"], json({"gpu"}));
  EXPECT_EQ(post("/api/v1/agents/nosuch/claim", json::object(), runner_).status, 404);
  EXPECT_EQ(post("/api/v1/agents/" + agent + "/claim", {{"wait_ms", 10000000}}, runner_).status, 422);
}

TEST_F(ApiTest, ClaimWakesWhenAFutureRunBecomesDue) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  create_run(flow, {{"scheduled_start_time", format_rfc3339(clock_.now() + seconds(5))}});
  auto pending = send("POST", "/api/v1/agents/" + agent + "/claim", R"({"wait_ms":60000})", runner_);
  for (int i = 0; i < 200 && waiters_->parked() == 0; ++i) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_EQ(waiters_->parked(), 1u);
  clock_.advance(seconds(5));
  waiters_->tick();
  auto reply = pending.get();
  ASSERT_EQ(reply.body["runs"].size(), 1u);
}

TEST_F(ApiTest, FullRunLifecycleWithRunToken) {
  auto flow = register_flow("etl", {"dev"});
  auto agent = register_agent("a1", {"dev"});
  auto run = create_run(flow);
  std::string id = run["id"];
  auto claim = post("/api/v1/agents/" + agent + "/claim", {{"max", 5}}, runner_);
  ASSERT_EQ(claim.body["runs"].size(), 1u);
  std::string token = claim.body["runs"][0]["token"];
  // The run token acts for its run.
  auto running = post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, token);
  ASSERT_EQ(running.status, 200) << running.text;
  int64_t version = running.body["version"];
  EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/heartbeat", nullptr, token).status, 200);
  auto tr = post("/api/v1/task-runs/states",
                 json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Running"}},
                              {{"flow_run_id", id}, {"task", "b"}, {"map_index", 0}, {"state", "Pending"}}}),
                 token);
  ASSERT_EQ(tr.status, 200) << tr.text;
  EXPECT_EQ(tr.body["task_run_ids"].size(), 2u);
  auto logs = post("/api/v1/logs",
                   json::array({{{"flow_run_id", id}, {"level", "info"}, {"message", "hello"}},
                                {{"flow_run_id", id}, {"level", "ERROR"}, {"message", "world"}}}),
                   token);
  ASSERT_EQ(logs.status, 201) << logs.text;
  auto read = get("/api/v1/flow-runs/" + id + "/logs", token);
  ASSERT_EQ(read.body["logs"].size(), 2u);
  EXPECT_EQ(read.body["logs"][0]["level"], "INFO");
  auto after = get("/api/v1/flow-runs/" + id + "/logs?after=" + read.body["next_cursor"].get<std::string>(), token);
  EXPECT_EQ(after.body["logs"].size(), 0u);
  EXPECT_EQ(get("/api/v1/flows/" + flow, token).status, 200);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs", token).body["task_runs"].size(), 1u);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs", token).body["mapped_tasks"].size(), 1u);
  // 1,000 alike mapped task runs in one item: read back one by one.
  auto range = post("/api/v1/task-runs/states",
                    json::array({{{"flow_run_id", id}, {"task", "b"}, {"map_index", 0}, {"map_count", 1000},
                                  {"state", "Success"}, {"start_time", "2026-11-28T10:00:00Z"}}}),
                    token);
  ASSERT_EQ(range.status, 200) << range.text;
  // The listing sums a mapped task up; its task runs are listed by task.
  auto tasks = get("/api/v1/flow-runs/" + id + "/task-runs", token).body;
  ASSERT_EQ(tasks["task_runs"].size(), 1u);
  ASSERT_EQ(tasks["mapped_tasks"].size(), 1u);
  EXPECT_EQ(tasks["mapped_tasks"][0]["task"], "b");
  EXPECT_EQ(tasks["mapped_tasks"][0]["count"], 1000);
  EXPECT_EQ(tasks["mapped_tasks"][0]["states"], json({{"Success", 1000}}));
  auto listed = get("/api/v1/flow-runs/" + id + "/task-runs?task=b&limit=1000", token).body["task_runs"];
  ASSERT_EQ(listed.size(), 1000u);
  EXPECT_EQ(listed[0]["id"], range.body["task_run_ids"][0]);
  EXPECT_EQ(listed[999]["map_index"], 999);
  EXPECT_EQ(listed[999]["state"], "Success");
  EXPECT_EQ(listed[999]["start_time"], "2026-11-28T10:00:00.000Z");
  EXPECT_NE(listed[999]["id"], listed[998]["id"]);
  // Stale expected_version: 409.
  auto stale = post("/api/v1/flow-runs/" + id + "/state", {{"state", "Success"}, {"expected_version", version - 1}}, token);
  EXPECT_EQ(stale.status, 409);
  auto done = post("/api/v1/flow-runs/" + id + "/state", {{"state", "Success"}, {"expected_version", version}}, token);
  ASSERT_EQ(done.status, 200) << done.text;
  // Final states never change: the message names both states.
  auto again = post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, runner_);
  EXPECT_EQ(again.status, 409);
  EXPECT_THAT(again.text, HasSubstr("Success"));
  EXPECT_THAT(again.text, HasSubstr("Running"));
  // The run token keeps working for the grace period, then stops.
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, token).status, 200);
  clock_.advance(seconds(61));
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, token).status, 401);
  // History.
  auto h = get("/api/v1/flow-runs/" + id + "/history", runner_);
  ASSERT_EQ(h.status, 200);
  EXPECT_EQ(h.body["history"].back()["state"], "Success");
}

TEST_F(ApiTest, RunTokenCannotTouchAnotherRun) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  std::string mine = create_run(flow)["id"];
  std::string other = create_run(flow)["id"];
  auto claim = post("/api/v1/agents/" + agent + "/claim", {{"max", 1}}, runner_);
  ASSERT_EQ(claim.body["runs"].size(), 1u);
  std::string token = claim.body["runs"][0]["token"];
  std::string claimed = claim.body["runs"][0]["id"];
  std::string foreign = claimed == mine ? other : mine;
  EXPECT_EQ(get("/api/v1/flow-runs/" + claimed, token).status, 200);
  EXPECT_EQ(get("/api/v1/flow-runs/" + foreign, token).status, 403);
  EXPECT_EQ(post("/api/v1/flow-runs/" + foreign + "/state", {{"state", "Cancelled"}}, token).status, 403);
  EXPECT_EQ(post("/api/v1/flow-runs/" + foreign + "/heartbeat", nullptr, token).status, 403);
  EXPECT_EQ(get("/api/v1/flow-runs/" + foreign + "/logs", token).status, 403);
  EXPECT_EQ(get("/api/v1/flow-runs/" + foreign + "/task-runs", token).status, 403);
  EXPECT_EQ(post("/api/v1/logs", json::array({{{"flow_run_id", foreign}, {"message", "x"}}}), token).status, 403);
  EXPECT_EQ(post("/api/v1/task-runs/states", json::array({{{"flow_run_id", foreign}, {"task", "a"}, {"state", "Running"}}}),
                 token).status,
            403);
  // Routes that are not for run tokens at all.
  EXPECT_EQ(get("/api/v1/flow-runs", token).status, 403);
  EXPECT_EQ(post("/api/v1/flow-runs/" + claimed + "/cancel", nullptr, token).status, 403);
  EXPECT_EQ(get("/api/v1/agents", token).status, 403);
  EXPECT_EQ(post("/api/v1/agents/" + agent + "/claim", json::object(), token).status, 403);
  // Another flow's version.
  auto flow2 = register_flow("other", {});
  EXPECT_EQ(get("/api/v1/flows/" + flow2, token).status, 403);
}

TEST_F(ApiTest, RunTokenIsRefusedOnceTheRunIsNoLongerClaimed) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  std::string id = create_run(flow)["id"];
  auto claim = post("/api/v1/agents/" + agent + "/claim", json::object(), runner_);
  std::string token = claim.body["runs"][0]["token"];
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, token).status, 200);
  // Returned to Pending (e.g. by the liveness service): the old claim's token stops.
  EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Pending"}}, runner_).status, 200);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, token).status, 401);
  clock_.advance(seconds(10));
  auto claim2 = post("/api/v1/agents/" + agent + "/claim", json::object(), runner_);
  ASSERT_EQ(claim2.body["runs"].size(), 1u);
  std::string token2 = claim2.body["runs"][0]["token"];
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, token2).status, 200);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, token).status, 401);  // superseded
}

TEST_F(ApiTest, CancelAndRetry) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  // Not yet started: Cancelled at once.
  std::string waiting = create_run(flow)["id"];
  auto c1 = post("/api/v1/flow-runs/" + waiting + "/cancel", nullptr, user_);
  ASSERT_EQ(c1.status, 200) << c1.text;
  EXPECT_EQ(c1.body["state"], "Cancelled");
  // Cancelling a final run: 409 naming both states.
  auto c2 = post("/api/v1/flow-runs/" + waiting + "/cancel", nullptr, user_);
  EXPECT_EQ(c2.status, 409);
  EXPECT_THAT(c2.text, HasSubstr("Cancelled"));
  // Running: Cancelling; the heartbeat shows it.
  std::string running = create_run(flow)["id"];
  auto claim = post("/api/v1/agents/" + agent + "/claim", json::object(), runner_);
  ASSERT_EQ(claim.body["runs"].size(), 1u);
  std::string token = claim.body["runs"][0]["token"];
  ASSERT_EQ(post("/api/v1/flow-runs/" + running + "/state", {{"state", "Running"}}, token).status, 200);
  auto c3 = post("/api/v1/flow-runs/" + running + "/cancel", nullptr, user_);
  EXPECT_EQ(c3.body["state"], "Cancelling");
  EXPECT_EQ(post("/api/v1/flow-runs/" + running + "/heartbeat", nullptr, token).body["state"], "Cancelling");
  ASSERT_EQ(post("/api/v1/flow-runs/" + running + "/state", {{"state", "Cancelled"}}, token).status, 200);
  // Retry: only final runs; back to Scheduled and claimable.
  auto r = post("/api/v1/flow-runs/" + running + "/retry", nullptr, user_);
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["state"], "Scheduled");
  std::string fresh = create_run(flow)["id"];
  auto r2 = post("/api/v1/flow-runs/" + fresh + "/retry", nullptr, user_);
  EXPECT_EQ(r2.status, 409);
  EXPECT_THAT(r2.text, HasSubstr("Scheduled"));
}

// The Cancelling state names who asked: the token's name and scope, in the run's
// document (and so in `run inspect` and for the agent, which passes it on to what it
// stops). A cancel through the state route names the caller too, before its own message.
TEST_F(ApiTest, TheCancellingStateNamesWhoCancelled) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  std::string alice;
  {
    alice = new_api_token();
    store::NewToken t;
    t.name = "alice-oncall";
    t.scope = "user";
    t.hash = sha256_hex(alice);
    ASSERT_TRUE(store_->create_token(t).is_ok());
  }
  auto start = [&]() {
    std::string id = create_run(flow)["id"];
    auto claim = post("/api/v1/agents/" + agent + "/claim", json::object(), runner_);
    EXPECT_EQ(claim.body["runs"].size(), 1u) << claim.text;
    std::string token = claim.body["runs"][0].value("token", "");
    EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, token).status, 200);
    return std::pair{id, token};
  };
  auto [by_route, by_route_token] = start();
  auto c = post("/api/v1/flow-runs/" + by_route + "/cancel", nullptr, alice);
  ASSERT_EQ(c.status, 200) << c.text;
  EXPECT_EQ(c.body["state"], "Cancelling");
  EXPECT_EQ(c.body["state_message"], "cancel requested by alice-oncall (user token)");
  EXPECT_EQ(get("/api/v1/flow-runs/" + by_route, admin_).body["state_message"],
            "cancel requested by alice-oncall (user token)");
  // A second cancel changes nothing: the first canceller stays named.
  EXPECT_EQ(post("/api/v1/flow-runs/" + by_route + "/cancel", nullptr, admin_).body["state_message"],
            "cancel requested by alice-oncall (user token)");

  // Through the state route: the server names the caller, whatever the message says.
  auto [by_state, by_state_token] = start();
  auto s = post("/api/v1/flow-runs/" + by_state + "/state",
                {{"state", "Cancelling"}, {"message", "cancel requested by someone else"}}, admin_);
  ASSERT_EQ(s.status, 200) << s.text;
  EXPECT_EQ(s.body["state_message"], "cancel requested by admin token (admin token): cancel requested by someone else");
  // A flow cancelling itself with its own run token.
  auto [itself, itself_token] = start();
  auto own = post("/api/v1/flow-runs/" + itself + "/state", {{"state", "Cancelling"}}, itself_token);
  ASSERT_EQ(own.status, 200) << own.text;
  EXPECT_EQ(own.body["state_message"], "cancel requested by flow run " + itself + " itself (its run token)");
}

// A retried run: each attempt has its own start and end (GET .../attempts keeps the
// earlier ones), and every log line and task run carries the attempt that wrote it.
TEST_F(ApiTest, EachAttemptOfARetriedRunHasItsOwnTimesLogsAndTaskRuns) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  std::string id = create_run(flow)["id"];
  auto start_attempt = [&]() {
    auto claim = post("/api/v1/agents/" + agent + "/claim", json::object(), runner_);
    EXPECT_EQ(claim.body["runs"].size(), 1u) << claim.text;
    std::string token = claim.body["runs"][0].value("token", "");
    clock_.advance(seconds(1));
    auto running = post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, token);
    EXPECT_EQ(running.status, 200) << running.text;
    return std::pair{token, running.body};
  };
  auto [token1, first] = start_attempt();
  EXPECT_EQ(first["run_count"], 1);
  const std::string start1 = first["start_time"];
  ASSERT_EQ(post("/api/v1/logs",
                 json::array({{{"flow_run_id", id}, {"message", "one"}, {"run_attempt", 1}},
                              {{"flow_run_id", id}, {"message", "one, unstamped"}}}),
                 token1)
                .status,
            201);
  ASSERT_EQ(post("/api/v1/task-runs/states",
                 json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Failed"}, {"run_attempt", 1}}}), token1)
                .status,
            200);
  // Attempts the run has not reached, and malformed ones: 422 naming the field.
  auto ahead = post("/api/v1/logs", json::array({{{"flow_run_id", id}, {"message", "x"}, {"run_attempt", 2}}}),
                    token1);
  EXPECT_EQ(ahead.status, 422) << ahead.text;
  EXPECT_THAT(ahead.text, HasSubstr("run_attempt"));
  auto text = post("/api/v1/logs", json::array({{{"flow_run_id", id}, {"message", "x"}, {"run_attempt", "1"}}}),
                   token1);
  EXPECT_EQ(text.status, 422) << text.text;
  EXPECT_THAT(text.text, HasSubstr("[0].run_attempt"));
  auto task_ahead = post("/api/v1/task-runs/states",
                         json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Running"}, {"run_attempt", 2}}}),
                         token1);
  EXPECT_EQ(task_ahead.status, 422) << task_ahead.text;
  EXPECT_EQ(post("/api/v1/task-runs/states",
                 json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Running"}, {"run_attempt", 0}}}), token1)
                .status,
            422);
  clock_.advance(seconds(1));
  ASSERT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Failed"}}, token1).status, 200);
  const std::string end1 = get("/api/v1/flow-runs/" + id, runner_).body["end_time"];

  // The retry clears the run's times; the second attempt sets its own.
  auto retried = post("/api/v1/flow-runs/" + id + "/retry", nullptr, user_);
  ASSERT_EQ(retried.status, 200) << retried.text;
  EXPECT_TRUE(retried.body["start_time"].is_null()) << retried.text;
  EXPECT_TRUE(retried.body["end_time"].is_null()) << retried.text;
  auto [token2, second] = start_attempt();
  EXPECT_EQ(second["run_count"], 2);
  ASSERT_TRUE(second["start_time"].is_string()) << second.dump();
  EXPECT_NE(second["start_time"], start1);
  EXPECT_TRUE(second["end_time"].is_null());
  ASSERT_EQ(post("/api/v1/logs", json::array({{{"flow_run_id", id}, {"message", "two"}, {"run_attempt", 2}}}), token2)
                .status,
            201);
  ASSERT_EQ(post("/api/v1/task-runs/states",
                 json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Running"}, {"run_attempt", 2}}}), token2)
                .status,
            200);

  auto logs = get("/api/v1/flow-runs/" + id + "/logs", runner_).body["logs"];
  ASSERT_EQ(logs.size(), 3u) << logs.dump();
  EXPECT_EQ(logs[0]["run_attempt"], 1);
  EXPECT_EQ(logs[1]["run_attempt"], 1);  // unstamped: the attempt the run was at
  EXPECT_EQ(logs[2]["run_attempt"], 2);
  auto only1 = get("/api/v1/flow-runs/" + id + "/logs?run_attempt=1", runner_).body["logs"];
  ASSERT_EQ(only1.size(), 2u) << only1.dump();
  EXPECT_EQ(only1[1]["message"], "one, unstamped");
  auto only2 = get("/api/v1/flow-runs/" + id + "/logs?run_attempt=2", token2).body["logs"];
  ASSERT_EQ(only2.size(), 1u) << only2.dump();
  EXPECT_EQ(only2[0]["message"], "two");
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/logs?run_attempt=0", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/logs?run_attempt=two", runner_).status, 422);
  auto tasks = get("/api/v1/flow-runs/" + id + "/task-runs", runner_).body["task_runs"];
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]["run_attempt"], 2);
  EXPECT_EQ(tasks[0]["state"], "Running");

  auto attempts = get("/api/v1/flow-runs/" + id + "/attempts", token2);
  ASSERT_EQ(attempts.status, 200) << attempts.text;
  ASSERT_EQ(attempts.body["attempts"].size(), 2u) << attempts.text;
  const json& a1 = attempts.body["attempts"][0];
  const json& a2 = attempts.body["attempts"][1];
  EXPECT_EQ(a1["attempt"], 1);
  EXPECT_EQ(a1["state"], "Failed");
  EXPECT_EQ(a1["agent_id"], agent);
  EXPECT_EQ(a1["start_time"], start1);
  EXPECT_EQ(a1["end_time"], end1);
  EXPECT_EQ(a2["attempt"], 2);
  EXPECT_EQ(a2["state"], "Running");
  EXPECT_EQ(a2["start_time"], second["start_time"]);
  EXPECT_TRUE(a2["end_time"].is_null());
  EXPECT_EQ(get("/api/v1/flow-runs/no-such-run/attempts", runner_).status, 404);
  std::string other = create_run(flow)["id"];
  EXPECT_EQ(get("/api/v1/flow-runs/" + other + "/attempts", token2).status, 403);
  EXPECT_TRUE(get("/api/v1/flow-runs/" + other + "/attempts", runner_).body["attempts"].empty());
}

TEST_F(ApiTest, LogLongPollWakesOnAppend) {
  auto flow = register_flow("etl", {});
  std::string id = create_run(flow)["id"];
  auto pending = send("GET", "/api/v1/flow-runs/" + id + "/logs?after=0&wait_ms=30000", "", runner_);
  for (int i = 0; i < 200 && waiters_->parked() == 0; ++i) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_EQ(waiters_->parked(), 1u);
  ASSERT_EQ(post("/api/v1/logs", json::array({{{"flow_run_id", id}, {"message", "line 1"}}}), runner_).status, 201);
  auto reply = pending.get();
  ASSERT_EQ(reply.body["logs"].size(), 1u);
  EXPECT_EQ(reply.body["logs"][0]["message"], "line 1");
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/logs?after=x", runner_).status, 422);
}

TEST_F(ApiTest, TokensCreateListRevoke) {
  auto created = post("/api/v1/tokens", {{"name", "ci"}, {"scope", "user"}, {"expires", "30d"}}, admin_);
  ASSERT_EQ(created.status, 201) << created.text;
  std::string secret = created.body["token"];
  std::string id = created.body["id"];
  EXPECT_EQ(get("/api/v1/projects", secret).status, 200);
  auto list = get("/api/v1/tokens", admin_);
  EXPECT_THAT(list.text, HasSubstr(id));
  EXPECT_THAT(list.text, ::testing::Not(HasSubstr(secret)));
  EXPECT_EQ(call("DELETE", "/api/v1/tokens/" + id, nullptr, admin_).status, 200);
  // Revocation through this server applies at once, cache or not.
  EXPECT_EQ(get("/api/v1/projects", secret).status, 401);
  EXPECT_EQ(call("DELETE", "/api/v1/tokens/nosuch", nullptr, admin_).status, 404);
  EXPECT_EQ(post("/api/v1/tokens", {{"name", "x"}, {"scope", "root"}}, admin_).status, 422);
  EXPECT_EQ(post("/api/v1/tokens", {{"name", "x"}, {"scope", "run"}}, admin_).status, 422);
  // Expiry.
  auto shortlived = post("/api/v1/tokens", {{"name", "s"}, {"scope", "runner"}, {"expires", "1h"}}, admin_);
  std::string s2 = shortlived.body["token"];
  EXPECT_EQ(get("/api/v1/agents", s2).status, 200);
  clock_.advance(std::chrono::hours(2));
  EXPECT_EQ(get("/api/v1/agents", s2).status, 401);
}

TEST_F(ApiTest, AgentsHealth) {
  auto a = register_agent("a1", {"x"});
  auto list = get("/api/v1/agents", runner_);
  ASSERT_EQ(list.body["agents"].size(), 1u);
  EXPECT_EQ(list.body["agents"][0]["health"], "healthy");
  clock_.advance(seconds(31));
  EXPECT_EQ(get("/api/v1/agents", runner_).body["agents"][0]["health"], "unhealthy");
  EXPECT_EQ(post("/api/v1/agents/" + a + "/heartbeat", nullptr, runner_).status, 200);
  EXPECT_EQ(get("/api/v1/agents", runner_).body["agents"][0]["health"], "healthy");
  EXPECT_EQ(post("/api/v1/agents/nosuch/heartbeat", nullptr, runner_).status, 404);
  EXPECT_EQ(post("/api/v1/agents", {{"name", "b"}, {"type", "k8s"}}, runner_).status, 422);
}

// B4: an agent is bound to the token that registered it. Another runner token can
// neither take its name over nor act as it (heartbeat, claim, deregister, report its
// runs' infrastructure).
TEST_F(ApiTest, AnAgentIsBoundToTheTokenThatRegisteredIt) {
  std::string other = make_token("runner");
  auto flow = register_flow("etl", {"dev"});
  auto agent = register_agent("a1", {"dev"});
  std::string id = create_run(flow)["id"];
  auto taken = post("/api/v1/agents", {{"name", "a1"}, {"type", "local"}, {"labels", {"dev", "prod"}}}, other);
  EXPECT_EQ(taken.status, 409) << taken.text;
  EXPECT_THAT(taken.text, HasSubstr("registered by another token"));
  EXPECT_EQ(get("/api/v1/agents", runner_).body["agents"][0]["labels"], json({"dev"}));  // unchanged
  auto hb = post("/api/v1/agents/" + agent + "/heartbeat", nullptr, other);
  EXPECT_EQ(hb.status, 403) << hb.text;
  EXPECT_THAT(hb.text, HasSubstr("bound to the token that registered it"));
  auto stolen = post("/api/v1/agents/" + agent + "/claim", {{"max", 5}}, other);
  EXPECT_EQ(stolen.status, 403) << stolen.text;
  EXPECT_THAT(stolen.text, Not(HasSubstr("cvt_run_")));  // no run token handed out
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, runner_).body["state"], "Scheduled");
  EXPECT_EQ(call("DELETE", "/api/v1/agents/" + agent, nullptr, other).status, 403);
  EXPECT_EQ(call("DELETE", "/api/v1/agents/" + agent, nullptr, user_).status, 403);
  // Its own token acts as it.
  EXPECT_EQ(post("/api/v1/agents/" + agent + "/heartbeat", nullptr, runner_).status, 200);
  auto claim = post("/api/v1/agents/" + agent + "/claim", {{"max", 5}}, runner_);
  ASSERT_EQ(claim.status, 200) << claim.text;
  ASSERT_EQ(claim.body["runs"].size(), 1u);
  auto infra = post("/api/v1/flow-runs/" + id + "/infrastructure", {{"kind", "process"}, {"id", "4242"}}, other);
  EXPECT_EQ(infra.status, 403) << infra.text;
  EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/infrastructure", {{"kind", "process"}, {"id", "4242"}}, admin_).status,
            403);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, runner_).body["infrastructure"], nullptr);
  // Nor may it change the run's state (the probe set it Failed); its agent's token may.
  auto failed = post("/api/v1/flow-runs/" + id + "/state", {{"state", "Failed"}, {"message", "x"}}, other);
  EXPECT_EQ(failed.status, 403) << failed.text;
  EXPECT_THAT(failed.text, HasSubstr("another token registered"));
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, runner_).body["state"], "Submitted");
  EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, runner_).status, 200);
  // Nor write its logs, its task runs or its heartbeats; nothing of the batch is kept.
  auto lines = json::array({{{"flow_run_id", id}, {"level", "info"}, {"message", "planted"}}});
  auto planted = post("/api/v1/logs", lines, other);
  EXPECT_EQ(planted.status, 403) << planted.text;
  EXPECT_THAT(planted.text, HasSubstr("another token registered"));
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/logs", admin_).body["logs"].size(), 0u);
  auto states = json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Failed"}}});
  EXPECT_EQ(post("/api/v1/task-runs/states", states, other).status, 403);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs", admin_).body["task_runs"].size(), 0u);
  EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/heartbeat", nullptr, other).status, 403);
  // Its agent's token may (the agent forwards a container's output as logs).
  EXPECT_EQ(post("/api/v1/logs", lines, runner_).status, 201);
  EXPECT_EQ(post("/api/v1/flow-runs/" + id + "/heartbeat", nullptr, runner_).status, 200);
  // Re-registering with its own token is fine (a restarted agent); an admin may
  // deregister it.
  auto again = post("/api/v1/agents", {{"name", "a1"}, {"type", "local"}, {"labels", {"dev"}}}, runner_);
  EXPECT_EQ(again.status, 201) << again.text;
  EXPECT_EQ(again.body["id"], agent);
  EXPECT_EQ(call("DELETE", "/api/v1/agents/" + agent, nullptr, admin_).status, 200);
}

TEST_F(ApiTest, ADeregisteredAgentIsStoppedUntilItRegistersAgain) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  std::string id = create_run(flow)["id"];
  auto del = call("DELETE", "/api/v1/agents/" + agent, nullptr, runner_);
  ASSERT_EQ(del.status, 200) << del.text;
  EXPECT_EQ(del.body["status"], "stopped");
  auto listed = get("/api/v1/agents", runner_).body["agents"][0];
  EXPECT_EQ(listed["status"], "stopped");
  EXPECT_EQ(listed["health"], "stopped");  // at once, not after missed heartbeats
  EXPECT_TRUE(listed["stopped_at"].is_string());
  EXPECT_EQ(call("DELETE", "/api/v1/agents/" + agent, nullptr, runner_).status, 200);  // idempotent
  EXPECT_EQ(call("DELETE", "/api/v1/agents/nosuch", nullptr, runner_).status, 404);
  // It claims nothing and sends no heartbeats until it registers again.
  auto claim = post("/api/v1/agents/" + agent + "/claim", json::object(), runner_);
  EXPECT_EQ(claim.status, 409) << claim.text;
  EXPECT_THAT(claim.text, HasSubstr("register it again"));
  EXPECT_EQ(post("/api/v1/agents/" + agent + "/heartbeat", nullptr, runner_).status, 409);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, runner_).body["state"], "Scheduled");
  auto diag = get("/api/v1/flow-runs/" + id + "/diagnosis", runner_);
  EXPECT_EQ(diag.body["agents"][0]["health"], "stopped");
  EXPECT_THAT(diag.body["reason"].get<std::string>(), HasSubstr("no healthy agent"));
  EXPECT_EQ(get("/metrics", "").text.find("culvert_agents{health=\"healthy\"} 1"), std::string::npos);
  ASSERT_EQ(register_agent("a1", {}), agent);
  listed = get("/api/v1/agents", runner_).body["agents"][0];
  EXPECT_EQ(listed["status"], "live");
  EXPECT_EQ(listed["health"], "healthy");
  EXPECT_EQ(post("/api/v1/agents/" + agent + "/claim", json::object(), runner_).body["runs"].size(), 1u);
}

TEST_F(ApiTest, InfrastructureIsReportedByTheRunsAgentOrItsOwnRunToken) {
  auto flow = register_flow("etl", {});
  auto agent = register_agent("a1", {});
  std::string id = create_run(flow)["id"];
  std::string other = create_run(flow)["id"];
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, runner_).body["infrastructure"], nullptr);
  const std::string target = "/api/v1/flow-runs/" + id + "/infrastructure";
  // Not on an agent yet.
  EXPECT_EQ(post(target, {{"kind", "process"}, {"id", "1"}}, runner_).status, 409);
  auto claim = post("/api/v1/agents/" + agent + "/claim", {{"max", 2}}, runner_);
  ASSERT_EQ(claim.body["runs"].size(), 2u);
  std::string token = claim.body["runs"][0]["id"] == id ? claim.body["runs"][0]["token"] : claim.body["runs"][1]["token"];
  std::string other_token = claim.body["runs"][0]["id"] == id ? claim.body["runs"][1]["token"] : claim.body["runs"][0]["token"];
  auto r = post(target, {{"kind", "container"}, {"id", "3f2a9c"}}, runner_);
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["id"], id);
  EXPECT_EQ(r.body["infrastructure"]["kind"], "container");
  EXPECT_EQ(r.body["infrastructure"]["id"], "3f2a9c");
  EXPECT_EQ(r.body["infrastructure"]["agent_id"], agent);
  EXPECT_EQ(r.body["infrastructure"]["reported_at"], format_rfc3339(clock_.now()));
  // The run's own token may report it too (replacing the earlier report); another run's may not.
  EXPECT_EQ(post(target, {{"kind", "process"}, {"id", "77"}}, token).status, 200);
  EXPECT_EQ(post(target, {{"kind", "process"}, {"id", "78"}}, other_token).status, 403);
  auto got = get("/api/v1/flow-runs/" + id, runner_).body;
  EXPECT_EQ(got["infrastructure"]["id"], "77");
  EXPECT_EQ(got["run_config"]["type"], "local");
  // Bounded, checked input: 422 naming the field; 404 for an unknown run.
  for (const json& bad : {json{{"id", "1"}}, json{{"kind", "process"}}, json{{"kind", ""}, {"id", "1"}},
                          json{{"kind", "Process"}, {"id", "1"}}, json{{"kind", std::string(33, 'a')}, {"id", "1"}},
                          json{{"kind", "process"}, {"id", std::string(1025, '1')}},
                          json{{"kind", "process"}, {"id", "1\n2"}}, json{{"kind", 1}, {"id", "1"}},
                          json::array({"process", "1"})}) {
    auto refused = post(target, bad, runner_);
    EXPECT_EQ(refused.status, 422) << bad.dump() << " " << refused.text;
  }
  EXPECT_EQ(send("POST", target, "{not json", runner_).get().status, 400);
  EXPECT_EQ(post("/api/v1/flow-runs/nosuch/infrastructure", {{"kind", "process"}, {"id", "1"}}, runner_).status, 404);
  EXPECT_EQ(got["infrastructure"]["id"], "77");
  // A new attempt starts without it.
  ASSERT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Pending"}}, runner_).status, 200);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id, runner_).body["infrastructure"], nullptr);
  (void)other;
}

TEST_F(ApiTest, RunsAreListedByAgentAndRepeatedStatesWithRunConfigAndInfrastructure) {
  auto flow = register_flow("etl", {});
  auto a1 = register_agent("a1", {});
  std::string first = create_run(flow)["id"];
  std::string second = create_run(flow)["id"];
  ASSERT_EQ(post("/api/v1/agents/" + a1 + "/claim", {{"max", 2}}, runner_).body["runs"].size(), 2u);
  ASSERT_EQ(post("/api/v1/flow-runs/" + first + "/state", {{"state", "Running"}}, runner_).status, 200);
  ASSERT_EQ(post("/api/v1/flow-runs/" + first + "/infrastructure", {{"kind", "process"}, {"id", "99"}}, runner_).status,
            200);
  std::string waiting = create_run(flow)["id"];
  std::string done = create_run(flow)["id"];
  ASSERT_EQ(post("/api/v1/flow-runs/" + done + "/cancel", nullptr, user_).status, 200);
  auto ids = [&](const std::string& query) {
    std::set<std::string> out;
    auto r = get("/api/v1/flow-runs?" + query, runner_);
    EXPECT_EQ(r.status, 200) << query << " " << r.text;
    for (const auto& run : r.body["runs"]) out.insert(run["id"].get<std::string>());
    return out;
  };
  EXPECT_EQ(ids("agent_id=" + a1 + "&state=Submitted&state=Running&state=Cancelling"),
            (std::set<std::string>{first, second}));
  EXPECT_EQ(ids("agent_id=" + a1 + "&state=Running"), std::set<std::string>{first});
  EXPECT_EQ(ids("state=Scheduled&state=Cancelled"), (std::set<std::string>{waiting, done}));
  EXPECT_EQ(ids("state=Running&state=Running"), std::set<std::string>{first});
  EXPECT_TRUE(ids("agent_id=nosuch").empty());
  auto listed = get("/api/v1/flow-runs?agent_id=" + a1 + "&state=Running", runner_).body["runs"][0];
  EXPECT_EQ(listed["run_config"]["type"], "local");
  EXPECT_EQ(listed["infrastructure"]["id"], "99");
  EXPECT_EQ(listed["infrastructure"]["agent_id"], a1);
  // Each state is checked, and the answer names the bad one.
  auto bad = get("/api/v1/flow-runs?state=Running&state=Bogus", runner_);
  EXPECT_EQ(bad.status, 422);
  EXPECT_THAT(bad.text, HasSubstr("'Bogus'"));
  EXPECT_EQ(get("/api/v1/flow-runs?agent_id=" + std::string(201, 'a'), runner_).status, 422);
}

// A9: a claim carries the run-config types the agent launches; a run of another type is
// not claimed, and the diagnosis says so as it does for a missing label.
TEST_F(ApiTest, ClaimTakesOnlyTheAgentsRunConfigTypesAndTheDiagnosisNamesTheMismatch) {
  json docker_flow = flow_body("containerized", {});
  docker_flow["run_config"] = {{"type", "docker"}, {"image", "etl:1"}};
  auto dr = post("/api/v1/flows", docker_flow, user_);
  ASSERT_EQ(dr.status, 201) << dr.text;
  std::string docker_run = create_run(dr.body["id"])["id"];
  auto local = register_agent("a1", {});
  // Its registered type (local) by default, or the types it names.
  EXPECT_TRUE(post("/api/v1/agents/" + local + "/claim", {{"max", 5}}, runner_).body["runs"].empty());
  EXPECT_TRUE(post("/api/v1/agents/" + local + "/claim", {{"max", 5}, {"types", {"local"}}}, runner_).body["runs"].empty());
  EXPECT_EQ(get("/api/v1/flow-runs/" + docker_run, runner_).body["state"], "Scheduled");
  auto diag = get("/api/v1/flow-runs/" + docker_run + "/diagnosis", runner_);
  ASSERT_EQ(diag.status, 200) << diag.text;
  EXPECT_EQ(diag.body["run_config_type"], "docker");
  EXPECT_EQ(diag.body["agents"][0]["type_mismatch"], "agent a1 launches local; run needs docker");
  EXPECT_EQ(diag.body["agents"][0]["can_take"], false);
  EXPECT_THAT(diag.body["reason"].get<std::string>(), HasSubstr("agent a1 launches local; run needs docker"));
  // Bad types are refused, naming the item.
  for (const json& types : {json("local"), json::array(), json::array({"k8s"}), json::array({1})}) {
    auto r = post("/api/v1/agents/" + local + "/claim", {{"types", types}}, runner_);
    EXPECT_EQ(r.status, 422) << types.dump() << " " << r.text;
    EXPECT_THAT(r.text, HasSubstr("types"));
  }
  // An agent that launches docker (and says so) takes it.
  auto both = post("/api/v1/agents/" + local + "/claim", {{"max", 5}, {"types", {"local", "docker"}}}, runner_);
  ASSERT_EQ(both.body["runs"].size(), 1u) << both.text;
  EXPECT_EQ(both.body["runs"][0]["id"], docker_run);
  EXPECT_EQ(get("/api/v1/agents", runner_).body["agents"][0]["run_config_types"], json({"docker", "local"}));
  // A local run is claimed by the default types.
  std::string local_run = create_run(register_flow("etl", {}))["id"];
  auto taken = post("/api/v1/agents/" + local + "/claim", {{"max", 5}}, runner_);
  ASSERT_EQ(taken.body["runs"].size(), 1u) << taken.text;
  EXPECT_EQ(taken.body["runs"][0]["id"], local_run);
}

TEST_F(ApiTest, MetricsAndOpenApi) {
  auto flow = register_flow("etl", {});
  create_run(flow);
  get("/api/health", "");
  auto m = send("GET", "/metrics", "", "").get();
  ASSERT_EQ(m.status, 200);
  EXPECT_THAT(m.text, HasSubstr("culvert_flow_runs{state=\"Scheduled\"} 1"));
  EXPECT_THAT(m.text, HasSubstr("culvert_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/health\""));
  EXPECT_THAT(m.text, HasSubstr("culvert_agents{health=\"healthy\"} 0"));
  auto o = get("/api/v1/openapi.json", "");
  ASSERT_EQ(o.status, 200);
  EXPECT_EQ(o.body["openapi"], "3.0.3");
}


// A run its agent reports Crashed (its process was killed, its container OOM-killed)
// gets a new attempt when the flow allows run retries, like one found silent by the
// liveness service; once they are used up it stays Crashed.
TEST_F(ApiTest, ARunReportedCrashedIsRescheduledWhileRetriesLast) {
  auto flow = register_flow("etl");  // max_run_retries 1
  std::string id = create_run(flow)["id"];
  auto agent = register_agent("a", {"dev"});
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto claim = post("/api/v1/agents/" + agent + "/claim", {{"max", 1}}, runner_);
    ASSERT_EQ(claim.body["runs"].size(), 1u) << attempt << " " << claim.text;
    std::string token = claim.body["runs"][0]["token"];
    ASSERT_EQ(post("/api/v1/flow-runs/" + id + "/state", {{"state", "Running"}}, token).status, 200);
    auto crashed = post("/api/v1/flow-runs/" + id + "/state",
                        {{"state", "Crashed"}, {"message", "killed by signal 9"}}, runner_);
    ASSERT_EQ(crashed.status, 200) << crashed.text;
    EXPECT_EQ(crashed.body["state"], "Crashed");
    auto now = get("/api/v1/flow-runs/" + id, runner_);
    if (attempt == 1) {
      EXPECT_EQ(now.body["state"], "Scheduled") << now.text;
      EXPECT_THAT(now.body["state_message"].get<std::string>(), HasSubstr("rescheduled after a crash: attempt 2 of 2"));
    } else {
      EXPECT_EQ(now.body["state"], "Crashed") << now.text;  // retries used up
    }
  }
}

// Attack B6: task-run states name tasks of the run's flow version, and only a mapped
// task's task runs have map indexes. A refused batch writes nothing.
TEST_F(ApiTest, TaskRunStatesMustFitTheRunsFlowVersion) {
  auto flow = register_flow("etl");  // a (not mapped), b (mapped)
  std::string id = create_run(flow)["id"];
  auto states = [&](json items) { return post("/api/v1/task-runs/states", items, runner_); };
  auto unknown = states(json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Running"}},
                                     {{"flow_run_id", id}, {"task", "ghost"}, {"state", "Running"}}}));
  EXPECT_EQ(unknown.status, 422) << unknown.text;
  EXPECT_THAT(unknown.text, HasSubstr("[1].task"));
  EXPECT_THAT(unknown.text, HasSubstr("'ghost'"));
  EXPECT_THAT(unknown.text, HasSubstr("flow 'etl' version 1"));
  auto indexed = states(json::array({{{"flow_run_id", id}, {"task", "a"}, {"map_index", 3}, {"state", "Running"}}}));
  EXPECT_EQ(indexed.status, 422) << indexed.text;
  EXPECT_THAT(indexed.text, HasSubstr("[0].map_index"));
  EXPECT_THAT(indexed.text, HasSubstr("task 'a' is not mapped"));
  auto range = states(json::array({{{"flow_run_id", id}, {"task", "a"}, {"map_index", 0}, {"map_count", 5}, {"state", "Running"}}}));
  EXPECT_EQ(range.status, 422) << range.text;
  EXPECT_THAT(range.text, HasSubstr("task 'a' is not mapped"));
  auto past = states(json::array({{{"flow_run_id", id}, {"task", "b"}, {"map_index", 999999}, {"map_count", 2}, {"state", "Running"}}}));
  EXPECT_EQ(past.status, 422) << past.text;
  EXPECT_THAT(past.text, HasSubstr("[0].map_count"));
  // Nothing of the refused batches was written.
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs", runner_).body["task_runs"].size(), 0u);
  // What fits is accepted: the unmapped task, the mapped task's elements, and a mapped
  // task that never expanded (map_index -1).
  auto fine = states(json::array({{{"flow_run_id", id}, {"task", "a"}, {"state", "Running"}},
                                  {{"flow_run_id", id}, {"task", "b"}, {"map_index", 0}, {"map_count", 3}, {"state", "Running"}},
                                  {{"flow_run_id", id}, {"task", "b"}, {"state", "Pending"}}}));
  EXPECT_EQ(fine.status, 200) << fine.text;
  // A later version's tasks do not apply to a run of the earlier one.
  auto v2 = post("/api/v1/flows", flow_body("etl", {"dev"}, {{{"name", "a"}}, {{"name", "c"}}}), user_);
  ASSERT_EQ(v2.status, 201) << v2.text;
  EXPECT_EQ(states(json::array({{{"flow_run_id", id}, {"task", "c"}, {"state", "Running"}}})).status, 422);
  std::string id2 = create_run(v2.body["id"])["id"];
  EXPECT_EQ(states(json::array({{{"flow_run_id", id2}, {"task", "c"}, {"state", "Running"}}})).status, 200);
  // `mapped` must be a boolean when a flow is registered.
  EXPECT_EQ(post("/api/v1/flows", flow_body("bad", {"dev"}, {{{"name", "a"}, {"mapped", "yes"}}}), user_).status, 422);
}

// Attack B2: one item with map_count 3000 and a 64 KB message made the listing answer
// 197 MB. The listing sums mapped tasks up, pages tasks and a task's task runs, and
// stops each page at the byte cap with a next_cursor.
TEST_F(ApiTest, TaskRunListingIsPagedSummedAndBoundedInBytes) {
  ApiOptions ao;
  ao.max_answer_bytes = 64 * 1024;
  restart_api(ao);
  json tasks = {{{"name", "a"}}, {{"name", "m"}, {"mapped", true}}};
  for (int i = 0; i < 10; ++i) tasks.push_back({{"name", "t" + std::to_string(i)}});
  std::string id = create_run(register_flow("etl", {"dev"}, tasks))["id"];
  const std::string big(64 * 1024, 'x');
  json items = json::array({{{"flow_run_id", id}, {"task", "m"}, {"map_index", 0}, {"map_count", 3000},
                             {"state", "Success"}, {"message", "ok"}},
                            {{"flow_run_id", id}, {"task", "m"}, {"map_index", 5}, {"map_count", 5},
                             {"state", "Failed"}, {"message", "boom " + big}},
                            {{"flow_run_id", id}, {"task", "a"}, {"state", "Success"}, {"message", big}}});
  for (int i = 0; i < 10; ++i)
    items.push_back({{"flow_run_id", id}, {"task", "t" + std::to_string(i)}, {"state", "Running"},
                     {"message", std::string(10 * 1024, 'y')}});
  ASSERT_EQ(post("/api/v1/task-runs/states", items, runner_).status, 200);
  const size_t bound = ao.max_answer_bytes + 17 * 1024;  // the cap plus at most one item

  // Every task, page by page: a mapped task is one summary, whatever its size.
  std::vector<std::string> seen;
  json mapped;
  std::string cursor;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 20);
    auto page = get("/api/v1/flow-runs/" + id + "/task-runs" + (cursor.empty() ? "" : "?cursor=" + cursor), runner_);
    ASSERT_EQ(page.status, 200) << page.text;
    EXPECT_LE(page.text.size(), bound);
    for (const auto& t : page.body["task_runs"]) seen.push_back(t["task"]);
    for (const auto& m : page.body["mapped_tasks"]) {
      seen.push_back(m["task"]);
      mapped = m;
    }
    if (page.body["next_cursor"].is_null()) break;
    cursor = page.body["next_cursor"];
  }
  std::vector<std::string> expected = {"a", "m"};
  for (int i = 0; i < 10; ++i) expected.push_back("t" + std::to_string(i));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(mapped["count"], 3000);
  EXPECT_EQ(mapped["max_map_index"], 2999);
  EXPECT_EQ(mapped["states"], json({{"Success", 2995}, {"Failed", 5}}));
  auto two = get("/api/v1/flow-runs/" + id + "/task-runs?limit=2", runner_);
  EXPECT_EQ(two.body["task_runs"].size() + two.body["mapped_tasks"].size(), 2u);
  EXPECT_FALSE(two.body["next_cursor"].is_null());

  // One task's task runs: a limit above 1000 is clamped, the byte cap ends pages early,
  // and the cursors lead through all 3000 in map-index order.
  int64_t expect_index = 0;
  cursor.clear();
  int pages = 0;
  for (;; ++pages) {
    ASSERT_LT(pages, 400);
    auto page = get("/api/v1/flow-runs/" + id + "/task-runs?task=m&limit=5000" + (cursor.empty() ? "" : "&cursor=" + cursor),
                    runner_);
    ASSERT_EQ(page.status, 200) << page.text.substr(0, 300);
    EXPECT_LE(page.text.size(), bound);
    EXPECT_LE(page.body["task_runs"].size(), 1000u);
    for (const auto& t : page.body["task_runs"]) EXPECT_EQ(t["map_index"], expect_index++);
    if (page.body["next_cursor"].is_null()) break;
    cursor = page.body["next_cursor"];
  }
  EXPECT_EQ(expect_index, 3000);
  EXPECT_GT(pages, 3);  // about 300 bytes each, and five of 16 KiB
  auto failed = get("/api/v1/flow-runs/" + id + "/task-runs?task=m&state=Failed", runner_);
  // Four of 16 KiB fill the 64 KiB page; the fifth comes from its cursor.
  ASSERT_EQ(failed.body["task_runs"].size(), 4u);
  EXPECT_EQ(failed.body["task_runs"][0]["map_index"], 5);
  EXPECT_THAT(failed.body["task_runs"][0]["message"].get<std::string>(), HasSubstr("[truncated from 65541 bytes]"));
  ASSERT_EQ(failed.body["next_cursor"], "9");
  auto fifth = get("/api/v1/flow-runs/" + id + "/task-runs?task=m&state=Failed&cursor=9", runner_);
  ASSERT_EQ(fifth.body["task_runs"].size(), 1u);
  EXPECT_EQ(fifth.body["task_runs"][0]["map_index"], 9);
  EXPECT_TRUE(fifth.body["next_cursor"].is_null());
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs?task=m&state=failed", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs?task=m&cursor=x", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs?cursor=zz", runner_).status, 422);
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/task-runs?limit=0", runner_).status, 422);
}

// Attack B2: logs read with limit=10000 of 64 KB lines answered 66 MB. The limit is
// clamped to 1000 and a page stops at the byte cap, saying that more lines are there.
TEST_F(ApiTest, LogReadsClampTheLimitAndStopAtTheByteCap) {
  ApiOptions ao;
  ao.max_answer_bytes = 64 * 1024;
  restart_api(ao);
  std::string id = create_run(register_flow("etl"))["id"];
  json lines = json::array();
  for (int i = 0; i < 30; ++i) lines.push_back({{"flow_run_id", id}, {"message", std::to_string(i) + std::string(64 * 1024, 'x')}});
  ASSERT_EQ(post("/api/v1/logs", lines, runner_).status, 201);
  ASSERT_EQ(post("/api/v1/logs", json::array({{{"flow_run_id", id}, {"message", "short"}}}), runner_).status, 201);
  std::string after = "0";
  size_t read = 0;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 40);
    auto page = get("/api/v1/flow-runs/" + id + "/logs?limit=10000&after=" + after, runner_);
    ASSERT_EQ(page.status, 200) << page.text.substr(0, 300);
    EXPECT_LE(page.text.size(), ao.max_answer_bytes + 17 * 1024);
    for (const auto& l : page.body["logs"]) {
      std::string m = l["message"];
      if (read < 30) EXPECT_TRUE(m.starts_with(std::to_string(read) + "x")) << read;
      else EXPECT_EQ(m, "short");
      ++read;
    }
    after = page.body["next_cursor"];
    if (!page.body["more"].get<bool>()) break;
    EXPECT_GE(page.body["logs"].size(), 1u);
  }
  EXPECT_EQ(read, 31u);
  auto two = get("/api/v1/flow-runs/" + id + "/logs?limit=2", runner_);
  EXPECT_EQ(two.body["logs"].size(), 2u);
  EXPECT_TRUE(two.body["more"].get<bool>());
  auto end = get("/api/v1/flow-runs/" + id + "/logs?after=" + after, runner_);
  EXPECT_TRUE(end.body["logs"].empty());
  EXPECT_FALSE(end.body["more"].get<bool>());
}

// A run's log quota: the batch that would pass it is refused (413, naming the quota and
// the flag), and the lines before it stay readable.
TEST_F(ApiTest, LogWritesPastTheRunsQuotaAreRefused) {
  ApiOptions ao;
  ao.max_log_bytes_per_run = 1000;
  restart_api(ao);
  std::string flow = register_flow("etl");
  std::string id = create_run(flow)["id"];
  std::string other = create_run(flow)["id"];
  auto line = [](const std::string& run, size_t n) { return json{{"flow_run_id", run}, {"message", std::string(n, 'x')}}; };
  ASSERT_EQ(post("/api/v1/logs", json::array({line(id, 900)}), runner_).status, 201);
  auto past = post("/api/v1/logs", json::array({line(id, 200)}), runner_);
  EXPECT_EQ(past.status, 413) << past.text;
  EXPECT_THAT(past.text, HasSubstr("log quota of 1000 bytes"));
  EXPECT_THAT(past.text, HasSubstr("--max-log-bytes-per-run"));
  EXPECT_EQ(get("/api/v1/flow-runs/" + id + "/logs", runner_).body["logs"].size(), 1u);
  EXPECT_EQ(post("/api/v1/logs", json::array({line(other, 1000)}), runner_).status, 201);  // per run
}

// Concurrent task-run batches are written together (group commit); each request still
// gets the ids of its own items, and one request naming an unknown run is refused alone.
TEST_F(ApiTest, ConcurrentTaskRunBatchesAreAnsweredOneByOne) {
  // Four pool threads, so batches park while another thread writes.
  pool_->stop();
  pool_ = std::make_unique<WorkPool>(4);
  ApiOptions ao;
  ao.version = "test";
  api_ = std::make_unique<Api>(clock_, *pool_, [this](int) -> store::Store& { return *store_; }, *auth_,
                               *waiters_, *events_, ao);
  json tasks = json::array();
  for (int round = 0; round < 2; ++round)
    for (int i = 0; i < 200; ++i) tasks.push_back({{"name", "r" + std::to_string(round) + "t" + std::to_string(i)}, {"mapped", true}});
  auto flow = register_flow("etl", {"dev"}, tasks);
  std::string run = create_run(flow)["id"];
  // Another connection holds the database's write lock, so the first writer waits and
  // the other requests park behind it: they are then written as one group. Round 0 has
  // only good requests (one group, answers sliced from one write); in round 1 every
  // 50th names an unknown run, which spoils the group's write, so each is retried alone.
  std::string path = db_->url().substr(std::string("sqlite://").size());
  std::map<std::string, std::string> id_of;  // "task/map_index" -> id answered
  constexpr int kRequests = 200;
  for (int round = 0; round < 2; ++round) {
    sqlite3* blocker = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &blocker), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    std::vector<std::future<Reply>> replies;
    auto bad = [&](int i) { return round == 1 && i % 50 == 7; };
    auto task = [&](int i) { return "r" + std::to_string(round) + "t" + std::to_string(i); };
    for (int i = 0; i < kRequests; ++i) {
      std::string target_run = bad(i) ? "00000000-0000-0000-0000-000000000000" : run;
      json batch = json::array({{{"flow_run_id", target_run}, {"task", task(i)}, {"state", "Running"}},
                                {{"flow_run_id", target_run}, {"task", task(i)}, {"map_index", 1}, {"state", "Success"}}});
      replies.push_back(send("POST", "/api/v1/task-runs/states", batch.dump(), admin_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(sqlite3_exec(blocker, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(blocker);
    for (int i = 0; i < kRequests; ++i) {
      auto r = replies[i].get();
      if (bad(i)) {
        EXPECT_EQ(r.status, 404) << i << " " << r.text;
        continue;
      }
      ASSERT_EQ(r.status, 200) << i << " " << r.text;
      ASSERT_EQ(r.body["task_run_ids"].size(), 2u);
      id_of[task(i) + "/-1"] = r.body["task_run_ids"][0];
      id_of[task(i) + "/1"] = r.body["task_run_ids"][1];
    }
  }
  json listed = json::array();
  for (int round = 0; round < 2; ++round)
    for (int i = 0; i < kRequests; ++i) {
      auto list = get("/api/v1/flow-runs/" + run + "/task-runs?task=r" + std::to_string(round) + "t" + std::to_string(i), admin_);
      ASSERT_EQ(list.status, 200);
      for (const auto& t : list.body["task_runs"]) listed.push_back(t);
    }
  ASSERT_EQ(listed.size(), id_of.size());
  for (const auto& t : listed) {
    std::string key = t["task"].get<std::string>() + "/" + std::to_string(t["map_index"].get<int>());
    EXPECT_EQ(id_of[key], t["id"]) << key;
    EXPECT_EQ(t["state"], t["map_index"] == 1 ? "Success" : "Running") << key;
  }
}

}  // namespace
}  // namespace culvert::server

// ---- the web UI's reads (api_dashboard.cpp)

namespace culvert::server {
namespace {

// An agent says its max concurrent runs when it registers; the agents and the dashboard
// answer them. An agent that does not say (an older one) still registers, with null.
TEST_F(ApiTest, AnAgentsMaxConcurrentIsOptionalAtRegistrationAndAnswered) {
  auto r = post("/api/v1/agents", {{"name", "a8"}, {"type", "local"}, {"max_concurrent", 8}}, runner_);
  ASSERT_EQ(r.status, 201) << r.text;
  EXPECT_EQ(r.body["max_concurrent"], 8);
  auto older = post("/api/v1/agents", {{"name", "old"}, {"type", "local"}, {"labels", json::array()}}, runner_);
  ASSERT_EQ(older.status, 201) << older.text;
  ASSERT_TRUE(older.body.contains("max_concurrent"));
  EXPECT_TRUE(older.body["max_concurrent"].is_null());
  std::map<std::string, json> listed;
  const json agents = get("/api/v1/agents", runner_).body["agents"];
  for (const auto& a : agents) listed[a["name"].get<std::string>()] = a["max_concurrent"];
  EXPECT_EQ(listed["a8"], 8);
  EXPECT_TRUE(listed["old"].is_null());
  std::map<std::string, json> dash;
  const json dashboard_agents = get("/api/v1/dashboard", runner_).body["agents"];
  for (const auto& a : dashboard_agents) dash[a["name"].get<std::string>()] = a["max_concurrent"];
  EXPECT_EQ(dash["a8"], 8);
  EXPECT_TRUE(dash["old"].is_null());
  // A bad value is a 422 naming the field; null is taken as not said.
  for (const json& bad : {json(0), json(10001), json("8"), json(2.5)}) {
    auto refused = post("/api/v1/agents", {{"name", "a8"}, {"max_concurrent", bad}}, runner_);
    EXPECT_EQ(refused.status, 422) << bad.dump() << " " << refused.text;
    EXPECT_THAT(refused.text, HasSubstr("max_concurrent")) << bad.dump();
  }
  auto unsaid = post("/api/v1/agents", {{"name", "a8"}, {"max_concurrent", nullptr}}, runner_);
  ASSERT_EQ(unsaid.status, 201) << unsaid.text;
  EXPECT_TRUE(unsaid.body["max_concurrent"].is_null());
}

TEST_F(ApiTest, DashboardSumsUpRunsLateRunsFailuresAndAgentsWithRunsInFlight) {
  clock_.set(*parse_rfc3339("2026-12-01T10:00:00Z"));
  auto flow = register_flow("dash", {});
  auto agent = register_agent("a1", {});
  auto failed = create_run(flow);
  store::SetFlowRunState fail;
  fail.run_id = failed["id"];
  fail.state = State::kFailed;
  fail.message = "boom <b>";
  fail.forced = true;
  fail.now = clock_.now();
  ASSERT_TRUE(store_->set_flow_run_state(fail).is_ok());
  auto claimed = create_run(flow);
  auto c = post("/api/v1/agents/" + agent + "/claim", {{"max", 1}}, runner_);
  ASSERT_EQ(c.status, 200) << c.text;
  ASSERT_EQ(c.body["runs"].size(), 1u);
  auto late = create_run(flow);
  clock_.advance(seconds(45));
  auto fresh = create_run(flow);
  ASSERT_EQ(post("/api/v1/agents/" + agent + "/heartbeat", json::object(), runner_).status, 200);

  for (const auto& token : {runner_, user_, admin_}) {
    auto d = get("/api/v1/dashboard", token);
    ASSERT_EQ(d.status, 200) << d.text;
    EXPECT_EQ(d.body["runs_total"], 4);
    EXPECT_EQ(d.body["runs_by_state"]["Failed"], 1);
    EXPECT_EQ(d.body["runs_by_state"]["Submitted"], 1);
    EXPECT_EQ(d.body["runs_by_state"]["Scheduled"], 2);
    EXPECT_EQ(d.body["runs_by_state"]["Running"], 0);  // every state is present
    EXPECT_EQ(d.body["late"]["count"], 1);             // 45 s past due; `fresh` is not late
    ASSERT_EQ(d.body["late"]["runs"].size(), 1u);
    EXPECT_EQ(d.body["late"]["runs"][0]["id"], late["id"]);
    ASSERT_EQ(d.body["recent_failures"].size(), 1u);
    EXPECT_EQ(d.body["recent_failures"][0]["state_message"], "boom <b>");
    ASSERT_EQ(d.body["agents"].size(), 1u);
    EXPECT_EQ(d.body["agents"][0]["in_flight"], 1);
    EXPECT_EQ(d.body["agents"][0]["health"], "healthy");
    EXPECT_EQ(d.body["missed_heartbeats"], 3);
  }
  // `since` and the lateness threshold are the caller's.
  auto later = get("/api/v1/dashboard?since=2026-12-01T10:00:30Z&late_after_seconds=0", user_);
  ASSERT_EQ(later.status, 200) << later.text;
  EXPECT_EQ(later.body["runs_total"], 1);
  EXPECT_EQ(later.body["late"]["count"], 1);  // `fresh` is due now, not before now
  EXPECT_EQ(later.body["recent_failures"].size(), 0u);
  auto bad = get("/api/v1/dashboard?since=yesterday", user_);
  EXPECT_EQ(bad.status, 422);
  EXPECT_THAT(bad.body["error"]["message"].get<std::string>(), HasSubstr("'since'"));
  EXPECT_EQ(get("/api/v1/dashboard?late_after_seconds=-1", user_).status, 422);
  EXPECT_EQ(get("/api/v1/dashboard", "").status, 401);
  (void)fresh;
}

TEST_F(ApiTest, SessionNamesTheCallingTokensScope) {
  for (const auto& [token, scope] : std::vector<std::pair<std::string, std::string>>{
           {admin_, "admin"}, {user_, "user"}, {runner_, "runner"}}) {
    auto s = get("/api/v1/session", token);
    ASSERT_EQ(s.status, 200) << s.text;
    EXPECT_EQ(s.body["scope"], scope);
    EXPECT_EQ(s.body["name"], scope + " token");
    EXPECT_TRUE(s.body["expires"].is_null());
    EXPECT_EQ(s.text.find(token), std::string::npos) << "the secret is never answered";
  }
  EXPECT_EQ(get("/api/v1/session", "").status, 401);
  EXPECT_EQ(get("/api/v1/session", "cvt_nope").status, 401);
}

TEST_F(ApiTest, FireTimesFollowTheFlowsScheduleInItsZone) {
  clock_.set(*parse_rfc3339("2026-12-01T10:00:00Z"));
  auto body = flow_body("cron");
  body["schedule"] = {{"type", "cron"}, {"cron", "0 6 * * *"}, {"timezone", "Europe/Berlin"}};
  auto f = post("/api/v1/flows", body, user_);
  ASSERT_EQ(f.status, 201) << f.text;
  auto t = get("/api/v1/flows/" + f.body["id"].get<std::string>() + "/fire-times?count=3", runner_);
  ASSERT_EQ(t.status, 200) << t.text;
  EXPECT_EQ(t.body["timezone"], "Europe/Berlin");
  EXPECT_EQ(t.body["fire_times"],
            json({"2026-12-02T05:00:00.000Z", "2026-12-03T05:00:00.000Z", "2026-12-04T05:00:00.000Z"}));
  auto none = get("/api/v1/flows/" + register_flow("plain") + "/fire-times", runner_);
  ASSERT_EQ(none.status, 200);
  EXPECT_EQ(none.body["schedule"], false);
  EXPECT_EQ(none.body["fire_times"], json::array());
  EXPECT_EQ(get("/api/v1/flows/nope/fire-times", runner_).status, 404);
  EXPECT_EQ(get("/api/v1/flows/" + f.body["id"].get<std::string>() + "/fire-times?count=1000", runner_).status, 422);
}

TEST_F(ApiTest, RunListingFiltersByLabelAndCreationTime) {
  clock_.set(*parse_rfc3339("2026-12-01T10:00:00Z"));
  auto flow = register_flow("filters", {});
  auto gpu = create_run(flow, {{"labels", {"gpu"}}});
  clock_.advance(seconds(60));
  auto cpu = create_run(flow, {{"labels", {"cpu"}}});
  auto ids = [&](const std::string& query) {
    auto r = get("/api/v1/flow-runs?" + query, runner_);
    EXPECT_EQ(r.status, 200) << query << ": " << r.text;
    std::vector<std::string> out;
    for (const auto& run : r.body["runs"]) out.push_back(run["id"]);
    return out;
  };
  EXPECT_EQ(ids("label=gpu"), std::vector<std::string>{gpu["id"]});
  EXPECT_EQ(ids("created_after=2026-12-01T10:00:30Z"), std::vector<std::string>{cpu["id"]});
  EXPECT_EQ(ids("created_before=2026-12-01T10:00:30Z"), std::vector<std::string>{gpu["id"]});
  EXPECT_TRUE(ids("label=cpu&created_before=2026-12-01T10:00:30Z").empty());
  auto bad = get("/api/v1/flow-runs?created_after=noon", runner_);
  EXPECT_EQ(bad.status, 422);
  EXPECT_THAT(bad.body["error"]["message"].get<std::string>(), HasSubstr("created_after"));
  EXPECT_EQ(get("/api/v1/flow-runs?label=" + std::string(300, 'x'), runner_).status, 422);
}


// ---------------------------------------------------------------------------------
// Child runs of distributed mapped tasks

TEST_F(ApiTest, FlowRegistrationChecksTheDistributedMember) {
  auto with = [&](json distributed, bool mapped = true) {
    json tasks = {{{"name", "a"}}, {{"name", "score"}, {"mapped", mapped}, {"distributed", distributed}}};
    return post("/api/v1/flows", flow_body("d", {"dev"}, tasks), user_);
  };
  json good = {{"max_workers", 20}, {"chunk_size", 10}, {"storage", "s3://bucket/maps"}};
  EXPECT_EQ(with(good).status, 201);
  struct Case {
    json distributed;
    bool mapped;
    const char* names;
  };
  std::vector<Case> bad = {
      {good, false, "tasks[1].distributed' is set on task 'score', which is not mapped"},
      {json::array(), true, "tasks[1].distributed' of task 'score' must be an object"},
      {{{"chunk_size", 10}, {"storage", "s3://bkt/p"}}, true, "tasks[1].distributed.max_workers' is required"},
      {{{"max_workers", 0}, {"chunk_size", 10}, {"storage", "s3://bkt/p"}}, true, "tasks[1].distributed.max_workers"},
      {{{"max_workers", 10001}, {"chunk_size", 10}, {"storage", "s3://bkt/p"}}, true, "from 1 to 10000"},
      {{{"max_workers", 2}, {"chunk_size", 1000001}, {"storage", "s3://bkt/p"}}, true, "tasks[1].distributed.chunk_size"},
      {{{"max_workers", 2}, {"chunk_size", "10"}, {"storage", "s3://bkt/p"}}, true, "tasks[1].distributed.chunk_size"},
      {{{"max_workers", 2}, {"chunk_size", 10}}, true, "tasks[1].distributed.storage' is required for task 'score'"},
      {{{"max_workers", 2}, {"chunk_size", 10}, {"storage", "http://x/y"}}, true, "tasks[1].distributed.storage"},
      {{{"max_workers", 2}, {"chunk_size", 10}, {"storage", "s3://bkt/p"}, {"run_config", {{"type", "k8s"}}}}, true,
       "tasks[1].distributed.run_config.type"},
      {{{"max_workers", 2}, {"chunk_size", 10}, {"storage", "s3://bkt/p"}, {"run_config", "big"}}, true,
       "tasks[1].distributed.run_config' must be an object"},
  };
  for (const auto& c : bad) {
    auto r = with(c.distributed, c.mapped);
    EXPECT_EQ(r.status, 422) << c.names << ": " << r.text;
    EXPECT_THAT(r.text, HasSubstr(c.names));
  }
}

TEST_F(ApiTest, ChildRunsAreCreatedOncePerChunkOfARunningParent) {
  auto flow = register_distributed_flow("fan");
  auto agent = register_agent("a1", {"dev"});
  // Not Running yet: 409.
  std::string waiting = create_run(flow)["id"];
  auto early = post("/api/v1/flow-runs/" + waiting + "/children", {{"task", "b"}, {"chunks", chunks({{0, 0, 10}})}}, user_);
  EXPECT_EQ(early.status, 409) << early.text;
  EXPECT_THAT(early.text, HasSubstr("is Scheduled, not Running"));
  auto [claimed, token] = claim_one(agent);
  ASSERT_EQ(claimed, waiting);
  ASSERT_EQ(post("/api/v1/flow-runs/" + waiting + "/state", {{"state", "Running"}}, token).status, 200);
  const std::string parent = waiting;
  const std::string path = "/api/v1/flow-runs/" + parent + "/children";

  auto made = post(path, {{"task", "b"}, {"chunks", chunks({{1, 10, 20}, {0, 0, 10}})}}, token);
  ASSERT_EQ(made.status, 200) << made.text;
  ASSERT_EQ(made.body["children"].size(), 2u);
  json c1 = made.body["children"][0];
  EXPECT_EQ(c1["chunk"], 1);
  EXPECT_EQ(c1["start"], 10);
  EXPECT_EQ(c1["end"], 20);
  EXPECT_EQ(c1["task"], "b");
  EXPECT_EQ(c1["parent_attempt"], 1);
  EXPECT_EQ(c1["state"], "Scheduled");
  EXPECT_EQ(c1["run_count"], 0);
  EXPECT_TRUE(c1["infrastructure"].is_null());
  // Idempotent: the same chunks answer the same children; a new one is added.
  auto again = post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 10}, {1, 10, 20}, {2, 20, 25}})}}, token);
  ASSERT_EQ(again.status, 200) << again.text;
  EXPECT_EQ(again.body["children"][0]["id"], made.body["children"][1]["id"]);
  EXPECT_EQ(again.body["children"][1]["id"], c1["id"]);
  EXPECT_EQ(again.body["children"].size(), 3u);
  // The same chunk number with another range.
  auto clash = post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 9}})}}, token);
  EXPECT_EQ(clash.status, 409) << clash.text;
  EXPECT_THAT(clash.text, HasSubstr("chunk 0 of task 'b'"));
  // Bad requests name what was wrong.
  auto non_distributed = post(path, {{"task", "a"}, {"chunks", chunks({{0, 0, 1}})}}, token);
  EXPECT_EQ(non_distributed.status, 422);
  EXPECT_THAT(non_distributed.text, HasSubstr("task 'a' of flow 'fan' version 1 is not a distributed mapped task"));
  auto ghost = post(path, {{"task", "ghost"}, {"chunks", chunks({{0, 0, 1}})}}, token);
  EXPECT_EQ(ghost.status, 422);
  EXPECT_THAT(ghost.text, HasSubstr("has no task 'ghost'"));
  std::vector<std::pair<json, const char*>> malformed = {
      {{{"task", "b"}}, "field 'chunks' is required"},
      {{{"task", "b"}, {"chunks", json::array()}}, "field 'chunks'"},
      {{{"chunks", chunks({{0, 0, 1}})}}, "field 'task'"},
      {{{"task", "b"}, {"chunks", chunks({{0, 5, 5}})}}, "chunks[0]' has end 5 <= start 5"},
      {{{"task", "b"}, {"chunks", chunks({{-1, 0, 1}})}}, "chunks[0].chunk"},
      {{{"task", "b"}, {"chunks", chunks({{0, 0, 10000002}})}}, "chunks[0].end"},
      {{{"task", "b"}, {"chunks", chunks({{3, 0, 1}, {3, 1, 2}})}}, "chunks[1].chunk' repeats chunk 3"},
      {{{"task", "b"}, {"chunks", json::array({{{"chunk", 0}, {"start", 0}}})}}, "chunks[0].end' is required"},
  };
  json many = json::array();
  for (int i = 0; i < 1001; ++i) many.push_back({{"chunk", i}, {"start", i}, {"end", i + 1}});
  malformed.push_back({{{"task", "b"}, {"chunks", many}}, "1 to 1000 chunks"});
  for (const auto& [body, names] : malformed) {
    auto r = post(path, body, token);
    EXPECT_EQ(r.status, 422) << names << ": " << r.text;
    EXPECT_THAT(r.text, HasSubstr(names));
  }
  EXPECT_EQ(post("/api/v1/flow-runs/no-such-run/children", {{"task", "b"}, {"chunks", chunks({{0, 0, 1}})}}, user_).status,
            404);
  // Who: the parent's own token or a user; not a runner, not another run's token.
  EXPECT_EQ(post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 10}})}}, runner_).status, 403);
  EXPECT_EQ(post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 10}})}}, user_).status, 200);
  auto [child0, child_token] = claim_one(agent);
  EXPECT_EQ(post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 10}})}}, child_token).status, 403);

  // The child's JSON: `child`, the task's run config; the parent's: `children`.
  auto kid = get("/api/v1/flow-runs/" + c1["id"].get<std::string>(), runner_);
  ASSERT_EQ(kid.status, 200);
  EXPECT_EQ(kid.body["child"], json({{"parent_run_id", parent}, {"task", "b"}, {"chunk", 1}, {"start", 10},
                                     {"end", 20}, {"parent_attempt", 1}}));
  EXPECT_EQ(kid.body["run_config"], json({{"type", "docker"}, {"image", "small"}}));
  EXPECT_EQ(kid.body["labels"], json({"dev"}));
  EXPECT_EQ(kid.body["parameters"], json({{"day", "mon"}}));
  EXPECT_TRUE(kid.body["children"].is_null());
  auto dad = get("/api/v1/flow-runs/" + parent, runner_);
  EXPECT_TRUE(dad.body["child"].is_null());
  EXPECT_EQ(dad.body["children"]["count"], 3);
  EXPECT_EQ(dad.body["children"]["by_state"], json({{"Scheduled", 2}, {"Submitted", 1}}));
  // Listings: by parent; the listing of runs renders `child` too.
  auto listed = get("/api/v1/flow-runs?parent=" + parent, runner_);
  ASSERT_EQ(listed.body["runs"].size(), 3u);
  for (const auto& r : listed.body["runs"]) EXPECT_EQ(r["child"]["parent_run_id"], parent);
  auto kids = get(path, token);
  ASSERT_EQ(kids.status, 200) << kids.text;
  ASSERT_EQ(kids.body["children"].size(), 3u);
  EXPECT_EQ(kids.body["children"][0]["chunk"], 0);
  EXPECT_EQ(kids.body["children"][2]["chunk"], 2);
  EXPECT_EQ(kids.body["count"], 3);
  EXPECT_EQ(kids.body["final"], 0);
  EXPECT_EQ(get(path + "?task=a", token).body["children"].size(), 0u);
  EXPECT_EQ(get(path + "?parent_attempt=0", token).status, 422);
  EXPECT_EQ(get(path + "?wait_ms=999999", token).status, 422);
}

TEST_F(ApiTest, TheChildrenLongPollAnswersWhenAChildEndsOrTheWaitIsOver) {
  auto flow = register_distributed_flow("fan");
  auto agent = register_agent("a1", {"dev"});
  auto [parent, token] = running_parent(flow, agent);
  const std::string path = "/api/v1/flow-runs/" + parent + "/children";
  ASSERT_EQ(post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 10}, {1, 10, 20}})}}, token).status, 200);
  auto pending = send("GET", path + "?task=b&final_above=0&wait_ms=30000", "", token);
  await_parked(1);
  auto [child, child_token] = claim_one(agent);
  ASSERT_FALSE(child.empty());
  // Claimed and Running: not yet what the wait is for.
  ASSERT_EQ(post("/api/v1/flow-runs/" + child + "/state", {{"state", "Running"}}, child_token).status, 200);
  // Without a clock advance: woken by the child's end.
  ASSERT_EQ(post("/api/v1/flow-runs/" + child + "/state", {{"state", "Success"}}, child_token).status, 200);
  auto reply = pending.get();
  ASSERT_EQ(reply.status, 200) << reply.text;
  EXPECT_EQ(reply.body["final"], 1);
  EXPECT_EQ(reply.body["by_state"], json({{"Scheduled", 1}, {"Success", 1}}));
  EXPECT_EQ(reply.body["children"][0]["state"], "Success");
  EXPECT_EQ(reply.body["parent_attempt"], 1);
  // Nothing more ends: the wait times out and says so.
  auto quiet = send("GET", path + "?final_above=1&wait_ms=1000", "", token);
  await_parked(1);
  clock_.advance(milliseconds(1001));
  waiters_->tick();
  auto late = quiet.get();
  EXPECT_EQ(late.status, 200);
  EXPECT_EQ(late.body["final"], 1);
  EXPECT_EQ(late.body["children"].size(), 2u);
}

TEST_F(ApiTest, AChildsTokenReportsOnlyItsOwnElementsOfTheParent) {
  auto flow = register_distributed_flow("fan");
  auto agent = register_agent("a1", {"dev"});
  auto [parent, token] = running_parent(flow, agent);
  auto [other, other_token] = running_parent(flow, agent);
  ASSERT_EQ(post("/api/v1/flow-runs/" + parent + "/children",
                 {{"task", "b"}, {"chunks", chunks({{0, 0, 10}, {1, 10, 20}})}}, token)
                .status,
            200);
  auto [child, child_token] = claim_one(agent);
  ASSERT_EQ(get("/api/v1/flow-runs/" + child, runner_).body["child"]["chunk"], 0);
  ASSERT_EQ(post("/api/v1/flow-runs/" + child + "/state", {{"state", "Running"}}, child_token).status, 200);
  auto states = [&](json item) { return post("/api/v1/task-runs/states", json::array({item}), child_token); };
  json mine = {{"flow_run_id", parent}, {"task", "b"}, {"map_index", 0}, {"map_count", 10}, {"state", "Success"}};
  auto ok = states(mine);
  ASSERT_EQ(ok.status, 200) << ok.text;
  auto stored = store_->list_task_runs(parent);
  ASSERT_EQ(stored->size(), 10u);
  EXPECT_EQ((*stored)[9].map_index, 9);
  EXPECT_EQ((*stored)[9].run_attempt, 1);
  json explicit_attempt = mine;
  explicit_attempt["run_attempt"] = 1;
  EXPECT_EQ(states(explicit_attempt).status, 200);
  // Outside its range, another task, another attempt, another run: 403, naming why.
  json past = mine;
  past["map_index"] = 5;
  past["map_count"] = 6;
  auto beyond = states(past);
  EXPECT_EQ(beyond.status, 403) << beyond.text;
  EXPECT_THAT(beyond.text, HasSubstr("only task 'b', attempt 1, map indexes 0 to 9"));
  EXPECT_THAT(beyond.text, HasSubstr("map indexes 5 to 10"));
  json sibling = mine;
  sibling["map_index"] = 10;
  sibling["map_count"] = 1;
  EXPECT_EQ(states(sibling).status, 403);
  EXPECT_EQ(states({{"flow_run_id", parent}, {"task", "a"}, {"state", "Success"}}).status, 403);
  json attempt2 = mine;
  attempt2["run_attempt"] = 2;
  EXPECT_EQ(states(attempt2).status, 403);
  json foreign = mine;
  foreign["flow_run_id"] = other;
  EXPECT_EQ(states(foreign).status, 403);
  // One item out of scope refuses the batch.
  auto mixed = post("/api/v1/task-runs/states", json::array({mine, sibling}), child_token);
  EXPECT_EQ(mixed.status, 403);
  EXPECT_THAT(mixed.text, HasSubstr("item [1]"));
  // Its own run's task runs, as any run token.
  EXPECT_EQ(states({{"flow_run_id", child}, {"task", "a"}, {"state", "Running"}}).status, 200);
  // Log lines: its elements of the parent's task; the parent's other lines are not its.
  auto line = [&](json l) { return post("/api/v1/logs", json::array({l}), child_token); };
  EXPECT_EQ(line({{"flow_run_id", parent}, {"task", "b"}, {"map_index", 3}, {"message", "element 3"}}).status, 201);
  EXPECT_EQ(line({{"flow_run_id", parent}, {"task", "b"}, {"map_index", 12}, {"message", "not mine"}}).status, 403);
  EXPECT_EQ(line({{"flow_run_id", parent}, {"message", "the parent's own"}}).status, 403);
  EXPECT_EQ(line({{"flow_run_id", other}, {"task", "b"}, {"map_index", 3}, {"message", "x"}}).status, 403);
  EXPECT_EQ(line({{"flow_run_id", child}, {"message", "my own"}}).status, 201);
  auto logs = store_->read_logs(parent, 0, 100);
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].message, "element 3");
  // The parent's state is the parent's own token's, not the child's.
  EXPECT_EQ(post("/api/v1/flow-runs/" + parent + "/state", {{"state", "Success"}}, child_token).status, 403);
  (void)other_token;
}

TEST_F(ApiTest, CancellingOrEndingTheParentEndsItsChildren) {
  auto flow = register_distributed_flow("fan");
  auto agent = register_agent("a1", {"dev"});
  auto [parent, token] = running_parent(flow, agent);
  const std::string path = "/api/v1/flow-runs/" + parent + "/children";
  ASSERT_EQ(post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 1}, {1, 1, 2}, {2, 2, 3}})}}, token).status, 200);
  auto [submitted, t1] = claim_one(agent);
  auto [running, t2] = claim_one(agent);
  ASSERT_EQ(post("/api/v1/flow-runs/" + running + "/state", {{"state", "Running"}}, t2).status, 200);
  // The parent waits on its children; the cancel wakes it (a child is Cancelled).
  auto pending = send("GET", path + "?final_above=0&wait_ms=30000", "", token);
  await_parked(1);
  auto cancel = post("/api/v1/flow-runs/" + parent + "/cancel", json::object(), user_);
  ASSERT_EQ(cancel.status, 200) << cancel.text;
  EXPECT_EQ(cancel.body["state"], "Cancelling");
  auto woke = pending.get();
  EXPECT_EQ(woke.body["final"], 1) << woke.text;
  EXPECT_EQ(woke.body["parent_state"], "Cancelling");
  std::map<std::string, std::string> by_id;
  auto after_cancel = get(path, runner_);
  for (const auto& c : after_cancel.body["children"]) by_id[c["id"]] = c["state"];
  EXPECT_EQ(by_id[submitted], "Cancelling");
  EXPECT_EQ(by_id[running], "Cancelling");
  int cancelled = 0;
  for (const auto& [id, st] : by_id) cancelled += st == "Cancelled";
  EXPECT_EQ(cancelled, 1);
  auto msg = get("/api/v1/flow-runs/" + running, runner_).body["state_message"].get<std::string>();
  EXPECT_THAT(msg, HasSubstr("the parent flow run " + parent + " was cancelled: cancel requested by user token"));
  // A running child's own process sees it at its heartbeat, as for a user's cancel.
  EXPECT_EQ(post("/api/v1/flow-runs/" + running + "/heartbeat", json::object(), t2).body["state"], "Cancelling");

  // A parent that fails ends the children that wait.
  auto [second, token2] = running_parent(flow, agent);
  auto more = post("/api/v1/flow-runs/" + second + "/children", {{"task", "b"}, {"chunks", chunks({{0, 0, 5}})}}, token2);
  ASSERT_EQ(more.status, 200);
  ASSERT_EQ(post("/api/v1/flow-runs/" + second + "/state", {{"state", "Failed"}}, token2).status, 200);
  auto ended = get("/api/v1/flow-runs/" + more.body["children"][0]["id"].get<std::string>(), runner_);
  EXPECT_EQ(ended.body["state"], "Cancelled");
  EXPECT_EQ(ended.body["state_message"], "the parent flow run " + second + " ended Failed");
  (void)t1;
}

// A child that crashes is given a new attempt under the flow's max_run_retries, as any
// run; once they are used up it stays Crashed and counts as final for its parent.
TEST_F(ApiTest, ACrashedChildIsRescheduledWhileTheFlowsRunRetriesLast) {
  auto flow = register_distributed_flow("fan", /*max_run_retries=*/1);
  auto agent = register_agent("a1", {"dev"});
  auto [parent, token] = running_parent(flow, agent);
  const std::string path = "/api/v1/flow-runs/" + parent + "/children";
  auto made = post(path, {{"task", "b"}, {"chunks", chunks({{0, 0, 10}})}}, token);
  ASSERT_EQ(made.status, 200);
  std::string child = made.body["children"][0]["id"];
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto [claimed, child_token] = claim_one(agent);
    ASSERT_EQ(claimed, child) << attempt;
    ASSERT_EQ(post("/api/v1/flow-runs/" + child + "/state", {{"state", "Running"}}, child_token).status, 200);
    auto crashed = post("/api/v1/flow-runs/" + child + "/state", {{"state", "Crashed"}, {"message", "killed by signal 9"}},
                        runner_);
    ASSERT_EQ(crashed.status, 200) << crashed.text;
    auto now = get("/api/v1/flow-runs/" + child, runner_);
    EXPECT_EQ(now.body["child"]["chunk"], 0);  // the same chunk runs again
    auto listing = get(path, token);
    if (attempt == 1) {
      EXPECT_EQ(now.body["state"], "Scheduled") << now.text;
      EXPECT_THAT(now.body["state_message"].get<std::string>(), HasSubstr("rescheduled after a crash: attempt 2 of 2"));
      EXPECT_EQ(listing.body["final"], 0);
    } else {
      EXPECT_EQ(now.body["state"], "Crashed") << now.text;
      EXPECT_EQ(now.body["run_count"], 2);
      EXPECT_EQ(listing.body["final"], 1);
      EXPECT_EQ(listing.body["by_state"], json({{"Crashed", 1}}));
    }
  }
  EXPECT_EQ(get("/api/v1/flow-runs/" + parent, runner_).body["state"], "Running");
}

}  // namespace
}  // namespace culvert::server
