#include "image/layer.hpp"

#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace culvert::image {
namespace {

namespace fs = std::filesystem;
using Type = docker::TarEntry::Type;

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return buf;
}

// The shared objects loaded into this process, by the paths they were loaded from
// (the main program and the vDSO have no path and are left out).
std::vector<std::string> loaded_objects() {
  std::vector<std::string> out;
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        auto* list = static_cast<std::vector<std::string>*>(data);
        if (info->dlpi_name != nullptr && info->dlpi_name[0] == '/') list->emplace_back(info->dlpi_name);
        return 0;
      },
      &out);
  return out;
}

bool is_executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

Result<std::string> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) return internal_error("cannot read " + path);
  return ss.str();
}

}  // namespace

Result<LayerSources> sources_of_this_process(const EnvLookup& env, const std::string& version) {
#if !defined(__x86_64__)
  return invalid_argument("culvert image: this culvert is not an x86-64 build; the layer is for linux/amd64 images");
#endif
  LayerSources s;
  s.version = version;
  std::string loader_path;
  for (const auto& obj : loaded_objects()) {
    std::string name = fs::path(obj).filename().string();
    if (name == kLoaderName) loader_path = obj;
    else s.libraries.push_back(obj);
  }
  if (loader_path.empty()) return not_found(std::string("culvert image: no ") + kLoaderName + " is loaded into this process");
  s.loader = loader_path;
  if (auto layer = env("CULVERT_LAYER"); layer && !layer->empty()) {
    // Run from a layer: copy that layer (its program; the launcher that started it).
    s.program = *layer + "/libexec/culvert";
    s.launcher = *layer + "/bin/culvert";
  } else {
    s.program = self_exe();
    fs::path dir = fs::path(s.program).parent_path();
    for (const fs::path& p : {dir / "culvert-launch", dir / ".." / "libexec" / "culvert" / "culvert-launch"})
      if (is_executable_file(p)) {
        s.launcher = fs::weakly_canonical(p).string();
        break;
      }
    if (s.launcher.empty())
      return not_found("culvert image: the layer's launcher (culvert-launch) is not installed beside " + s.program +
                       " (looked in " + dir.string() + " and " + (dir / ".." / "libexec" / "culvert").string() + ")");
  }
  for (const auto& p : {s.program, s.launcher})
    if (!is_executable_file(p)) return not_found("culvert image: " + p + " is missing or not executable");
  return s;
}

Result<std::vector<LayerEntry>> layer_entries(const LayerSources& s) {
  const std::string root = std::string(kLayerRoot).substr(1);  // "opt/culvert"
  std::vector<LayerEntry> out;
  for (const char* d : {"tmp", "opt"}) out.push_back({d, Type::kDirectory, std::string(d) == "tmp" ? 01777 : 0755});
  for (const std::string& d : {root, root + "/bin", root + "/libexec", root + "/lib"})
    out.push_back({d, Type::kDirectory, 0755});
  out.push_back({root + "/bin/culvert", Type::kFile, 0755, s.launcher});
  out.push_back({root + "/libexec/culvert", Type::kFile, 0755, s.program});
  out.push_back({root + "/lib/" + kLoaderName, Type::kFile, 0755, s.loader});
  nlohmann::json libs = nlohmann::json::array();
  std::set<std::string> seen = {kLoaderName};
  for (const auto& lib : s.libraries) {
    std::string name = fs::path(lib).filename().string();
    if (!seen.insert(name).second) continue;
    out.push_back({root + "/lib/" + name, Type::kFile, 0755, lib});
    libs.push_back(name);
  }
  nlohmann::json manifest = {{"format", 1},
                             {"culvert_version", s.version},
                             {"root", kLayerRoot},
                             {"launcher", "bin/culvert"},
                             {"program", "libexec/culvert"},
                             {"loader", std::string("lib/") + kLoaderName},
                             {"libraries", libs}};
  out.push_back({root + "/layer.json", Type::kFile, 0644, "", manifest.dump(2) + "\n"});
  for (const auto& e : out)
    if (e.path.size() + std::string("culvert-layer/").size() >= 100)
      return invalid_argument("culvert image: the layer path " + e.path + " is too long for the archive");
  return out;
}

