// A small program run inside test containers (linked statically, in a FROM scratch
// image). Modes:
//   probe hello CODE      stdout/stderr lines, $CULVERT_PROBE_MSG, a TCP "ping" to
//                         127.0.0.1:$CULVERT_PROBE_PORT when set; exits with CODE
//   probe ticks N         N lines "tick i", 20 ms apart
//   probe oom             allocates and touches memory until killed
//   probe sleep           sleeps for 5 minutes (to be stopped)
//   probe write PATH TEXT writes TEXT to PATH
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "hello";
  if (mode == "hello") {
    std::printf("out 1\nout 2\n");
    std::fflush(stdout);
    std::fprintf(stderr, "err 1\n");
    if (const char* msg = std::getenv("CULVERT_PROBE_MSG")) std::printf("msg %s\n", msg);
    std::printf("partial");  // a last line without a newline
    std::fflush(stdout);
    if (const char* port = std::getenv("CULVERT_PROBE_PORT")) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(std::atoi(port)));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        (void)!::write(fd, "ping", 4);
      } else {
        std::fprintf(stderr, "connect failed: %s\n", std::strerror(errno));
      }
      ::close(fd);
    }
    return argc > 2 ? std::atoi(argv[2]) : 0;
  }
  if (mode == "ticks") {
    int n = argc > 2 ? std::atoi(argv[2]) : 3;
    for (int i = 0; i < n; ++i) {
      std::printf("tick %d\n", i);
      std::fflush(stdout);
      ::usleep(20000);
    }
    return 0;
  }
  if (mode == "oom") {
    std::vector<char*> blocks;
    for (;;) {
      char* p = static_cast<char*>(std::malloc(1 << 20));
      if (!p) continue;
      std::memset(p, 1, 1 << 20);
      blocks.push_back(p);
    }
  }
  if (mode == "sleep") {
    ::sleep(300);
    return 0;
  }
  if (mode == "write" && argc > 3) {
    FILE* f = std::fopen(argv[2], "w");
    if (!f) return 2;
    std::fputs(argv[3], f);
    std::fclose(f);
    return 0;
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 64;
}
