// Engine machinery behind the typed task handles of <culvert/flow.hpp>: how task
// functions are stored type-erased, how values are encoded for storage, and the
// compile-time checks behind .result(), .target() and .cache_for(). Not part of the
// user's API; included by <culvert/flow.hpp> only.
#pragma once

#include <any>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <culvert/codec.hpp>

namespace culvert {

class TaskContext;
template <typename T> class Task;
template <typename T> class Param;

namespace detail {

// Where a task's input comes from: an upstream task's value or a parameter.
struct InputRef {
  uint32_t index = 0;
  bool is_param = false;
};

// Codecs of a task's value as functions: usually the address of encode_any<T> /
// decode_any<T>; language bindings give closures over their own serializer.
using AnyEncode = std::function<std::string(const std::any&)>;
using AnyDecode = std::function<bool(std::string_view, std::any&)>;
struct ValueOps {
  AnyEncode encode = nullptr;
  AnyDecode decode = nullptr;
  bool has_value = false;  // false for void tasks
};
using Body = std::function<void(TaskContext&, const std::any* const* inputs, std::any& out)>;
struct MapOps {
  size_t (*size)(const std::any&) = nullptr;
  std::function<void(TaskContext&, const std::any& in, size_t i, std::any& out)> body;
  std::any (*gather)(std::vector<std::any>& outs) = nullptr;  // null for void results
  std::any (*slice)(const std::any& in, size_t i) = nullptr;  // a vector of element i alone
  // A distributed map's chunks (<culvert/distribute.hpp>): the elements [begin, end) of
  // the input as bytes, and such bytes back as an input value holding those elements.
  // Null when the elements have no codec.
  std::function<std::string(const std::any& in, size_t begin, size_t end)> encode_range;
  AnyDecode decode_input;
};
using ParamParse = bool (*)(std::string_view, std::any&);

template <typename T>
std::string encode_any(const std::any& a) {
  return Codec<T>::encode(*std::any_cast<T>(&a));
}
template <typename T>
bool decode_any(std::string_view s, std::any& a) {
  T v{};
  if (!Codec<T>::decode(s, v)) return false;
  a = std::move(v);
  return true;
}
template <typename T>
ValueOps value_ops() {
  if constexpr (std::is_void_v<T>) {
    return {};
  } else if constexpr (HasCodec<T> && std::is_default_constructible_v<T>) {
    return {&encode_any<T>, &decode_any<T>, true};
  } else {
    return {nullptr, nullptr, true};
  }
}
template <typename T>
AnyEncode encoder() {
  if constexpr (HasCodec<T>) return &encode_any<T>; else return nullptr;
}

template <typename A> struct source_traits {};
template <typename U> struct source_traits<Task<U>> { using type = U; };
template <typename U> struct source_traits<Param<U>> { using type = U; };
template <typename A>
concept Source = requires { typename source_traits<std::remove_cvref_t<A>>::type; };
template <typename A>
using source_value_t = typename source_traits<std::remove_cvref_t<A>>::type;

template <typename F, typename... Us>
inline constexpr bool takes_ctx_v = std::is_invocable_v<const F&, TaskContext&, const Us&...>;
template <typename F, typename... Us>
inline constexpr bool callable_v =
    takes_ctx_v<F, Us...> || std::is_invocable_v<const F&, const Us&...>;
template <typename F, typename... Us>
using task_result_t = std::decay_t<typename std::conditional_t<
    takes_ctx_v<F, Us...>, std::invoke_result<const F&, TaskContext&, const Us&...>,
    std::invoke_result<const F&, const Us&...>>::type>;

template <typename R, typename F, typename... Us>
void call_into(const F& fn, TaskContext& ctx, std::any& out, const Us&... args) {
  if constexpr (std::is_void_v<R>) {
    if constexpr (takes_ctx_v<F, Us...>) fn(ctx, args...); else fn(args...);
  } else {
    if constexpr (takes_ctx_v<F, Us...>) out.emplace<R>(fn(ctx, args...));
    else out.emplace<R>(fn(args...));
  }
}

template <typename R, typename F, typename... Us, size_t... I>
void invoke_task(const F& fn, TaskContext& ctx, const std::any* const* in, std::any& out,
                 std::index_sequence<I...>) {
  (void)in;
  call_into<R, F, Us...>(fn, ctx, out, *std::any_cast<Us>(in[I])...);
}

template <typename V>
size_t vector_size(const std::any& a) { return std::any_cast<V>(&a)->size(); }
template <typename V>
std::any vector_slice(const std::any& a, size_t i) { return std::any(V{(*std::any_cast<V>(&a))[i]}); }

template <typename V>
std::string vector_encode_range(const std::any& a, size_t begin, size_t end) {
  const V& v = *std::any_cast<V>(&a);
  return Codec<V>::encode(V(v.begin() + static_cast<std::ptrdiff_t>(begin), v.begin() + static_cast<std::ptrdiff_t>(end)));
}

template <typename R>
std::any gather(std::vector<std::any>& outs) {
  std::vector<R> v;
  v.reserve(outs.size());
  for (auto& o : outs) v.push_back(std::move(*std::any_cast<R>(&o)));
  return std::any(std::move(v));
}

template <typename T> struct is_vector : std::false_type {};
template <typename E, typename A> struct is_vector<std::vector<E, A>> : std::true_type {};

// The type whose codec decides whether T can be stored: T, or the element of a vector
// (a vector's codec exists when its element's does).
template <typename T> struct stored_element { using type = T; };
template <typename E, typename A>
  requires(!std::is_same_v<E, std::byte> && !std::is_same_v<E, unsigned char>)
struct stored_element<std::vector<E, A>> : stored_element<E> {};

// Compile-time check behind .result(), .target() and .cache_for(): the task's value
// type has a codec with the expected members. Each message names what to write.
template <typename T>
constexpr bool check_storable() {
  if constexpr (!std::is_void_v<T>) {
    using E = typename stored_element<T>::type;
    static_assert(CodecDefined<E> || HasCodec<E>,
                  "culvert: .result(), .target() and .cache_for() store the task's value, and its type T has "
                  "no codec. Give it one: specialize culvert::Codec<T> with "
                  "'static std::string encode(const T&)' and 'static bool decode(std::string_view, T&)', "
                  "or give T nlohmann's 'void to_json(nlohmann::json&, const T&)' and "
                  "'void from_json(const nlohmann::json&, T&)' and include <culvert/json.hpp>");
    static_assert(!CodecDefined<E> || HasCodec<E>,
                  "culvert: culvert::Codec<T> does not have the expected signature; it needs "
                  "'static std::string encode(const T&)' and 'static bool decode(std::string_view, T&)' "
                  "(decode returns false for malformed bytes)");
    static_assert(std::is_default_constructible_v<E>,
                  "culvert: .result(), .target() and .cache_for() need a default-constructible value type "
                  "(Codec<T>::decode(std::string_view, T&) fills a T{})");
  }
  return true;
}

}  // namespace detail

// Parses a parameter's text value into a T (the parameter types of Flow::parameter).
namespace detail {
template <typename T>
bool parse_param(std::string_view s, std::any& out) {
  T v{};
  if constexpr (std::is_same_v<T, bool>) {
    if (s == "true" || s == "1" || s == "yes") v = true;
    else if (s == "false" || s == "0" || s == "no") v = false;
    else return false;
  } else if constexpr (std::is_same_v<T, std::string>) {
    v.assign(s);
  } else {
    if (!Codec<T>::decode(s, v)) return false;
  }
  out = std::move(v);
  return true;
}
}  // namespace detail

}  // namespace culvert
