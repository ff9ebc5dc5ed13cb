// What the runtime reads from outside its own process: a flow binary's description
// (printed by `describe`, read by `culvert flow register`) and the server's answers
// (flow runs, registered flow versions). Each is decoded once, here, into a typed
// value; the rest of the runtime reads only those. A decoder checks every field it
// reads and returns a Status naming the field and what was wrong with it: nothing that
// arrives from elsewhere can throw. Stateless; thread-safe.
#pragma once

#include <culvert/status.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace culvert::runtime {

// Descriptions longer than this are refused (a flow description is a few KB; the
// server takes at most 1 MiB per request).
inline constexpr size_t kMaxDescriptionBytes = 4 << 20;

// The parts of a flow description (docs/FORMATS.md) that registering reads.
struct FlowDescription {
  std::string name;                    // non-empty
  std::optional<std::string> storage;  // absent, null or "": none
};

// InvalidArgument when `text` is not a JSON object with a string "name", when
// "storage" is neither absent, null nor a string, or when it is too long. `document`,
// when given, receives the parsed object (to pass it on to the server).
Result<FlowDescription> decode_flow_description(std::string_view text, nlohmann::json* document = nullptr);

// What makes a flow run a child run: one chunk of a distributed map of its parent run.
struct ChildOf {
  std::string parent_run_id;  // non-empty
  std::string task;           // the parent's mapped task (non-empty)
  int chunk = 0;              // 0..
  int64_t start = 0;          // map indexes [start, end), 0 <= start < end
  int64_t end = 0;
  int parent_attempt = 1;     // the parent's attempt (its run_count) that made the child
};

// A flow run as the server answers GET /flow-runs/{id} and POST .../heartbeat.
struct FlowRunAnswer {
  std::string id;
  std::string state;      // e.g. "Running", "Cancelling"
  std::string state_message;  // e.g. "cancel requested by alice (user token)"; "" when none
  std::string flow_name;  // "" when the server does not say
  std::string flow_id;    // the flow version it runs; "" when the server does not say
  // Parameter values as text: strings as they are, other JSON values as JSON text.
  std::map<std::string, std::string> parameters;
  // The run's attempts so far ("run_count"): its current attempt once it is Running.
  // 0 when the server does not say.
  int run_count = 0;
  // Set for a child run ("child" in the answer); nullopt for any other run.
  std::optional<ChildOf> child;
};

// Internal (the server's answer is malformed) naming the field: the answer is not an
// object, "state" is missing or not a string, "id", "state_message", "flow_name" or
// "flow_id" is not a string,
// "parameters" is not an object, "run_count" is not an integer from 0 to 1,000,000,
// "child" is neither absent, null nor an object with the fields of ChildOf in range.
Result<FlowRunAnswer> decode_flow_run(const nlohmann::json& answer);

// The artifact of a flow version, as the server answers GET /flows/{id}.
struct FlowArtifact {
  std::string uri;     // non-empty
  std::string sha256;  // non-empty
  std::string kind;    // "binary" (also when the server says none), "yaml", "python", ...
};

// Internal naming the field: not an object, "artifact" missing or not an object, its
// "uri" or "sha256" missing, empty or not a string, its "kind" not a string.
Result<FlowArtifact> decode_flow_artifact(const nlohmann::json& flow_version);

// A flow version as the server answers POST /flows.
struct RegisteredFlow {
  std::string id;
  std::string name;
  int64_t version = 0;
  std::string json;  // the whole answer, as JSON text (for --output json)
};

// Internal naming the field: not an object, "id" not a non-empty string, "version"
// not an integer, "name" not a string.
Result<RegisteredFlow> decode_registered_flow(const nlohmann::json& answer);

}  // namespace culvert::runtime
