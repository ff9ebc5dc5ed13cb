// Parsing JSON that crosses a process or network boundary, with its nesting bounded.
//
// nlohmann's parser itself is iterative, but copying, comparing and dumping a value
// recurse once per level: a body of 100,000 nested arrays (~200 KB) overflows a
// thread's stack in any of them. Every JSON text that comes from outside (request
// bodies, server answers, stored values read back) is therefore parsed through here,
// which refuses text nested deeper than a limit before building anything.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include <culvert/status.hpp>

namespace culvert {

// The nesting limit of a request body: arrays and objects inside one another, the
// outermost counting 1 (documented in docs/SERVER.md).
inline constexpr size_t kMaxJsonDepth = 64;
// The limit for answers of the server (a stored value of depth kMaxJsonDepth sits a few
// levels down in an answer, e.g. a run's parameters inside a listing).
inline constexpr size_t kMaxAnswerJsonDepth = 2 * kMaxJsonDepth;

// The deepest nesting of arrays and objects in `text` (0 for a scalar); stops scanning
// once `limit` is exceeded and returns limit + 1. Brackets inside strings do not count.
// One pass, no recursion, no allocation; on text that is not JSON the result is only
// meaningful for the prefix a parser would accept.
size_t json_nesting_depth(std::string_view text, size_t limit);

// Parses `text` as JSON. InvalidArgument when it is not JSON, or when it nests arrays
// and objects deeper than `max_depth` (the message names the limit).
Result<nlohmann::json> parse_json_bounded(std::string_view text, size_t max_depth = kMaxJsonDepth);

// How a JSON value's type reads in an error message: "null", "an object", "an array",
// "a string", "a boolean", "an integer", "a number".
const char* json_type_name(const nlohmann::json& v);

}  // namespace culvert
