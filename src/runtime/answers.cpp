#include "runtime/answers.hpp"

#include <nlohmann/json.hpp>

namespace culvert::runtime {

using nlohmann::json;

namespace {

const char* type_of(const json& j) { return j.type_name(); }

// The string at `key` of object `o`: nullopt when absent or null, an error when it is
// of another type.
Result<std::optional<std::string>> optional_string(const json& o, const char* key, const std::string& what) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string())
    return internal_error(what + ": \"" + key + "\" must be a string, but is " + type_of(*it));
  return std::optional<std::string>(it->get<std::string>());
}

}  // namespace

Result<FlowDescription> decode_flow_description(std::string_view text, json* document) {
  const std::string what = "the flow's description";
  if (text.size() > kMaxDescriptionBytes)
    return invalid_argument(what + " is " + std::to_string(text.size()) + " bytes; at most " +
                            std::to_string(kMaxDescriptionBytes) + " are accepted");
  json desc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (desc.is_discarded() || !desc.is_object())
    return invalid_argument(what + " is not a JSON object (describe printed no flow JSON)");
  FlowDescription d;
  auto name = optional_string(desc, "name", what);
  if (!name || !*name || (*name)->empty())
    return invalid_argument(what + " has no flow name (\"name\" must be a non-empty string)");
  d.name = **name;
  auto storage = optional_string(desc, "storage", what);
  if (!storage) return invalid_argument(storage.status().message());
  if (*storage && !(*storage)->empty()) d.storage = **storage;
  if (document != nullptr) *document = std::move(desc);
  return d;
}

Result<FlowRunAnswer> decode_flow_run(const json& answer) {
  const std::string what = "the server's flow run";
  if (!answer.is_object()) return internal_error(what + " is not a JSON object, but " + type_of(answer));
  FlowRunAnswer run;
  auto state = optional_string(answer, "state", what);
  if (!state) return state.status();
  if (!*state || (*state)->empty()) return internal_error(what + " has no \"state\"");
  run.state = **state;
  auto state_message = optional_string(answer, "state_message", what);
  if (!state_message) return state_message.status();
  run.state_message = state_message->value_or("");
  auto id = optional_string(answer, "id", what);
  if (!id) return id.status();
  run.id = id->value_or("");
  auto flow_name = optional_string(answer, "flow_name", what);
  if (!flow_name) return flow_name.status();
  run.flow_name = flow_name->value_or("");
  auto flow_id = optional_string(answer, "flow_id", what);
  if (!flow_id) return flow_id.status();
  run.flow_id = flow_id->value_or("");
  if (auto it = answer.find("parameters"); it != answer.end() && !it->is_null()) {
    if (!it->is_object())
      return internal_error(what + ": \"parameters\" must be an object, but is " + type_of(*it));
    for (const auto& [k, v] : it->items())
      run.parameters[k] = v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  if (auto it = answer.find("run_count"); it != answer.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1000000)
      return internal_error(what + ": \"run_count\" must be an integer from 0 to 1000000, but is " +
                            (it->is_number_integer() ? it->dump() : std::string(type_of(*it))));
    run.run_count = static_cast<int>(it->get<int64_t>());
  }
  if (auto it = answer.find("child"); it != answer.end() && !it->is_null()) {
    if (!it->is_object()) return internal_error(what + ": \"child\" must be an object, but is " + type_of(*it));
    ChildOf c;
    for (auto [key, out] : {std::pair{"parent_run_id", &c.parent_run_id}, std::pair{"task", &c.task}}) {
      auto v = optional_string(*it, key, what + "'s child");
      if (!v) return v.status();
      if (!*v || (*v)->empty()) return internal_error(what + ": the child's \"" + key + "\" must be a non-empty string");
      *out = **v;
    }
    auto integer = [&](const char* key, int64_t lo, int64_t hi) -> Result<int64_t> {
      auto f = it->find(key);
      if (f == it->end() || !f->is_number_integer() || f->get<int64_t>() < lo || f->get<int64_t>() > hi)
        return internal_error(what + ": the child's \"" + key + "\" must be an integer from " + std::to_string(lo) +
                              " to " + std::to_string(hi));
      return f->get<int64_t>();
    };
    auto chunk = integer("chunk", 0, 100000000);
    if (!chunk) return chunk.status();
    auto start = integer("start", 0, 100000000);
    if (!start) return start.status();
    auto end = integer("end", 1, 100000001);
    if (!end) return end.status();
    auto attempt = integer("parent_attempt", 1, 1000000);
    if (!attempt) return attempt.status();
    if (*end <= *start) return internal_error(what + ": the child's range is empty (start " + std::to_string(*start) +
                                              ", end " + std::to_string(*end) + ")");
    c.chunk = static_cast<int>(*chunk);
    c.start = *start;
    c.end = *end;
    c.parent_attempt = static_cast<int>(*attempt);
    run.child = std::move(c);
  }
  return run;
}

Result<FlowArtifact> decode_flow_artifact(const json& flow_version) {
  const std::string what = "the server's flow version";
  if (!flow_version.is_object())
    return internal_error(what + " is not a JSON object, but " + type_of(flow_version));
  auto a = flow_version.find("artifact");
  if (a == flow_version.end() || !a->is_object())
    return internal_error(what + " has no artifact to run (\"artifact\" must be an object, but is " +
                          (a == flow_version.end() ? std::string("missing") : std::string(type_of(*a))) + ")");
  FlowArtifact f;
  for (auto [key, out] : {std::pair{"uri", &f.uri}, std::pair{"sha256", &f.sha256}}) {
    auto v = optional_string(*a, key, what + "'s artifact");
    if (!v) return v.status();
    if (!*v || (*v)->empty()) return internal_error(what + " has no artifact " + key);
    *out = **v;
  }
  // Servers before artifact kinds answered none: their versions are flow binaries.
  auto kind = optional_string(*a, "kind", what + "'s artifact");
  if (!kind) return kind.status();
  f.kind = *kind && !(*kind)->empty() ? **kind : "binary";
  return f;
}

Result<RegisteredFlow> decode_registered_flow(const json& answer) {
  const std::string what = "the server's answer to registering the flow";
  if (!answer.is_object()) return internal_error(what + " is not a JSON object, but " + type_of(answer));
  RegisteredFlow f;
  auto id = optional_string(answer, "id", what);
  if (!id) return id.status();
  if (!*id || (*id)->empty()) return internal_error(what + " has no flow version \"id\"");
  f.id = **id;
  auto name = optional_string(answer, "name", what);
  if (!name) return name.status();
  f.name = name->value_or("");
  auto v = answer.find("version");
  if (v == answer.end() || !v->is_number_integer())
    return internal_error(what + ": \"version\" must be an integer, but is " +
                          (v == answer.end() ? std::string("missing") : std::string(type_of(*v))));
  f.version = v->get<int64_t>();
  f.json = answer.dump(-1, ' ', false, json::error_handler_t::replace);
  return f;
}

}  // namespace culvert::runtime
