// Codecs: how a task's value becomes bytes in storage (results, cache entries, targets)
// and back. Built in: arithmetic types, std::string, byte buffers
// (std::vector<std::byte>, std::vector<unsigned char>), and std::vector / std::map of
// codec-able types. <culvert/json.hpp> adds nlohmann::json, and every type that has
// nlohmann's to_json/from_json (found by argument-dependent lookup, e.g. written with
// NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE), stored as JSON text.
//
// Any other type gets a codec by specializing culvert::Codec<T> with exactly
//   static std::string encode(const T&);
//   static bool decode(std::string_view bytes, T& out);   // false: malformed
// and a default constructor for T (decode fills a T{}). `.result()`, `.target()` and
// `.cache_for()` on a task whose value has no codec, or whose Codec<T> lacks these
// members, do not compile; the error names the signature expected.
// Encodings: numbers and strings as text/bytes; containers as a sequence of
// netstring-like items "<length>:<bytes>". Stateless; thread-safe.
#pragma once

#include <charconv>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <culvert/detail/codec_framing.hpp>

namespace culvert {

template <typename T, typename Enable = void>
struct Codec;  // no codec for T unless specialized

template <typename T>
concept HasCodec = requires(const T& v, std::string_view s, T& out) {
  { Codec<T>::encode(v) } -> std::convertible_to<std::string>;
  { Codec<T>::decode(s, out) } -> std::convertible_to<bool>;
};

// Codec<T> is defined for T (by the library or a specialization), whatever its members:
// with !HasCodec<T>, its members have the wrong signature.
template <typename T>
concept CodecDefined = requires { sizeof(Codec<T>); };

template <typename T>
struct Codec<T, std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>> {
  static std::string encode(const T& v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  }
  static bool decode(std::string_view s, T& out) {
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
  }
};

template <>
struct Codec<bool> {
  static std::string encode(const bool& v) { return v ? "true" : "false"; }
  static bool decode(std::string_view s, bool& out) {
    if (s == "true") { out = true; return true; }
    if (s == "false") { out = false; return true; }
    return false;
  }
};

template <>
struct Codec<std::string> {
  static std::string encode(const std::string& v) { return v; }
  static bool decode(std::string_view s, std::string& out) { out.assign(s); return true; }
};

template <>
struct Codec<std::vector<std::byte>> {
  static std::string encode(const std::vector<std::byte>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
  }
  static bool decode(std::string_view s, std::vector<std::byte>& out) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.assign(p, p + s.size());
    return true;
  }
};

template <>
struct Codec<std::vector<unsigned char>> {
  static std::string encode(const std::vector<unsigned char>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
  }
  static bool decode(std::string_view s, std::vector<unsigned char>& out) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    out.assign(p, p + s.size());
    return true;
  }
};

template <typename T>
  requires(HasCodec<T> && !std::is_same_v<T, std::byte> && !std::is_same_v<T, unsigned char>)
struct Codec<std::vector<T>> {
  static std::string encode(const std::vector<T>& v) {
    std::string out;
    for (const auto& e : v) detail::put_item(out, Codec<T>::encode(e));
    return out;
  }
  static bool decode(std::string_view s, std::vector<T>& out) {
    out.clear();
    size_t pos = 0;
    while (pos < s.size()) {
      std::string_view item;
      if (!detail::get_item(s, pos, item)) return false;
      T v{};
      if (!Codec<T>::decode(item, v)) return false;
      out.push_back(std::move(v));
    }
    return true;
  }
};

template <typename K, typename V>
  requires(HasCodec<K> && HasCodec<V>)
struct Codec<std::map<K, V>> {
  static std::string encode(const std::map<K, V>& m) {
    std::string out;
    for (const auto& [k, v] : m) {
      detail::put_item(out, Codec<K>::encode(k));
      detail::put_item(out, Codec<V>::encode(v));
    }
    return out;
  }
  static bool decode(std::string_view s, std::map<K, V>& out) {
    out.clear();
    size_t pos = 0;
    while (pos < s.size()) {
      std::string_view ks, vs;
      if (!detail::get_item(s, pos, ks) || !detail::get_item(s, pos, vs)) return false;
      K k{};
      V v{};
      if (!Codec<K>::decode(ks, k) || !Codec<V>::decode(vs, v)) return false;
      out.emplace(std::move(k), std::move(v));
    }
    return true;
  }
};

}  // namespace culvert
