#!/usr/bin/env bash
# The main job: builds Culvert and runs the demo on the embedded defaults.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" "$ROOT/build"
"$ROOT/build/culvert" version
