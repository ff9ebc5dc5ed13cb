// The web UI's files, embedded into the server at build time.
//
// CMake runs `culvert_ui_embed` (ui_embed.cpp) over web/ and compiles the .cpp it
// writes: each file's bytes, their gzip (made at build time, so serving compresses
// nothing) and an ETag. The files live under ui_asset_base() ("/assets/<hash>", the
// hash of every file together, so a new build is a new URL and the files may be cached
// for good); index.html refers to them through that base. Plain immutable data.
#pragma once

#include <span>
#include <string_view>

namespace culvert::server {

struct UiAsset {
  std::string_view path;          // "index.html", "app/main.js", "vendor/preact.mjs"
  std::string_view content_type;  // "text/javascript; charset=utf-8", ...
  std::string_view body;          // the file's bytes (index.html with its base filled in)
  std::string_view gzip;          // the same, gzip-compressed
  std::string_view etag;          // "\"<first 32 hex digits of the SHA-256 of body>\""
};

// Every embedded file, sorted by path.
std::span<const UiAsset> ui_assets();
// "/assets/<16 hex digits>": where the files are served.
std::string_view ui_asset_base();

}  // namespace culvert::server
