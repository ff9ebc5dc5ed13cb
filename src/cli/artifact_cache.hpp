// Where `culvert execute` keeps the artifacts it fetches.
#pragma once

#include <string>

#include <culvert/status.hpp>

#include "client/profile.hpp"

namespace culvert::cli {

// $CULVERT_ARTIFACT_CACHE when set; else $HOME/.culvert/artifacts when that folder can
// be created and written; else ${TMPDIR:-/tmp}/culvert-UID/artifacts (created 0700 and
// owned by this user), for containers whose HOME is missing or read-only. Every cached
// artifact is hashed again before it runs, so no location is trusted blindly.
// Unavailable names every place tried when none is writable.
Result<std::string> artifact_cache_dir(const client::EnvLookup& env);

}  // namespace culvert::cli
