// JSON text without a DOM: the escaping that the engine's JsonWriter and the server's
// direct renderers (hot paths) share.
#pragma once

#include <string>
#include <string_view>

namespace culvert {

// Appends `s` as a quoted JSON string literal (quotes, backslashes and control
// characters escaped).
void append_json_string(std::string& out, std::string_view s);

}  // namespace culvert
