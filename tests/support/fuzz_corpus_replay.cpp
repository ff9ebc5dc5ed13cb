// Replays a fuzzer's seed corpus through its LLVMFuzzerTestOneInput (any compiler), so
// every fuzz entry point and its corpus are exercised in the ordinary test tiers. Built
// once per fuzz target by culvert_fuzz_corpus_test() (cmake/CulvertHelpers.cmake), which
// sets the corpus folder and the least number of seeds it must hold.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

TEST(FuzzCorpus, SeedCorpusReplays) {
  const std::filesystem::path dir(CULVERT_FUZZ_CORPUS);
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0)
        << entry.path();
    ++n;
  }
  EXPECT_GE(n, CULVERT_FUZZ_MIN_SEEDS) << "seeds in " << dir;
}
