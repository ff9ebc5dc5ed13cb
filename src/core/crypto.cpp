#include "core/crypto.hpp"

#include <chrono>
#include <mutex>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace culvert {

std::string sha256_raw(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

std::string sha256_hex(std::string_view data) { return hex_encode(sha256_raw(data)); }

std::string hmac_sha256_raw(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hex_encode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "culvert: the system random number generator failed\n");
    std::abort();
  }
  return out;
}

std::string new_uuid() {
  // UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter (the
  // "rand_a" field, RFC 9562 section 6.2 method 1), then 62 random bits. Ids made close
  // in time are close in the database's indexes, so inserting a batch of task runs
  // touches a few index pages instead of one random page per row. The counter makes
  // the ids of one process strictly increasing, also within one millisecond: rows
  // ordered by id (flow runs created in the same millisecond) list in creation order.
  // It starts at a random value below 2048 in each new millisecond; when it runs out,
  // the timestamp field moves on to the next millisecond (never backwards, also when
  // the system clock does).
  static std::mutex mu;
  static uint64_t last_ms = 0;
  static uint32_t counter = 0;
  std::string b = random_bytes(16);
  auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
  uint64_t ms;
  uint32_t seq;
  {
    std::lock_guard lock(mu);
    if (now > last_ms) {
      last_ms = now;
      counter = (static_cast<unsigned char>(b[6]) << 8 | static_cast<unsigned char>(b[7])) & 0x7ff;
    } else if (++counter > 0xfff) {
      ++last_ms;
      counter = 0;
    }
    ms = last_ms;
    seq = counter;
  }
  for (int i = 0; i < 6; ++i) b[static_cast<size_t>(i)] = static_cast<char>((ms >> (40 - 8 * i)) & 0xff);
  b[6] = static_cast<char>(0x70 | (seq >> 8));
  b[7] = static_cast<char>(seq & 0xff);
  b[8] = static_cast<char>((static_cast<unsigned char>(b[8]) & 0x3f) | 0x80);
  std::string hex = hex_encode(b);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

std::string new_api_token(std::string_view prefix) {
  static constexpr char kB64Url[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string raw = random_bytes(32);
  std::string out(prefix);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : raw) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64Url[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kB64Url[(acc << (6 - bits)) & 0x3f]);
  return out;
}

uint64_t SeededRandom::next_u64() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SecureRandom::next_u64() {
  uint64_t v;
  std::string b = random_bytes(sizeof(v));
  std::memcpy(&v, b.data(), sizeof(v));
  return v;
}

}  // namespace culvert
