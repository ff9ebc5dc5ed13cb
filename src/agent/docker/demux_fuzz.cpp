// libFuzzer entry point for the Docker log demultiplexer.
//   clang++ build: the `docker_demux_fuzz` target (-fsanitize=fuzzer,address,undefined);
//   run: build/src/agent/docker/docker_demux_fuzz src/agent/docker/testdata/demux_fuzz_corpus
// Any build: demux_fuzz_corpus_test replays the seed corpus through this function.
// Property: however the bytes are chunked, the same lines come out.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "agent/docker/docker_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace culvert::docker;
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 17;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto collect = [](std::vector<LogLine>* out) {
    return [out](const LogLine& l) {
      out->push_back(l);
      return true;
    };
  };
  std::vector<LogLine> whole, chunked;
  LogDemuxer a, b;
  a.feed(bytes, collect(&whole));
  a.finish(collect(&whole));
  for (size_t i = 0; i < bytes.size(); i += chunk) b.feed(bytes.substr(i, chunk), collect(&chunked));
  b.finish(collect(&chunked));
  if (whole.size() != chunked.size()) std::abort();
  for (size_t i = 0; i < whole.size(); ++i) {
    if (whole[i].stream != chunked[i].stream || whole[i].text != chunked[i].text) std::abort();
    if (whole[i].text.find('\n') != std::string::npos) std::abort();
  }
  return 0;
}
