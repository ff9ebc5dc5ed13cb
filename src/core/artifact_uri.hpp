// The shape of an artifact URI, checked where a flow version is registered (the
// server) and where an artifact is fetched: a flow's artifact is chosen by whoever
// registers it and read by every agent that runs it, so only two forms are accepted.
//
//   file:///ABSOLUTE/PATH      a local or shared file system
//   s3://BUCKET/KEY            BUCKET: 3-63 characters a-z 0-9 . -; KEY not empty
//
// and, in both: at most kMaxArtifactUriLength bytes, no NUL or other control bytes
// (0x00-0x1f, 0x7f), no `.` or `..` path segment (also not percent-encoded), no
// backslash. Pure function; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include <culvert/status.hpp>

namespace culvert {

inline constexpr size_t kMaxArtifactUriLength = 2048;

// OK, or Unprocessable saying what is wrong (without naming a field: callers add it).
Status check_artifact_uri(std::string_view uri);

// The kinds of artifact a flow version may have (the description's "artifact_kind",
// docs/FORMATS.md): what `culvert execute` runs and how. A description without one is
// a flow binary's.
inline constexpr std::string_view kDefaultArtifactKind = "binary";
inline constexpr std::array<std::string_view, 4> kArtifactKinds = {"binary", "python", "python-package", "yaml"};
inline bool is_artifact_kind(std::string_view kind) {
  for (auto k : kArtifactKinds)
    if (k == kind) return true;
  return false;
}

}  // namespace culvert
