#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "runtime/answers.hpp"
#include "runtime/runtime.hpp"
#include "storage/artifacts.hpp"

namespace culvert::runtime {

using nlohmann::json;

Result<RegisteredFlow> register_flow_artifact(const std::string& artifact_path,
                                           const std::string& describe_json,
                                           const RegisterOptions& options) {
  if (options.project.empty()) return invalid_argument("register needs --project NAME");
  json desc;
  auto described = decode_flow_description(describe_json, &desc);
  if (!described)
    return invalid_argument("'" + artifact_path + "' did not describe itself as a flow: " +
                            described.status().message());
  const std::string& name = described->name;
  std::string storage_uri = options.storage.value_or(described->storage.value_or(""));
  if (storage_uri.empty())
    return invalid_argument("flow '" + name + "' has no storage: pass --storage file:///DIR or s3://BUCKET/PREFIX, "
                            "or call flow.storage(...) in the flow");
  StorageOptions so;
  so.s3_endpoint = options.s3_endpoint;
  auto artifact = storage::upload_artifact(storage_uri, name, artifact_path, so);
  if (!artifact) return artifact.status();

  json body = desc;
  body["project"] = options.project;
  body["storage"] = storage_uri;
  body["artifact"] = {{"uri", artifact->uri}, {"sha256", artifact->sha256}};
  if (options.artifact_kind) body["artifact_kind"] = *options.artifact_kind;
  if (options.run_config_json) {
    json rc = json::parse(*options.run_config_json, nullptr, false);
    if (rc.is_discarded() || !rc.is_object())
      return invalid_argument("--run-config must be a JSON object, e.g. {\"type\":\"docker\",\"image\":\"...\"}");
    body["run_config"] = rc;
    if (rc.contains("labels")) body["labels"] = rc["labels"];
  }
  if (!options.labels.empty()) {
    body["labels"] = options.labels;
    if (!body.contains("run_config") || !body["run_config"].is_object()) body["run_config"] = json::object();
    body["run_config"]["labels"] = options.labels;
  }
  if (options.idempotency_key) body["idempotency_key"] = *options.idempotency_key;
  client::ApiClient api(client::ClientOptions{.api_url = options.api_url, .api_token = options.api_token});
  auto r = api.register_flow(body);
  if (!r) return r.status();
  return decode_registered_flow(*r);
}

}  // namespace culvert::runtime
