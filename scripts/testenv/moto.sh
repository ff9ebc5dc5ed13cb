#!/usr/bin/env bash
# Starts or stops a moto server (AWS emulator, tests only) for the ECS end-to-end tests.
#   moto.sh start DIR   settings in DIR/env, port DIR/port, log DIR/log, PID DIR/pid
#   moto.sh stop DIR    stops the server started in DIR (by its PID) and removes DIR
# Listens on 127.0.0.1 on a free port (moto_server.py). moto is a Python package that
# Debian does not ship: it is looked for in `python3` on PATH, then in /usr/bin/python3.
# When neither has it, `start` writes the reason to DIR/missing and succeeds, and the
# tests that need moto skip, saying so.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cmd="${1:?usage: moto.sh start|stop DIR}"
dir="${2:?usage: moto.sh start|stop DIR}"

stop() {
  if [[ -f "$dir/pid" ]]; then
    pid="$(cat "$dir/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start)
    stop
    mkdir -p "$dir"
    py=""
    for candidate in python3 /usr/bin/python3; do
      if command -v "$candidate" >/dev/null 2>&1 &&
         "$candidate" -c 'import moto, boto3; from moto.moto_server.threaded_moto_server import ThreadedMotoServer' 2>/dev/null; then
        py="$candidate"; break
      fi
    done
    if [[ -z "$py" ]]; then
      echo "moto (with boto3) is not installed for python3 ($(command -v python3 || echo none)) nor /usr/bin/python3;" \
           "the ECS end-to-end tests need moto 5: python3 -m pip install 'moto[server]'" >"$dir/missing"
      echo "moto.sh: $(cat "$dir/missing")"
      exit 0
    fi
    "$py" "$ROOT/scripts/testenv/moto_server.py" "$dir" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    # Wait (up to 60 s) for DIR/port, written once the server is set up.
    for _ in $(seq 600); do
      if [[ -s "$dir/port" ]]; then echo "moto on 127.0.0.1:$(cat "$dir/port") (pid $(cat "$dir/pid"), $py)"; exit 0; fi
      kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "moto.sh: moto did not start:" >&2; cat "$dir/log" >&2; stop; exit 1 ;;
  stop) stop ;;
  *) echo "usage: moto.sh start|stop DIR" >&2; exit 2 ;;
esac
