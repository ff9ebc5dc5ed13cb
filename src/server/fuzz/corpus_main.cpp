// Runs the fuzz target once over every file of the seed corpus (and any paths given),
// so that the target and its corpus stay working in ordinary builds.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  std::vector<std::string> roots;
  for (int i = 1; i < argc; ++i) roots.emplace_back(argv[i]);
  if (roots.empty()) roots.emplace_back(CULVERT_FUZZ_CORPUS);
  for (const auto& r : roots) {
    if (std::filesystem::is_directory(r)) {
      for (const auto& e : std::filesystem::directory_iterator(r)) files.push_back(e.path());
    } else {
      files.emplace_back(r);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "no corpus files\n");
    return 1;
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
  std::printf("ran %zu corpus inputs\n", files.size());
  return 0;
}
