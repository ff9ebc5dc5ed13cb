// Replays the cron fuzzer's seed corpus through LLVMFuzzerTestOneInput (any compiler),
// so the fuzz entry point is exercised in the ordinary test tiers.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

TEST(CronFuzz, SeedCorpusReplays) {
  std::filesystem::path dir = std::filesystem::path(CULVERT_SOURCE_DIR) / "src/core/testdata/cron_fuzz_corpus";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
    ++n;
  }
  EXPECT_GE(n, 10);
}
