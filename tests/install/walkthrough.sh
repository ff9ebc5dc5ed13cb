# What the docs walkthrough tests share (sourced by slurm_docs_test.sh and
# ecs_docs_test.sh): a work folder cleaned up at exit with the processes started in it,
# messages, Culvert installed into a prefix as a reader installs it, a flow built outside
# the repository against that package, and a server with the reader's local profile.
#   walkthrough_begin NAME   sets WORK, PIDS, the EXIT trap (it calls walkthrough_cleanup_extra
#                            when the script defines it), NAME for messages
set -euo pipefail

walkthrough_begin() {
  WT_NAME="$1"
  WORK="$(mktemp -d "/tmp/culvert-$1-XXXXXX")"
  chmod 755 "$WORK"
  PIDS=()
  trap walkthrough_cleanup EXIT
}

walkthrough_cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && wait "$p" 2>/dev/null || true; done
  if declare -F walkthrough_cleanup_extra >/dev/null; then walkthrough_cleanup_extra || true; fi
  rm -rf "$WORK"
}

fail() {
  echo "$WT_NAME: FAILED: $1" >&2
  [[ -n "${2:-}" && -f "$2" ]] && tail -30 "$2" >&2
  exit 1
}
step() { echo "$WT_NAME: $1"; }

# Installs BUILD into $WORK/prefix, puts only its bin/ first on PATH, gives the reader a
# fresh HOME and none of Culvert's settings from the environment.
install_culvert() {
  cmake --install "$1" --prefix "$WORK/prefix" >"$WORK/install.log" 2>&1 || fail "cmake --install" "$WORK/install.log"
  export PATH="$WORK/prefix/bin:$PATH"
  [[ "$(command -v culvert)" == "$WORK/prefix/bin/culvert" ]] || fail "the installed culvert is not the one on PATH"
  export HOME="$WORK/home"
  mkdir -p "$HOME"
  unset CULVERT_API_URL CULVERT_API_TOKEN CULVERT_PROFILE
}

# Builds $WORK/etl/main.cpp (written by the caller) with find_package(Culvert) into
# $WORK/etl/etl.
build_outside_flow() {
  cat >"$WORK/etl/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(etl CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(Culvert REQUIRED)
add_executable(etl main.cpp)
target_link_libraries(etl PRIVATE Culvert::culvert)
CMAKE
  cmake -S "$WORK/etl" -B "$WORK/etl/build" -G Ninja -DCMAKE_PREFIX_PATH="$WORK/prefix" >"$WORK/cfg.log" 2>&1 ||
    fail "configuring the flow with find_package(Culvert)" "$WORK/cfg.log"
  cmake --build "$WORK/etl/build" >"$WORK/bld.log" 2>&1 || fail "building the flow" "$WORK/bld.log"
  cp "$WORK/etl/build/etl" "$WORK/etl/etl"
}

# `culvert server start` on a free port of 127.0.0.1 (its first start writes the local
# admin profile); sets URL and points the profile at it.
start_server() {
  culvert server start --listen 127.0.0.1:0 --port-file "$WORK/port" >"$WORK/server.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 200); do [[ -s "$WORK/port" ]] && break; sleep 0.05; done
  [[ -s "$WORK/port" ]] || fail "culvert server start" "$WORK/server.log"
  URL="http://127.0.0.1:$(cat "$WORK/port")"
  culvert config set api-url "$URL" >/dev/null
}
