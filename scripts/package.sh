#!/usr/bin/env bash
# Builds the Debian package: BUILD_DIR/package/culvert_<version>_amd64.deb (stripped
# binaries, the SDK, the systemd units; cmake/CulvertPackage.cmake says what is in it).
# Usage: scripts/package.sh [BUILD_DIR] [extra cmake args for a first configure]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"; shift || true
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja "$@" >/dev/null
fi
cmake --build "$BUILD" -j "${CULVERT_JOBS:-$(nproc)}" --target package-deb
ls "$BUILD"/package/culvert_*_amd64.deb
