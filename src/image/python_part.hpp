// The Python part of the image layer (`culvert image build --python`, docs/IMAGES.md):
// the `culvert` Python package (docs/PYTHON.md) in /opt/culvert/python, on PYTHONPATH,
// for a base image whose own python3 can load its extension module. The extension is
// built for one Python version (its file name says which, "cpython-311") against the
// GNU C library of the build; it finds culvert's other libraries in /opt/culvert/lib
// (its RPATH is $ORIGIN/../../lib). So the base's python3 must be that version, on
// glibc at least as new as the layer's; otherwise the build is refused, saying why.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <culvert/status.hpp>

#include "agent/docker/docker_client.hpp"
#include "image/layer.hpp"

namespace culvert::image {

inline constexpr const char* kPythonRoot = "/opt/culvert/python";

// The package to add: its folder (culvert/__init__.py, the extension, ...) and the
// Python version its extension is for ("3.11").
struct PythonPackage {
  std::string dir;
  std::string python_version;
  std::vector<std::string> files;  // file names in dir: the .py files and the extension
};

// The package of this culvert: $CULVERT_PYTHON_PACKAGE (its folder), else beside the
// program (a build tree's python/culvert, an installed prefix's
// lib/python3.*/dist-packages/culvert), else the layer's own (run from a layer).
// NotFound saying where it looked.
Result<PythonPackage> find_python_package(const EnvLookup& env, const std::string& program);

// What a base image's python3 is: its version ("3.11") and C library ("glibc", "2.36";
// empty when not glibc).
struct BasePython {
  std::string version;
  std::string libc;
  std::string libc_version;
};

// Parses the probe's output ("3.11\nglibc 2.36\n"). InvalidArgument for anything else.
Result<BasePython> parse_python_probe(const std::string& output);

// Runs the base's python3 once in a container of `image` (an id; removed after) to
// learn what it is. InvalidArgument naming `base` when it has no python3 that runs.
Result<BasePython> probe_base_python(docker::DockerClient& docker, const std::string& image, const std::string& base);

// OK when `base`'s python3 can load `package`'s extension on a layer of glibc
// `layer_glibc` ("2.36"); InvalidArgument saying what differs otherwise.
Status check_python_abi(const std::string& base, const BasePython& python, const PythonPackage& package,
                        const std::string& layer_glibc);

// The layer's additions for `package`: its files under /opt/culvert/python/culvert and
// PYTHONPATH (kept ahead of the base's own, `base_pythonpath`).
LayerExtras python_extras(const PythonPackage& package, const std::string& base_pythonpath);

}  // namespace culvert::image
