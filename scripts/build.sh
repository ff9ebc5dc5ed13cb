#!/usr/bin/env bash
# Configures and builds Culvert. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"; shift || true
# Let ccache reuse objects across checkouts of the tree in different folders (a fresh
# clone hits the cache of an earlier one): paths are hashed relative to the tree.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja "$@" >/dev/null
fi
cmake --build "$BUILD" -j "${CULVERT_JOBS:-$(nproc)}"
