// Optional: a codec for nlohmann::json values (results stored as JSON text).
// Include this header only where needed; it pulls in nlohmann/json.hpp.
#pragma once

#include <nlohmann/json.hpp>

#include <culvert/codec.hpp>

namespace culvert {

template <>
struct Codec<nlohmann::json> {
  static std::string encode(const nlohmann::json& v) { return v.dump(); }
  static bool decode(std::string_view s, nlohmann::json& out) {
    out = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
    return !out.is_discarded();
  }
};

}  // namespace culvert
