// JSON text without a DOM: the escaping that the engine's JsonWriter and the server's
// direct renderers (hot paths) share; and the one cut of long messages.
#pragma once

#include <string>
#include <string_view>

namespace culvert {

// Appends `s` as a quoted JSON string literal (quotes, backslashes and control
// characters escaped).
void append_json_string(std::string& out, std::string_view s);

// Messages (run states, task-run states, log lines) are cut to this many bytes by the
// server (docs/SERVER.md, "Limits"); the flow process's reporter cuts them the same way
// before sending.
inline constexpr size_t kMaxMessageBytes = 16 * 1024;
// `message` cut to `max` bytes: longer ones are truncated at a UTF-8 boundary and end
// with "… [truncated from N bytes]" (unchanged when it fits). REQUIRES: max >= 64.
std::string bound_message(std::string message, size_t max = kMaxMessageBytes);

}  // namespace culvert
