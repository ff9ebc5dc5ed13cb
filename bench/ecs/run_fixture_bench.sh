#!/usr/bin/env bash
# Runs ecs_fixture_bench with the services it needs: a Docker daemon and s3rver
# (scripts/testenv/dockerd.sh and s3rver.sh, in a temporary folder; stopped at the end).
#   bench/ecs/run_fixture_bench.sh [BUILD_DIR] [-- ecs_fixture_bench arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
shift || true
[[ "${1:-}" == "--" ]] && shift
BIN="$BUILD/bench/ecs/ecs_fixture_bench"
[[ -x "$BIN" ]] || { echo "run_fixture_bench.sh: $BIN missing (cmake --build $BUILD --target ecs_fixture_bench)" >&2; exit 1; }
dir="$(mktemp -d)"
cleanup() {
  "$ROOT/scripts/testenv/s3rver.sh" stop "$dir/s3rver" || true
  "$ROOT/scripts/testenv/dockerd.sh" stop "$dir/dockerd" || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$ROOT/scripts/testenv/dockerd.sh" start "$dir/dockerd"
"$ROOT/scripts/testenv/s3rver.sh" start "$dir/s3rver" culvert-e2e
CULVERT_DOCKERD_DIR="$dir/dockerd" CULVERT_S3RVER_DIR="$dir/s3rver" "$BIN" "$@"
