#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds, then runs the fast tier
# (unit tests), the end-to-end tier (real servers, processes, containers), and the fast
# tier again under AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/test.sh            all tiers
#   scripts/test.sh fast       unit tests only
#   scripts/test.sh e2e        end-to-end tests only
#   scripts/test.sh asan       sanitizer build, unit tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TIER="${1:-all}"
"$ROOT/scripts/install-deps.sh"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"

run_ctest() {  # build_dir label
  (cd "$1" && ctest -L "^$2\$" --output-on-failure -j "${CULVERT_TEST_JOBS:-2}")
}

if [[ "$TIER" == all || "$TIER" == fast || "$TIER" == e2e ]]; then
  "$ROOT/scripts/build.sh" "$ROOT/build"
fi
if [[ "$TIER" == all || "$TIER" == fast ]]; then
  echo "== fast tier =="; run_ctest "$ROOT/build" fast
fi
if [[ "$TIER" == all || "$TIER" == e2e ]]; then
  echo "== end-to-end tier =="; run_ctest "$ROOT/build" e2e
fi
if [[ "$TIER" == all || "$TIER" == asan ]]; then
  echo "== sanitizer build (ASan+UBSan), fast tier =="
  "$ROOT/scripts/build.sh" "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCULVERT_SANITIZE=ON \
    -DCULVERT_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_ctest "$ROOT/build-asan" fast
fi
echo "test.sh: all requested tiers passed"
