// The `culvert` of an image layer (/opt/culvert/bin/culvert), linked statically so that
// it runs on any Linux x86-64 image, whatever libc it has (or none). It runs the real
// program, ROOT/libexec/culvert, through the layer's own dynamic loader and libraries
// (ROOT/lib), and tells it so with CULVERT_LAYER=ROOT, where ROOT is the folder above
// this program's bin/ (/opt/culvert when it cannot tell). Nothing else is changed: the
// image's own programs (a shell, python3) keep loading the image's own libraries.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string root = "/opt/culvert";
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    if (dir.size() > 4 && dir.ends_with("/bin")) root = dir.substr(0, dir.size() - 4);
  }
  std::string loader = root + "/lib/ld-linux-x86-64.so.2";
  std::string libs = root + "/lib";
  std::string program = root + "/libexec/culvert";
  ::setenv("CULVERT_LAYER", root.c_str(), 1);
  std::vector<char*> args = {loader.data(), const_cast<char*>("--library-path"), libs.data(),
                             const_cast<char*>("--argv0"), argc > 0 ? argv[0] : program.data(), program.data()};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  ::execv(loader.c_str(), args.data());
  std::fprintf(stderr, "culvert: cannot start %s (the layer's loader): %s\n", loader.c_str(), std::strerror(errno));
  return 127;
}
