#include "core/crypto.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <set>

namespace culvert {
namespace {

TEST(Crypto, Sha256KnownVector) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, HmacKnownVector) {
  // RFC 4231 test case 2.
  EXPECT_EQ(hex_encode(hmac_sha256_raw("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Crypto, TokensAreLongAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string t = new_api_token();
    EXPECT_EQ(t.size(), 4u + 43u);
    EXPECT_TRUE(seen.insert(t).second);
  }
}

TEST(Crypto, UuidShape) {
  std::string u = new_uuid();
  ASSERT_EQ(u.size(), 36u);
  EXPECT_EQ(u[14], '7');  // version 7: time-ordered
  EXPECT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b');  // RFC variant
  EXPECT_NE(new_uuid(), u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_LT(u, new_uuid());  // later milliseconds sort after
}

TEST(Crypto, UuidsOfOneProcessStrictlyIncreaseAlsoWithinOneMillisecond) {
  // 10,000 ids take a few milliseconds at most: thousands share one millisecond, and
  // more than the 12-bit counter holds run over into the next.
  std::string last = new_uuid();
  for (int i = 0; i < 10000; ++i) {
    std::string u = new_uuid();
    ASSERT_LT(last, u) << i;
    ASSERT_EQ(u[14], '7');
    last = u;
  }
  // From several threads: still all distinct.
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> seen;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      std::vector<std::string> mine;
      for (int i = 0; i < 2000; ++i) mine.push_back(new_uuid());
      std::lock_guard lock(mu);
      seen.insert(mine.begin(), mine.end());
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(seen.size(), 8000u);
}

TEST(Crypto, SeededRandomIsDeterministic) {
  SeededRandom a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  double x = a.uniform01();
  EXPECT_GE(x, 0.0);
  EXPECT_LT(x, 1.0);
}

}  // namespace
}  // namespace culvert
