// The Python part of the image layer: finding the package, probing the base's python3,
// the ABI check and the layer entries (python_part.hpp).
#include "image/python_part.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace culvert::image {
namespace fs = std::filesystem;
namespace {

// "_culvert.cpython-311-x86_64-linux-gnu.so" -> "3.11"; "" when the name says no version.
std::string version_of_extension(const std::string& name) {
  const std::string tag = ".cpython-";
  size_t at = name.find(tag);
  if (at == std::string::npos) return {};
  size_t start = at + tag.size();
  size_t end = name.find('-', start);
  std::string digits = name.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (digits.size() < 2 || digits.find_first_not_of("0123456789") != std::string::npos) return {};
  return digits.substr(0, 1) + "." + digits.substr(1);
}

Result<PythonPackage> package_in(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "__init__.py", ec)) return not_found(dir.string());
  PythonPackage p;
  p.dir = dir.string();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    if (name.ends_with(".py")) {
      p.files.push_back(name);
    } else if (name.starts_with("_culvert.") && name.ends_with(".so")) {
      p.files.push_back(name);
      p.python_version = version_of_extension(name);
    }
  }
  if (p.python_version.empty())
    return not_found(dir.string() + " has no extension module (_culvert.cpython-*.so)");
  std::sort(p.files.begin(), p.files.end());
  return p;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// "2.36" < "2.37"; numeric by part.
bool version_at_least(const std::string& have, const std::string& want) {
  std::istringstream a(have), b(want);
  for (;;) {
    std::string x, y;
    bool more_a = static_cast<bool>(std::getline(a, x, '.'));
    bool more_b = static_cast<bool>(std::getline(b, y, '.'));
    if (!more_b) return true;
    if (!more_a) return false;
    long xi = std::strtol(x.c_str(), nullptr, 10), yi = std::strtol(y.c_str(), nullptr, 10);
    if (xi != yi) return xi > yi;
  }
}

const char kProbe[] =
    "import sys, platform; print('%d.%d' % sys.version_info[:2]); print(' '.join(platform.libc_ver()))";

}  // namespace

Result<PythonPackage> find_python_package(const EnvLookup& env, const std::string& program) {
  std::vector<fs::path> looked;
  if (auto p = env("CULVERT_PYTHON_PACKAGE"); p && !p->empty()) {
    auto found = package_in(*p);
    if (!found) return not_found("culvert image: $CULVERT_PYTHON_PACKAGE: " + found.status().message());
    return found;
  }
  if (auto layer = env("CULVERT_LAYER"); layer && !layer->empty()) looked.push_back(fs::path(*layer) / "python" / "culvert");
  fs::path dir = fs::path(program).parent_path();
  looked.push_back(dir / "python" / "culvert");  // a build tree: build/culvert, build/python/culvert
  std::error_code ec;
  fs::path lib = dir / ".." / "lib";             // an installed prefix: bin/culvert, lib/python3.X/...
  if (fs::is_directory(lib, ec))
    for (const auto& e : fs::directory_iterator(lib, ec))
      if (e.path().filename().string().starts_with("python3"))
        looked.push_back(e.path() / "dist-packages" / "culvert");
  std::string where;
  for (const auto& p : looked) {
    auto found = package_in(p);
    if (found) return found;
    where += (where.empty() ? "" : ", ") + fs::weakly_canonical(p, ec).string();
  }
  return not_found("culvert image: --python: the culvert Python package is not installed beside " + program +
                   " (looked in " + where + "; build Culvert with pybind11-dev and python3-dev, or set "
                   "CULVERT_PYTHON_PACKAGE to its folder)");
}

Result<BasePython> parse_python_probe(const std::string& output) {
  auto lines = split_lines(output);
  if (lines.empty() || lines[0].find('.') == std::string::npos ||
      lines[0].find_first_not_of("0123456789.") != std::string::npos)
    return invalid_argument("unexpected answer from python3: '" + output.substr(0, 200) + "'");
  BasePython p;
  p.version = lines[0];
  if (lines.size() > 1) {
    auto sp = lines[1].find(' ');
    p.libc = lines[1].substr(0, sp);
    if (sp != std::string::npos) p.libc_version = lines[1].substr(sp + 1);
  }
  return p;
}

Result<BasePython> probe_base_python(docker::DockerClient& docker, const std::string& image, const std::string& base) {
  docker::ContainerSpec spec;
  spec.image = image;
  spec.entrypoint = {"python3", "-c", kProbe};
  spec.network_mode = "none";
  spec.labels = {{"org.culvert.probe", "python"}};
  auto id = docker.create(spec);
  if (!id) return id.status();
  struct Remove {
    docker::DockerClient& d;
    const std::string& id;
    ~Remove() { (void)d.remove(id, true); }
  } remove{docker, *id};
  const std::string none = "base image '" + base + "' has no python3 that runs (on its PATH)";
  if (Status st = docker.start(*id); !st)
    return invalid_argument(none + ": " + st.message() + "; the culvert Python package needs the base's own Python");
  auto code = docker.wait(*id);
  if (!code) return code.status();
  auto lines = docker.logs(*id);
  if (!lines) return lines.status();
  std::string out, err;
  for (const auto& l : *lines) (l.stream == docker::LogStream::kStdout ? out : err) += l.text + "\n";
  if (*code != 0)
    return invalid_argument(none + ": python3 exited with status " + std::to_string(*code) +
                            (err.empty() ? "" : ": " + err.substr(0, 500)));
  auto parsed = parse_python_probe(out);
  if (!parsed) return invalid_argument("base image '" + base + "': " + parsed.status().message());
  return parsed;
}

Status check_python_abi(const std::string& base, const BasePython& python, const PythonPackage& package,
                        const std::string& layer_glibc) {
  if (python.version != package.python_version)
    return invalid_argument("base image '" + base + "' has Python " + python.version +
                            ", but the culvert Python package's extension is built for Python " +
                            package.python_version + ": use a base with Python " + package.python_version +
                            ", or build Culvert against the base's Python (its python3-dev)");
  if (python.libc != "glibc")
    return invalid_argument("base image '" + base + "' has Python " + python.version + " on " +
                            (python.libc.empty() ? std::string("a C library other than glibc (musl?)") : python.libc) +
                            ": the culvert Python package's extension needs glibc " + layer_glibc + " or newer");
  if (!version_at_least(python.libc_version, layer_glibc))
    return invalid_argument("base image '" + base + "' has glibc " + python.libc_version +
                            ": the culvert Python package's extension needs glibc " + layer_glibc +
                            " or newer (the layer's libraries are built against it)");
  return Status::ok();
}

LayerExtras python_extras(const PythonPackage& package, const std::string& base_pythonpath) {
  LayerExtras x;
  const std::string root = std::string(kPythonRoot).substr(1);  // "opt/culvert/python"
  x.entries.push_back({root, docker::TarEntry::Type::kDirectory, 0755});
  x.entries.push_back({root + "/culvert", docker::TarEntry::Type::kDirectory, 0755});
  for (const auto& f : package.files)
    x.entries.push_back({root + "/culvert/" + f, docker::TarEntry::Type::kFile, f.ends_with(".so") ? 0755 : 0644,
                         (fs::path(package.dir) / f).string()});
  x.env.push_back({"PYTHONPATH", std::string(kPythonRoot) + (base_pythonpath.empty() ? "" : ":" + base_pythonpath)});
  return x;
}

}  // namespace culvert::image
