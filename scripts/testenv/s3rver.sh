#!/usr/bin/env bash
# Starts or stops an s3rver (S3-compatible test server, npm) for the end-to-end tests.
#   s3rver.sh start DIR [BUCKET...]   data in DIR/data, log DIR/log, PID DIR/pid, port DIR/port
#   s3rver.sh stop DIR                stops the server started in DIR (by its PID) and removes DIR
# Listens on 127.0.0.1 on a free port. Buckets default to "culvert-e2e".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/tools/node_modules/.bin/s3rver"
cmd="${1:?usage: s3rver.sh start|stop DIR [BUCKET...]}"
dir="${2:?usage: s3rver.sh start|stop DIR [BUCKET...]}"
shift 2

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
    [[ -x "$BIN" ]] || { echo "s3rver.sh: $BIN missing; run scripts/install-deps.sh" >&2; exit 1; }
    stop
    mkdir -p "$dir/data"
    buckets=("$@"); ((${#buckets[@]})) || buckets=(culvert-e2e)
    args=()
    for b in "${buckets[@]}"; do args+=(--configure-bucket "$b"); done
    "$BIN" -d "$dir/data" -a 127.0.0.1 -p 0 "${args[@]}" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    # Wait (up to 20 s) for the "listening on 127.0.0.1:PORT" line.
    for _ in $(seq 200); do
      port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]\+\).*/\1/p' "$dir/log" | head -1)"
      if [[ -n "$port" ]]; then echo "$port" >"$dir/port"; echo "s3rver on 127.0.0.1:$port (pid $(cat "$dir/pid"))"; exit 0; fi
      kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "s3rver.sh: s3rver did not start:" >&2; cat "$dir/log" >&2; stop; exit 1 ;;
  stop) stop ;;
  *) echo "usage: s3rver.sh start|stop DIR [BUCKET...]" >&2; exit 2 ;;
esac
