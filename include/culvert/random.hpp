// Randomness behind an interface, for what must be reproducible in tests: the jitter
// of task retries (RunOptions::random). SeededRandom is deterministic; SecureRandom,
// the default, is OpenSSL's generator.
#pragma once

#include <cstdint>

namespace culvert {

class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t next_u64() = 0;
  // Uniform in [0, 1).
  double uniform01() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
};

// Deterministic generator for tests (splitmix64). Not thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  uint64_t next_u64() override;

 private:
  uint64_t state_;
};

// OpenSSL's CSPRNG. Thread-safe.
class SecureRandom final : public Random {
 public:
  uint64_t next_u64() override;
};

}  // namespace culvert
