#include "image/exec.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "image/layer.hpp"

extern char** environ;

namespace culvert::image {

Status exec_verified(int fd, const std::string& argv0, const std::vector<std::string>& args,
                     const std::optional<std::string>& layer) {
  std::vector<std::string> words;
  std::string loader;
  if (layer && !layer->empty()) {
    // The loader opens the verified descriptor (kept open across the exec), not the path.
    loader = *layer + "/lib/" + kLoaderName;
    if (::access(loader.c_str(), X_OK) != 0)
      return invalid_argument("CULVERT_LAYER=" + *layer + " names no layer (" + loader + ": " + std::strerror(errno) +
                              ")");
    if (::fcntl(fd, F_SETFD, 0) != 0) return internal_error(std::string("fcntl: ") + std::strerror(errno));
    std::string program = "/proc/self/fd/" + std::to_string(fd);
    if (::access(program.c_str(), R_OK) != 0)
      return Status(StatusCode::kUnavailable, "cannot run the artifact " + argv0 + " through " + loader + ": " +
                                                  program + " is not readable (" + std::strerror(errno) +
                                                  "; is /proc mounted?)");
    words = {loader, "--library-path", *layer + "/lib", "--argv0", argv0, program};
  } else {
    words = {argv0};
  }
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  if (loader.empty()) ::fexecve(fd, argv.data(), environ);
  else ::execve(loader.c_str(), argv.data(), environ);
  int e = errno;
  if (loader.empty()) return internal_error("cannot execute the artifact " + argv0 + ": " + std::strerror(e));
  return internal_error("cannot execute the artifact " + argv0 + " through " + loader + ": " + std::strerror(e));
}

}  // namespace culvert::image
