// The image layer: its layout, and that it runs with nothing else on the root
// filesystem (a chroot holding only the layer, so no libc of the "image" at all).
#include "image/layer.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "image/exec.hpp"
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace culvert::image {
namespace {

namespace fs = std::filesystem;
using Type = docker::TarEntry::Type;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempDir {
  TempDir() {
    char t[] = "/tmp/culvert-layer-test-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

TEST(Layer, EntriesLayOutOptCulvertAndTmp) {
  LayerSources s{.program = "/build/culvert", .launcher = "/build/culvert-launch",
                 .loader = "/lib64/ld-linux-x86-64.so.2",
                 .libraries = {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libcurl.so.4",
                               "/other/libc.so.6"},
                 .version = "9.9.9"};
  auto entries = layer_entries(s);
  ASSERT_TRUE(entries) << entries.status().message();
  std::map<std::string, LayerEntry> by_path;
  for (const auto& e : *entries) by_path[e.path] = e;
  EXPECT_EQ(by_path["tmp"].type, Type::kDirectory);
  EXPECT_EQ(by_path["tmp"].mode, 01777);
  EXPECT_EQ(by_path["opt/culvert/bin/culvert"].source, "/build/culvert-launch");
  EXPECT_EQ(by_path["opt/culvert/libexec/culvert"].source, "/build/culvert");
  EXPECT_EQ(by_path["opt/culvert/lib/ld-linux-x86-64.so.2"].source, "/lib64/ld-linux-x86-64.so.2");
  EXPECT_EQ(by_path["opt/culvert/lib/libcurl.so.4"].source, "/usr/lib/x86_64-linux-gnu/libcurl.so.4");
  // One file per name: the first loaded wins.
  EXPECT_EQ(by_path["opt/culvert/lib/libc.so.6"].source, "/lib/x86_64-linux-gnu/libc.so.6");
  auto manifest = nlohmann::json::parse(by_path["opt/culvert/layer.json"].content);
  EXPECT_EQ(manifest["culvert_version"], "9.9.9");
  EXPECT_EQ(manifest["root"], "/opt/culvert");
  EXPECT_EQ(manifest["libraries"], nlohmann::json::array({"libc.so.6", "libcurl.so.4"}));
  // Directories come before what they hold.
  EXPECT_LT(std::find_if(entries->begin(), entries->end(), [](auto& e) { return e.path == "opt/culvert/lib"; }),
            std::find_if(entries->begin(), entries->end(), [](auto& e) { return e.path == "opt/culvert/lib/libc.so.6"; }));
}

TEST(Layer, TheDockerfileAddsTheLayerAndPutsItFirstOnPath) {
  EXPECT_EQ(dockerfile("sha256:abc", "/usr/bin:/bin", "culvert-layer", "1.2.3"),
            "FROM sha256:abc\nCOPY culvert-layer/ /\nENV PATH=/opt/culvert/bin:/usr/bin:/bin\n"
            "LABEL org.culvert.version=\"1.2.3\"\n");
  EXPECT_NE(dockerfile("scratch-base", "", "l", "1").find("ENV PATH=/opt/culvert/bin:/usr/local/sbin:"),
            std::string::npos);
}

// `culvert image layer DIR`, then `culvert version` in a chroot of DIR: the root holds
// the layer alone (no /lib, no libc), so this runs only if the layer is self-contained.
TEST(Layer, TheWrittenLayerRunsCulvertInAnOtherwiseEmptyRoot) {
#ifdef CULVERT_LAUNCHER_IS_DYNAMIC
  GTEST_SKIP() << "sanitizer builds link the launcher dynamically, and the empty root has no libc for it";
#endif
  if (::geteuid() != 0) GTEST_SKIP() << "chroot needs root";
  TempDir t;
  const std::string culvert = std::string(CULVERT_BINARY_DIR) + "/culvert";
  std::string cmd = culvert + " image layer " + (t.path / "root").string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  EXPECT_NE(out.find("COPY "), std::string::npos) << out;
  fs::path root = t.path / "root";
  EXPECT_FALSE(fs::exists(root / "lib"));
  EXPECT_TRUE(fs::exists(root / "opt/culvert/lib/libc.so.6"));
  EXPECT_TRUE(fs::exists(root / "opt/culvert/lib/libcurl.so.4"));
  EXPECT_EQ(fs::status(root / "tmp").permissions() & fs::perms::all, fs::perms::all);
  EXPECT_EQ(slurp(root / "opt/culvert/libexec/culvert"), slurp(culvert));

  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    if (::chroot(root.c_str()) != 0 || ::chdir("/") != 0) ::_exit(126);
    char* argv[] = {const_cast<char*>("culvert"), const_cast<char*>("version"), nullptr};
    char* envp[] = {const_cast<char*>("PATH=/opt/culvert/bin"), nullptr};
    ::execve("/opt/culvert/bin/culvert", argv, envp);
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string version;
  while (ssize_t n = ::read(pipefd[0], buf, sizeof(buf))) {
    if (n < 0) break;
    version.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << version;
  EXPECT_EQ(WEXITSTATUS(status), 0) << version;
  EXPECT_NE(version.find("culvert " CULVERT_VERSION_FOR_TEST), std::string::npos) << version;
}

// exec_verified runs a verified descriptor through the layer's loader: in a chroot that
// holds only the layer, a program opened there runs with the layer given (the loader
// and libraries of the layer), and fails without it (there is no /lib64 loader at all).
TEST(Layer, ExecVerifiedRunsTheDescriptorThroughTheLayersLoader) {
#ifdef CULVERT_TSAN_BUILD
  GTEST_SKIP() << "in the chroot, ThreadSanitizer cannot read its suppressions file and stops the process";
#endif
  if (::geteuid() != 0) GTEST_SKIP() << "chroot needs root";
  TempDir t;
  const std::string culvert = std::string(CULVERT_BINARY_DIR) + "/culvert";
  std::string cmd = culvert + " image layer " + (t.path / "root").string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto run_in_chroot = [&](const std::optional<std::string>& layer) {
    int pipefd[2];
    EXPECT_EQ(::pipe(pipefd), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(pipefd[1], 1);
      ::dup2(pipefd[1], 2);
      // A /proc of its own in the root, as a container has (the loader opens the
      // descriptor as /proc/self/fd/N).
      fs::path proc = t.path / "root" / "proc";
      fs::create_directories(proc);
      if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          ::mount("proc", proc.c_str(), "proc", 0, nullptr) != 0)
        ::_exit(124);
      if (::chroot((t.path / "root").c_str()) != 0 || ::chdir("/") != 0) ::_exit(126);
      int fd = ::open("/opt/culvert/libexec/culvert", O_RDONLY | O_CLOEXEC);
      if (fd < 0) ::_exit(125);
      Status st = exec_verified(fd, "/cache/0123abcd", {"version"}, layer);
      std::fprintf(stderr, "%s\n", st.message().c_str());
      ::_exit(3);
    }
    ::close(pipefd[1]);
    std::string out;
    char buf[4096];
    while (ssize_t n = ::read(pipefd[0], buf, sizeof(buf))) {
      if (n < 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  };
  auto [code, out] = run_in_chroot("/opt/culvert");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("culvert " CULVERT_VERSION_FOR_TEST), std::string::npos) << out;
  auto [plain_code, plain_out] = run_in_chroot(std::nullopt);
  EXPECT_EQ(plain_code, 3) << plain_out;
  EXPECT_NE(plain_out.find("cannot execute the artifact /cache/0123abcd"), std::string::npos) << plain_out;
  auto [bad_code, bad_out] = run_in_chroot("/nowhere");
  EXPECT_EQ(bad_code, 3) << bad_out;
  EXPECT_NE(bad_out.find("CULVERT_LAYER=/nowhere names no layer"), std::string::npos) << bad_out;
}

}  // namespace
}  // namespace culvert::image
