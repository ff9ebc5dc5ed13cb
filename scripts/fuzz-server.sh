#!/usr/bin/env bash
# Builds the server's request fuzzer with clang + libFuzzer (ASan, UBSan) in its own
# build directory and runs it for a while over the seed corpus.
#   scripts/fuzz-server.sh [SECONDS] [BUILD_DIR]      default: 20 s, build-fuzz
# New interesting inputs go to BUILD_DIR/fuzz-corpus (not the repository); crashes to
# BUILD_DIR/fuzz-artifacts. Exit status 0 when no crash was found.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:-20}"
BUILD="${2:-$ROOT/build-fuzz}"
if [[ ! -f "$BUILD/build.ninja" ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCULVERT_FUZZ=ON -DCULVERT_BUILD_BENCH=OFF -DCULVERT_BUILD_EXAMPLES=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
fi
cmake --build "$BUILD" -j "${CULVERT_JOBS:-2}" --target server_request_fuzz
mkdir -p "$BUILD/fuzz-corpus" "$BUILD/fuzz-artifacts"
"$BUILD/src/server/server_request_fuzz" "$BUILD/fuzz-corpus" "$ROOT/src/server/fuzz/corpus" \
  -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$BUILD/fuzz-artifacts/" -print_final_stats=1
