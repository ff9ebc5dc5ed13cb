// The chunk outcome encoding of <culvert/distribute.hpp>: a version line, then four
// framed items per element (state name, attempts, message, value).
#include <culvert/distribute.hpp>

#include <charconv>

#include <culvert/detail/codec_framing.hpp>

namespace culvert {

namespace {
constexpr std::string_view kHeader = "culvert-chunk-outcomes 1\n";
}

std::string encode_chunk_outcomes(const std::vector<ElementOutcome>& outcomes) {
  std::string out(kHeader);
  for (const auto& o : outcomes) {
    detail::put_item(out, state_name(o.state));
    detail::put_item(out, std::to_string(o.attempts));
    detail::put_item(out, o.message);
    detail::put_item(out, o.value);
  }
  return out;
}

Result<std::vector<ElementOutcome>> decode_chunk_outcomes(std::string_view bytes, size_t expected) {
  if (!bytes.starts_with(kHeader))
    return invalid_argument("not a chunk's outcomes (it does not begin with '" +
                            std::string(kHeader.substr(0, kHeader.size() - 1)) + "')");
  std::vector<ElementOutcome> out;
  out.reserve(expected);
  size_t pos = kHeader.size();
  while (pos < bytes.size()) {
    std::string_view state, attempts, message, value;
    if (!detail::get_item(bytes, pos, state) || !detail::get_item(bytes, pos, attempts) ||
        !detail::get_item(bytes, pos, message) || !detail::get_item(bytes, pos, value))
      return invalid_argument("the chunk's outcomes are cut short or malformed after element " +
                              std::to_string(out.size()));
    ElementOutcome o;
    auto s = parse_state(state);
    if (!s) return invalid_argument("element " + std::to_string(out.size()) + " has an unknown state '" +
                                    std::string(state.substr(0, 32)) + "'");
    o.state = *s;
    auto r = std::from_chars(attempts.data(), attempts.data() + attempts.size(), o.attempts);
    if (r.ec != std::errc() || r.ptr != attempts.data() + attempts.size() || o.attempts < 0)
      return invalid_argument("element " + std::to_string(out.size()) + " has a malformed attempt count");
    o.message.assign(message);
    o.value.assign(value);
    out.push_back(std::move(o));
    if (out.size() > expected) break;
  }
  if (out.size() != expected)
    return invalid_argument("the chunk's outcomes hold " + std::string(out.size() > expected ? "more than " : "") +
                            std::to_string(out.size()) + " elements, not " + std::to_string(expected));
  return out;
}

}  // namespace culvert
