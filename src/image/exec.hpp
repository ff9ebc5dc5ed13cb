// Replacing this process with a verified flow binary: `fexecve` of its descriptor, or,
// when culvert runs from an image layer (CULVERT_LAYER), the layer's own loader on that
// descriptor, so the binary gets the layer's libc and libraries whatever the image has.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <culvert/status.hpp>

namespace culvert::image {

// Execs the program open on `fd` (its bytes already verified) with argv[0] `argv0` and
// the arguments `args`, in this process's environment. `layer` is $CULVERT_LAYER (the
// layer's root) or empty. Returns only on failure: why, naming the program (and the
// layer's loader). The descriptor stays open for the caller to close.
Status exec_verified(int fd, const std::string& argv0, const std::vector<std::string>& args,
                     const std::optional<std::string>& layer);

}  // namespace culvert::image
