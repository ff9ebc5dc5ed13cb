// Fuzz target: raw bytes as an HTTP/1.1 request -> Beast's parser -> target parsing ->
// route matching -> the JSON body parsers and validators of every route, then the
// rendering of what they produced. Nothing here may crash, hang or trip a sanitizer
// whatever the input.
//
// Built with libFuzzer by scripts/fuzz-server.sh (clang); with any compiler as
// server_fuzz_corpus_test, which runs every file of the seed corpus once.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "core/timefmt.hpp"
#include "server/api_json.hpp"
#include "server/http.hpp"
#include "server/router.hpp"

namespace {

using culvert::server::json;
namespace srv = culvert::server;

const srv::Router& router() {
  static const srv::Router r = [] {
    srv::Router x;
    for (const char* m : {"GET", "POST", "DELETE"}) {
      for (const char* p : {"/api/health", "/api/v1/projects", "/api/v1/flows", "/api/v1/flows/{id}",
                            "/api/v1/flow-runs", "/api/v1/flow-runs/{id}", "/api/v1/flow-runs/{id}/state",
                            "/api/v1/flow-runs/{id}/logs", "/api/v1/task-runs/states", "/api/v1/logs",
                            "/api/v1/agents", "/api/v1/agents/{id}/claim", "/api/v1/tokens", "/api/v1/tokens/{id}"})
        x.add({m, p, srv::Access::kRunner, false, ""});
    }
    return x;
  }();
  return r;
}

void exercise_body(const json& body) {
  auto now = culvert::from_unix_ms(1767225600000);
  if (auto v = srv::parse_flow_registration(body)) {
    auto desc = json::parse(v->description_json, nullptr, false);
    (void)srv::flow_tasks(culvert::store::Flow{}, desc.is_discarded() ? json::object() : desc);
    (void)srv::check_parameters(desc, json::object());
    if (body.is_object() && body.contains("parameters") && body["parameters"].is_object())
      (void)srv::check_parameters(desc, body["parameters"]);
  }
  if (auto r = srv::parse_flow_run_create(body)) (void)srv::check_parameters(body, r->parameters);
  (void)srv::parse_project_create(body);
  (void)srv::parse_state_change(body);
  (void)srv::parse_task_run_batch(body, now);
  (void)srv::parse_log_batch(body, now);
  (void)srv::parse_agent(body);
  (void)srv::parse_claim(body, culvert::Millis(60000));
  (void)srv::parse_infrastructure(body);
  (void)srv::parse_child_runs_create(body);
  (void)srv::parse_token_create(body, now);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace http = boost::beast::http;
  std::string_view input(reinterpret_cast<const char*>(data), size);

  // The raw body alone, as JSON.
  if (auto j = srv::parse_body(input, true)) exercise_body(*j);

  // The whole input as an HTTP request.
  http::request_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  parser.header_limit(16 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(input.data(), input.size()), ec);
  if (ec || !parser.is_header_done()) return 0;
  const auto& msg = parser.get();
  srv::Request req;
  req.method = std::string(msg.method_string());
  if (!srv::parse_target(std::string_view(msg.target().data(), msg.target().size()), req)) return 0;
  auto m = router().match(req.method, req.path);
  (void)m.params.get("id");
  for (const char* q : {"after", "limit", "wait_ms"}) (void)srv::parse_int_param(req.query_param(q), q, 0, INT64_MAX, 0);
  if (parser.is_done()) {
    if (auto j = srv::parse_body(msg.body(), true)) exercise_body(*j);
  }
  (void)srv::error_response(422, "unprocessable", req.path);
  return 0;
}