Status write_layer(const std::vector<LayerEntry>& entries, const std::string& dir) {
  std::error_code ec;
  fs::path base(dir);
  fs::remove_all(base / std::string(kLayerRoot).substr(1), ec);
  for (const auto& e : entries) {
    fs::path to = base / e.path;
    if (e.type == Type::kDirectory) {
      fs::create_directories(to, ec);
      if (ec) return internal_error("cannot create " + to.string() + ": " + ec.message());
    } else if (e.type == Type::kFile) {
      if (!e.source.empty()) {
        // Copy what the path names (a library's symbolic link is followed).
        fs::copy_file(e.source, to, fs::copy_options::overwrite_existing, ec);
        if (ec) return internal_error("cannot copy " + e.source + " to " + to.string() + ": " + ec.message());
      } else {
        std::ofstream f(to, std::ios::binary | std::ios::trunc);
        if (!f || !(f << e.content)) return internal_error("cannot write " + to.string());
      }
    }
    if (::chmod(to.c_str(), static_cast<mode_t>(e.mode)) != 0)
      return internal_error("cannot set the mode of " + to.string() + ": " + std::strerror(errno));
  }
  return Status::ok();
}

std::string dockerfile(const std::string& base, const std::string& base_path, const std::string& context_dir,
                       const std::string& version) {
  return "FROM " + base + "\n" + "COPY " + context_dir + "/ /\n" + "ENV PATH=" + std::string(kLayerRoot) + "/bin:" +
         (base_path.empty() ? std::string(kDefaultPath) : base_path) + "\n" + "LABEL org.culvert.version=\"" +
         version + "\"\n";
}

Result<BuildOutcome> build_image(docker::DockerClient& docker, const std::string& base, const std::string& tag,
                                 const LayerSources& sources, const LayerExtras& extras) {
  if (base.empty()) return invalid_argument("--base IMAGE is required");
  if (tag.empty()) return invalid_argument("--tag TAG is required");
  if (Status ping = docker.ping(); !ping) return ping;
  auto info = docker.inspect_image(base);
  if (!info) {
    if (info.status().code() == StatusCode::kNotFound)
      return not_found("base image '" + base + "' is not on the Docker daemon at unix://" + docker.socket_path() +
                       ": pull it (docker pull " + base + ") or import it (docker import) there first");
    return info.status();
  }
  if (info->os != "linux" || info->architecture != "amd64")
    return invalid_argument("base image '" + base + "' is " + info->os + "/" + info->architecture +
                            ": the Culvert layer is for linux/amd64 (x86-64) images only");
  std::string base_path;
  for (const auto& kv : info->env)
    if (kv.starts_with("PATH=")) base_path = kv.substr(5);
  auto entries = layer_entries(sources);
  if (!entries) return entries.status();
  entries->insert(entries->end(), extras.entries.begin(), extras.entries.end());
  BuildOutcome outcome;
  std::vector<docker::TarEntry> tar;
  const std::string context_dir = "culvert-layer";
  // The base by its id: what was checked is what is built on.
  std::string file = dockerfile(info->id, base_path, context_dir, sources.version);
  for (const auto& [k, v] : extras.env) file += "ENV " + k + "=" + v + "\n";
  tar.push_back({"Dockerfile", std::move(file), 0644});
  for (const auto& e : *entries) {
    docker::TarEntry t{context_dir + "/" + e.path, e.content, e.mode, e.type};
    if (e.type == Type::kFile && !e.source.empty()) {
      auto bytes = read_all(e.source);
      if (!bytes) return bytes.status();
      t.content = std::move(*bytes);
    }
    if (e.type == Type::kFile) {
      ++outcome.files;
      outcome.bytes += t.content.size();
    }
    tar.push_back(std::move(t));
  }
  outcome.path_env = std::string(kLayerRoot) + "/bin:" + (base_path.empty() ? std::string(kDefaultPath) : base_path);
  auto built = docker.build_image(docker::make_tar(tar), tag);
  if (!built) return built.status();
  outcome.image_id = *built;
  return outcome;
}

}  // namespace culvert::image
