#include "runner_image.hpp"

#include <sstream>

namespace culvert::e2e {

std::set<std::string> shared_libraries(Sandbox& sb, const std::string& binary) {
  auto r = sb.run({"/usr/bin/ldd", binary});
  std::set<std::string> libs;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto arrow = line.find("=> ");
    std::string path;
    if (arrow != std::string::npos) path = line.substr(arrow + 3);
    else if (auto first = line.find_first_not_of(" \t"); first != std::string::npos) path = line.substr(first);
    path = path.substr(0, path.find(' '));
    if (!path.empty() && path[0] == '/') libs.insert(path);
  }
  return libs;
}

Status build_runner_image(Sandbox& sb, docker::DockerClient& docker, const std::string& tag,
                          const std::vector<std::string>& flow_binaries) {
  std::vector<docker::TarEntry> files;
  files.push_back({"Dockerfile", "FROM scratch\nCOPY . /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n", 0644});
  files.push_back({"usr/local/bin/culvert", read_file(culvert_binary()), 0755});
  std::set<std::string> libs = shared_libraries(sb, culvert_binary());
  for (const auto& b : flow_binaries)
    for (const auto& l : shared_libraries(sb, b)) libs.insert(l);
  for (const auto& l : libs) files.push_back({l.substr(1), read_file(l), 0755});
  files.push_back({"tmp/.keep", "", 0644});
  auto built = docker.build_image(docker::make_tar(files), tag);
  if (!built) return built.status();
  return Status::ok();
}

}  // namespace culvert::e2e
