#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds, then runs the fast tier
# (unit tests), the end-to-end tier (real servers, processes, containers), and the fast
# tier again under AddressSanitizer + UndefinedBehaviorSanitizer, and once more under
# ThreadSanitizer.
#   scripts/test.sh            all tiers
#   scripts/test.sh fast       unit tests only
#   scripts/test.sh e2e        end-to-end tests only
#   scripts/test.sh asan       ASan+UBSan build, unit tests
#   scripts/test.sh tsan       TSan build, unit tests
# With CULVERT_PRUNE_BUILDS=1 (set by CI), each build tree is deleted once its tiers have
# passed, so that the disk holds one build tree at a time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TIER="${1:-all}"
"$ROOT/scripts/install-deps.sh"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"

PASSED=0; FAILED=0
run_ctest() {  # build_dir label
  local log; log="$(mktemp)"
  set +e
  (cd "$1" && ctest -L "^$2\$" --output-on-failure -j "${CULVERT_TEST_JOBS:-2}") 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local total failed
  total="$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)"
  failed="$(sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)"
  rm -f "$log"
  PASSED=$((PASSED + ${total:-0} - ${failed:-0})); FAILED=$((FAILED + ${failed:-0}))
  if [[ $rc -ne 0 ]]; then
    echo "tests: $PASSED passed, $FAILED failed"
    exit "$rc"
  fi
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
prune() {  # build_dir
  if [[ "${CULVERT_PRUNE_BUILDS:-0}" == 1 ]]; then
    echo "test.sh: removing $1 (CULVERT_PRUNE_BUILDS=1)"; rm -rf "$1"
  fi
}
if [[ "$TIER" == all ]]; then prune "$ROOT/build"; fi
if [[ "$TIER" == all || "$TIER" == asan ]]; then
  echo "== sanitizer build (ASan+UBSan), fast tier =="
  "$ROOT/scripts/build.sh" "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCULVERT_SANITIZE=ON \
    -DCULVERT_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_ctest "$ROOT/build-asan" fast
  prune "$ROOT/build-asan"
fi
if [[ "$TIER" == all || "$TIER" == tsan ]]; then
  echo "== sanitizer build (TSan), fast tier =="
  "$ROOT/scripts/build.sh" "$ROOT/build-tsan" -DCULVERT_TSAN=ON -DCULVERT_BUILD_BENCH=OFF \
    -DCULVERT_BUILD_EXAMPLES=OFF
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/scripts/tsan.supp" \
    run_ctest "$ROOT/build-tsan" fast
  prune "$ROOT/build-tsan"
fi
echo "test.sh: all requested tiers passed"
echo "tests: $PASSED passed, $FAILED failed"
