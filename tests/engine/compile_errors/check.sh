#!/usr/bin/env bash
# Compiles each snippet in this folder against the SDK headers and checks the outcome its
# first line names: "// expect: compiles", or "// expect-error: TEXT" (the compile fails
# and its diagnostics contain TEXT).   check.sh CXX INCLUDE_DIR
set -u
CXX=$1
INC=$2
DIR=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /tmp/culvert-compile-errors.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
failed=0
for src in "$DIR"/*.cpp; do
  name=$(basename "$src" .cpp)
  first=$(head -1 "$src")
  "$CXX" -std=c++20 -fsyntax-only -I"$INC" "$src" >"$OUT/$name.log" 2>&1
  rc=$?
  case "$first" in
    "// expect: compiles")
      if [ $rc -ne 0 ]; then echo "FAIL $name: expected to compile"; head -20 "$OUT/$name.log"; failed=1
      else echo "ok   $name: compiles"; fi ;;
    "// expect-error: "*)
      want=${first#// expect-error: }
      if [ $rc -eq 0 ]; then echo "FAIL $name: compiled, expected an error containing: $want"; failed=1
      elif ! grep -qF -- "$want" "$OUT/$name.log"; then
        echo "FAIL $name: the error does not say: $want"; grep -m5 "error" "$OUT/$name.log"; failed=1
      else echo "ok   $name: $want"; fi ;;
    *) echo "FAIL $name: its first line names no expectation"; failed=1 ;;
  esac
done
exit $failed
