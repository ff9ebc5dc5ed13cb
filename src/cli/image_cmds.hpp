// `culvert image build` and `culvert image layer` (docs/IMAGES.md): Culvert added to any
// Linux x86-64 image. Callbacks put the exit status into CliContext::exit_code.
#pragma once

#include "cli/client_cmds.hpp"

namespace culvert::cli {

void add_image_commands(CLI::App& app, CliContext& ctx);

}  // namespace culvert::cli
