// libFuzzer entry point for the storage and AWS parsers that read untrusted text:
// URLs (endpoints), s3:// URIs, and the credentials JSON of the ECS/EC2 endpoints.
//   clang++ build: the `storage_uri_fuzz` target (-fsanitize=fuzzer,address,undefined);
//   run: build/src/storage/storage_uri_fuzz src/storage/testdata/uri_fuzz_corpus
// Any build: uri_fuzz_corpus_test replays the seed corpus through this function.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "aws/credentials.hpp"
#include "aws/http.hpp"
#include "aws/sigv4.hpp"
#include "storage/s3_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace culvert;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto url = aws::parse_url(text)) {
    if (url->host.empty() || (url->scheme != "http" && url->scheme != "https")) std::abort();
    for (char c : url->port)
      if (c < '0' || c > '9') std::abort();
    if (!url->path.empty() && url->path[0] != '/') std::abort();
  } else if (url.status().message().empty()) {
    std::abort();
  }

  if (auto loc = storage::parse_s3_uri(text)) {
    if (loc->bucket.size() < 3 || loc->bucket.size() > 63) std::abort();
    auto t = storage::s3_target("", "us-east-1", *loc);
    // The request path is percent-encoded: nothing outside the unreserved set and '/'.
    for (char c : t.path)
      if (c == ' ' || c == '?' || c == '#' || static_cast<unsigned char>(c) >= 0x80) std::abort();
    if (aws::uri_encode(loc->key, true).size() < loc->key.size()) std::abort();
  }

  auto creds = aws::parse_credentials_json(text, "fuzz");
  if (creds && (creds->access_key_id.empty() || creds->secret_access_key.empty())) std::abort();
  return 0;
}
