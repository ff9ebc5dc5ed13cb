// Optional: codecs through nlohmann::json (values stored as JSON text). Include this
// header only where needed; it pulls in nlohmann/json.hpp.
//
//   namespace shop {
//   struct Order { std::string id; int items = 0; };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, id, items)   // or your own to_json/from_json
//   }
//   // Task<shop::Order> can now use .result(), .target() and .cache_for().
//
// A type gets this codec when argument-dependent lookup finds
//   void to_json(nlohmann::json&, const T&);   void from_json(const nlohmann::json&, T&);
// and it is not one of the types with a codec of their own (numbers, strings,
// std::vector, std::map). An explicit specialization of culvert::Codec<T> wins.
// Decoding returns false for bytes that are not JSON or that from_json refuses (throws).
#pragma once

#include <exception>

#include <nlohmann/json.hpp>

#include <culvert/codec.hpp>

namespace culvert {

template <>
struct Codec<nlohmann::json> {
  static std::string encode(const nlohmann::json& v) {
    return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  static bool decode(std::string_view s, nlohmann::json& out) {
    out = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
    return !out.is_discarded();
  }
};

namespace detail {
template <typename T> struct is_std_vector_or_map : std::false_type {};
template <typename E, typename A> struct is_std_vector_or_map<std::vector<E, A>> : std::true_type {};
template <typename K, typename V, typename C, typename A>
struct is_std_vector_or_map<std::map<K, V, C, A>> : std::true_type {};

// Found by argument-dependent lookup only: the user's functions, next to their type.
template <typename T>
concept NlohmannConvertible =
    !std::is_arithmetic_v<T> && !std::is_same_v<T, std::string> && !std::is_same_v<T, nlohmann::json> &&
    !is_std_vector_or_map<T>::value && std::is_default_constructible_v<T> &&
    requires(nlohmann::json& j, const nlohmann::json& cj, const T& v, T& out) {
      to_json(j, v);
      from_json(cj, out);
    };
}  // namespace detail

template <typename T>
struct Codec<T, std::enable_if_t<detail::NlohmannConvertible<T>>> {
  static std::string encode(const T& v) {
    nlohmann::json j;
    to_json(j, v);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  static bool decode(std::string_view s, T& out) {
    nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return false;
    try {
      from_json(j, out);  // may throw on a missing or mistyped field
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
};

}  // namespace culvert
