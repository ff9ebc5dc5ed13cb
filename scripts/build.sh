#!/usr/bin/env bash
# Configures and builds Culvert. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"; shift || true
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja "$@" >/dev/null
fi
cmake --build "$BUILD" -j "${CULVERT_JOBS:-$(nproc)}"
