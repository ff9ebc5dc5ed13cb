#!/usr/bin/env bash
# Installs Culvert from a build tree into a temporary prefix, then builds and runs a
# small outside project that uses find_package(Culvert) and Culvert::culvert.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD="$1"
SRC="$2"
WORK="$(mktemp -d /tmp/culvert-install-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
test -f "$WORK/prefix/include/culvert/culvert.hpp"
test -f "$WORK/prefix/lib/cmake/Culvert/CulvertConfig.cmake"
# No internal header may be needed: the installed headers include only <culvert/...>.
if grep -rhoE '#include "[^"]+"' "$WORK/prefix/include/culvert"; then
  echo "installed headers include internal headers" >&2
  exit 1
fi
cmake -S "$SRC/tests/install/project" -B "$WORK/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$WORK/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$WORK/build" >/dev/null
out="$("$WORK/build/hello_flow" run --param who=culvert --output json 2>/dev/null)"
echo "$out"
echo "$out" | grep -q '"flow":"hello"'
echo "$out" | grep -q '"state":"Success"'
echo "$out" | grep -q '"task":"upper","map_index":1,"state":"Success"'
"$WORK/build/hello_flow" describe | grep -q '"name":"hello"'
echo "install test: ok"
