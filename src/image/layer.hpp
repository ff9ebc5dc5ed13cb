// The image layer that adds Culvert to any Linux x86-64 image (docs/IMAGES.md), and
// `culvert image build`: that layer on a base image, through the Docker Engine API.
//
// The layer is one folder, /opt/culvert, that needs nothing of the image it lands on:
//   bin/culvert       a static launcher (src/image/launch.cpp): runs libexec/culvert
//                     through lib/'s loader, with CULVERT_LAYER=/opt/culvert
//   libexec/culvert   the culvert program
//   lib/              the dynamic loader (ld-linux-x86-64.so.2) and every shared library
//                     culvert loads (glibc, libstdc++, libcurl, OpenSSL, ...): a superset
//                     of what a flow binary built against the SDK loads; `culvert execute`
//                     starts flow binaries through this loader too
//   layer.json        what the layer holds (format, version, files)
// plus /tmp (mode 1777), which `culvert execute` may use for its artifact cache.
// Further parts (a Python package, say) are added as folders of their own beside these.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <culvert/status.hpp>

#include "agent/docker/docker_client.hpp"

namespace culvert::image {

inline constexpr const char* kLayerRoot = "/opt/culvert";
inline constexpr const char* kLoaderName = "ld-linux-x86-64.so.2";
// The PATH of an image whose base sets none.
inline constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Where the layer's files come from (host paths).
struct LayerSources {
  std::string program;                 // the culvert binary
  std::string launcher;                // the static launcher
  std::string loader;                  // the dynamic loader culvert was started by
  std::vector<std::string> libraries;  // shared libraries, each put in lib/ under its file name
  std::string version;                 // culvert's version, for layer.json and the image label
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// The sources for the running culvert: this program, the launcher installed beside it
// (culvert-launch in its folder, or ../libexec/culvert/), and the loader and libraries
// loaded into this process. Run from a layer (CULVERT_LAYER set), that layer's own files.
// NotFound names what is missing (a build without the launcher, say).
Result<LayerSources> sources_of_this_process(const EnvLookup& env, const std::string& version);

// One entry of the layer: its path in the image (relative, "opt/culvert/lib/libc.so.6"),
// and either a host file to copy or the bytes themselves.
struct LayerEntry {
  std::string path;
  docker::TarEntry::Type type = docker::TarEntry::Type::kFile;
  int mode = 0644;
  std::string source;   // a host file (kFile), or "" when `content` holds the bytes
  std::string content;
};

// Every entry of the layer, directories first. InvalidArgument for a library whose file
// name is too long for the archive.
Result<std::vector<LayerEntry>> layer_entries(const LayerSources& sources);

// Writes the layer under `dir` (DIR/opt/culvert/..., DIR/tmp): `COPY DIR/ /` in a
// Dockerfile adds it. `dir` is created; an existing layer there is replaced.
Status write_layer(const std::vector<LayerEntry>& entries, const std::string& dir);

// The Dockerfile that adds a layer written to CONTEXT_DIR of the build context to `base`.
std::string dockerfile(const std::string& base, const std::string& base_path, const std::string& context_dir,
                       const std::string& version);

// Further parts of the layer (the Python package, python_part.hpp): entries beside
// /opt/culvert's own, and environment variables the image gets (ENV NAME=VALUE).
struct LayerExtras {
  std::vector<LayerEntry> entries;
  std::vector<std::pair<std::string, std::string>> env;
};

struct BuildOutcome {
  std::string image_id;
  size_t files = 0;
  uint64_t bytes = 0;
  std::string path_env;  // the image's PATH
};

// `culvert image build`: checks the daemon and the base (present, linux/amd64), then
// builds TAG = BASE + the layer. Unavailable when the daemon cannot be reached,
// NotFound when the base is not on it, InvalidArgument for a base of another platform
// or a build the daemon refuses.
Result<BuildOutcome> build_image(docker::DockerClient& docker, const std::string& base, const std::string& tag,
                                 const LayerSources& sources, const LayerExtras& extras = {});

}  // namespace culvert::image
