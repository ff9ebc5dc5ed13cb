#!/usr/bin/env bash
# Server benchmarks. Starts `culvert server start` on a free port with a temporary HOME
# and database, then measures:
#   - GET /api/health with keep-alive (wrk)
#   - authenticated GET /api/v1/flow-runs/{id} with keep-alive (wrk)
#   - durable task-run state changes through POST /api/v1/task-runs/states, batches of
#     1000 and one change per request (wrk + task_states.lua), changes per second
#   - claim latency p50/p99 (bench_claim_latency)
#   - server RSS (VmRSS now, VmHWM peak) from /proc
#
#   bench/server/run.sh [BUILD_DIR] [--db postgresql://...] [--duration 10s] [--connections 32]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"; shift || true
DB=""; DURATION=10s; CONNS=32
while [[ $# -gt 0 ]]; do
  case "$1" in
    --db) DB="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cmake --build "$BUILD" --target culvert_cli bench_claim_latency >/dev/null

TMP="$(mktemp -d /tmp/culvert-bench.XXXXXX)"
[[ -z "$DB" ]] && DB="sqlite://$TMP/culvert.db"
HOME="$TMP" "$BUILD/culvert" server start --listen 127.0.0.1:0 --db "$DB" --log-level warn \
  --port-file "$TMP/port" >"$TMP/out" 2>"$TMP/err" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
for _ in $(seq 1 200); do [[ -s "$TMP/port" ]] && break; sleep 0.05; done
PORT="$(cat "$TMP/port")"; URL="http://127.0.0.1:$PORT"
TOKEN="$(sed -n "s/^api_token = [\"']\([^\"']*\)[\"']/\1/p" "$TMP/.culvert/config.toml" | head -1)"
[[ -n "$TOKEN" ]] || { echo "no admin token (database not empty?)" >&2; exit 1; }

curl -sf -XPOST "$URL/api/v1/flows" -H "Authorization: Bearer $TOKEN" \
  -d '{"project":"bench","name":"read","artifact":{"uri":"file:///x","sha256":"'"$(printf 'a%.0s' {1..64})"'"}}' >/dev/null
RUN="$(curl -sf -XPOST "$URL/api/v1/flow-runs" -H "Authorization: Bearer $TOKEN" \
  -d '{"project":"bench","flow":"read"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')"

# CPU time (user+system, in clock ticks) the server process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
# Runs wrk and prints its figures plus the server's CPU time per request, which does not
# depend on what else the machine is doing (unlike requests/s on a shared machine).
bench() {  # label, wrk args...
  local label="$1"; shift
  local before after out reqs
  before="$(cpu_ticks)"
  out="$(wrk -t1 -c"$CONNS" -d"$DURATION" "$@")"
  after="$(cpu_ticks)"
  reqs="$(echo "$out" | awk '/requests in/ {print $1}')"
  echo "-- $label"
  echo "$out" | grep -E "Requests/sec|Latency|requests in|Non-2xx"
  awk -v t=$((after - before)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "    server CPU per request: %.1f us\n", t / hz / n * 1e6 }'
}
echo "== server $URL (db: ${DB%%://*}), cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg), wrk -t1 -c$CONNS -d$DURATION"
bench "GET /api/health" "$URL/api/health"
bench "GET /api/v1/flow-runs/{id} (Bearer token)" -H "Authorization: Bearer $TOKEN" "$URL/api/v1/flow-runs/$RUN"
# Task-run state changes: requests/s x items per request = durable changes per second.
states() {  # batch, connections
  local out reqs rps
  out="$(RUN="$RUN" TOKEN="$TOKEN" BATCH="$1" wrk -t1 -c"$2" -d"$DURATION" -s "$ROOT/bench/server/task_states.lua" "$URL")"
  if echo "$out" | grep -q "unexpected status"; then echo "$out" >&2; exit 1; fi
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  echo "-- POST /api/v1/task-runs/states, $1 per request, $2 connections"
  echo "$out" | grep -E "Latency|requests in"
  awk -v r="$rps" -v b="$1" 'BEGIN { printf "    durable task-run state changes/s: %.0f\n", r * b }'
}
states 1000 4
states 1 "$CONNS"
echo "-- claim latency"
"$BUILD/bench/server/bench_claim_latency" "$URL" "$TOKEN" 300
echo "-- server memory"
grep -E "VmRSS|VmHWM" "/proc/$PID/status"
