// The framing of <culvert/codec.hpp>'s container codecs: each item is written as
// "<decimal length>:<bytes>". Not part of the user's API.
#pragma once

#include <charconv>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace culvert {

namespace detail {
inline void put_item(std::string& out, std::string_view item) {
  out += std::to_string(item.size());
  out += ':';
  out += item;
}
// Reads one "<len>:<bytes>" item at `pos`; false when malformed.
inline bool get_item(std::string_view s, size_t& pos, std::string_view& item) {
  size_t colon = s.find(':', pos);
  if (colon == std::string_view::npos) return false;
  size_t len = 0;
  auto r = std::from_chars(s.data() + pos, s.data() + colon, len);
  if (r.ec != std::errc() || r.ptr != s.data() + colon || len > s.size() - colon - 1) return false;
  item = s.substr(colon + 1, len);
  pos = colon + 1 + len;
  return true;
}
}  // namespace detail

}  // namespace culvert
