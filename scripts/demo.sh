#!/usr/bin/env bash
# The main job: builds Culvert and runs the demo on the embedded defaults.
#
# In a temporary HOME it starts a server (SQLite under ~/.culvert, 127.0.0.1 only) and a
# local agent, registers the example ETL flow to file:// storage, runs it, and prints the
# run's states, task runs and logs. Then it stops what it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CULVERT_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/install-deps.sh"
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
fi
echo "== building the culvert command and the example flow"
cmake --build "$BUILD" -j "${CULVERT_JOBS:-$(nproc)}" --target culvert_cli etl >/dev/null

DEMO="$(mktemp -d -t culvert-demo.XXXXXX)"
export HOME="$DEMO/home"
mkdir -p "$HOME"
unset CULVERT_API_URL CULVERT_API_TOKEN CULVERT_PROFILE
CULVERT="$BUILD/culvert"
SERVER_PID=""; AGENT_PID=""
cleanup() {
  [[ -n "$AGENT_PID" ]] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT

echo "== culvert server start (SQLite at \$HOME/.culvert/culvert.db, a free port on 127.0.0.1)"
"$CULVERT" server start --listen 127.0.0.1:0 --port-file "$DEMO/port" >"$DEMO/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do [[ -s "$DEMO/port" ]] && break; sleep 0.1; done
[[ -s "$DEMO/port" ]] || { echo "the server did not start:"; cat "$DEMO/server.log"; exit 1; }
PORT="$(cat "$DEMO/port")"
"$CULVERT" config set api-url "http://127.0.0.1:$PORT" >/dev/null
echo "   listening on http://127.0.0.1:$PORT; the admin token was saved to the local profile"

echo "== culvert agent start --type local --label demo"
"$CULVERT" agent start --type local --name demo-agent --label demo >"$DEMO/agent.log" 2>&1 &
AGENT_PID=$!

# The example's own run config is the ECS one of the SDK sketch; the demo runs it as a
# local process instead.
echo "== culvert flow register examples/etl --project demo --storage file://$DEMO/flows --run-config '{\"type\":\"local\",\"labels\":[\"demo\"]}'"
"$CULVERT" flow register "$BUILD/examples/etl" --project demo --storage "file://$DEMO/flows" \
  --run-config '{"type":"local","labels":["demo"]}'

echo "== culvert run etl --project demo --watch"
set +e
"$CULVERT" run etl --project demo --watch
RC=$?
set -e
RUN_ID="$("$CULVERT" get runs --limit 1 --output json | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["runs"] if isinstance(d,dict) else d; print(r[0]["id"])')"

echo "== culvert run inspect $RUN_ID"
"$CULVERT" run inspect "$RUN_ID"
echo "== culvert get logs $RUN_ID"
"$CULVERT" get logs "$RUN_ID"
echo "== culvert get agents"
"$CULVERT" get agents
exit $RC
