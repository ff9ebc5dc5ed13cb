// Hashing and randomness (OpenSSL). Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <culvert/random.hpp>

namespace culvert {

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);
// Raw 32-byte SHA-256 digest.
std::string sha256_raw(std::string_view data);
// HMAC-SHA256 of `data` with `key` (raw bytes).
std::string hmac_sha256_raw(std::string_view key, std::string_view data);
std::string hex_encode(std::string_view bytes);

// `n` cryptographically secure random bytes. Aborts if the CSPRNG fails.
std::string random_bytes(size_t n);
// A time-ordered UUID (version 7: Unix milliseconds, a 12-bit counter, 62 random bits),
// lower-case, with dashes. Thread-safe; the ids of one process strictly increase.
std::string new_uuid();
// An API token: prefix + 43 characters of base64url over 32 random bytes (256 bits).
std::string new_api_token(std::string_view prefix = "cvt_");

}  // namespace culvert
