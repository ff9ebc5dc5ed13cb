// Where `culvert execute` keeps the artifacts it fetches (and where a local agent looks
// for them to start a cached one directly).
#pragma once

#include <string>

#include <culvert/status.hpp>

#include <functional>
#include <optional>

namespace culvert::storage {

// Reads an environment variable (nullopt when unset).
using ArtifactCacheEnv = std::function<std::optional<std::string>(const std::string&)>;

// $CULVERT_ARTIFACT_CACHE when set; else $HOME/.culvert/artifacts when that folder can
// be created and written; else ${TMPDIR:-/tmp}/culvert-UID/artifacts (created 0700 and
// owned by this user), for containers whose HOME is missing or read-only. Every cached
// artifact is hashed again before it runs, so no location is trusted blindly.
// Unavailable names every place tried when none is writable.
Result<std::string> artifact_cache_dir(const ArtifactCacheEnv& env);

}  // namespace culvert::storage
