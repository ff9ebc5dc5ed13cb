#!/usr/bin/env bash
# docs/PYTHON.md's "Distributed maps", tried as its reader would: Culvert installed into a
# prefix (its bin/ on PATH, PYTHONPATH at its Python package, nothing of the build tree),
# a Python flow with a distributed map written in a folder of its own, registered with
# `culvert flow register flow.py --storage file://...`, run by a local agent with room for
# the children; the fan-out checked through the API (the children, the task runs) and the
# reduced value in the run's logs.
#   python_maps_test.sh BUILD_DIR PYTHON PYTHON_INSTALL_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/walkthrough.sh"
BUILD="$1"
PY="$2"
PYDIR="$3"

walkthrough_begin "python maps test"
install_culvert "$BUILD"
export PYTHONPATH="$WORK/prefix/$PYDIR"
export CULVERT_PYTHON="$PY"

mkdir -p "$WORK/user" "$WORK/shared/maps"
cat >"$WORK/user/scoring.py" <<EOF
import os

import culvert
from culvert import task, Flow, Parameter


@task
def docs(n: int):
    return [f"doc-{i}" for i in range(n)]


@task(retries=1)
def score(doc):
    print(f"scoring {doc}")
    return {"n": int(doc.split("-")[1]), "pid": os.getpid()}


@task
def total(scores):
    pids = {s["pid"] for s in scores}
    print(f"total {sum(s['n'] for s in scores)} from {len(scores)} scores in {len(pids)} processes, "
          f"the reduce in {'a worker' if os.getpid() in pids else 'its own'} process")
    return sum(s["n"] for s in scores)


with Flow("scoring", result_storage="file://$WORK/shared/maps", max_run_retries=1) as flow:
    n = Parameter("n", default=45)
    total(score.map(docs(n), workers=4, chunk_size=10))

if __name__ == "__main__":
    culvert.main(flow)
EOF
cd "$WORK/user"
"$PY" -c 'import culvert, sys; assert culvert.__file__.startswith(sys.argv[1]), culvert.__file__' "$WORK/prefix" ||
  fail "the culvert package is not the installed one"

# Run here, the map stays in this process.
"$PY" scoring.py run >"$WORK/local.log" 2>&1 || fail "python3 scoring.py run" "$WORK/local.log"
grep -q "total 990 from 45 scores in 1 processes" "$WORK/local.log" || fail "the local run's total" "$WORK/local.log"
step "run here: one process"

# Without storage, describe refuses the flow and names what to add.
sed 's|, result_storage="[^"]*"||' scoring.py >nostorage.py
if "$PY" nostorage.py describe >"$WORK/describe.log" 2>&1; then
  fail "describe accepted a distributed map without storage" "$WORK/describe.log"
fi
grep -q "task 'score' is distributed" "$WORK/describe.log" && grep -q "result_storage=" "$WORK/describe.log" ||
  fail "describe's refusal does not say what to add" "$WORK/describe.log"
step "without storage, describe refuses: $(grep -o "task 'score' is distributed: [^;]*" "$WORK/describe.log" | head -c 100)..."

start_server
TOKEN="$(sed -n 's/^api_token *= *"\(.*\)"/\1/p' "$HOME/.culvert/config.toml" | head -1)"
[[ -n "$TOKEN" ]] || fail "no api_token in the local profile"
culvert project create demo >/dev/null
culvert flow register scoring.py --project demo --storage "file://$WORK/shared/flows" >"$WORK/register.log" 2>&1 ||
  fail "culvert flow register scoring.py" "$WORK/register.log"
step "registered"

# The agent needs room for the parent and its four workers.
culvert agent start --max-concurrent 5 --workers 1 >"$WORK/agent.log" 2>&1 &
PIDS+=("$!")
timeout 300 culvert run scoring --project demo --watch >"$WORK/watch.log" 2>&1 ||
  fail "culvert run scoring --watch" "$WORK/watch.log"
grep -q 'Success' "$WORK/watch.log" || fail "the run did not end Success" "$WORK/watch.log"

# The parent run, its children, its task runs, its logs, through the API.
"$PY" - "$URL" "$TOKEN" "$WORK" >"$WORK/check.log" 2>&1 <<'PYEOF' || fail "the run through the API" "$WORK/check.log"
import json, sys, urllib.request

url, token, work = sys.argv[1:4]


def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


runs = get("/api/v1/flow-runs?limit=100")
runs = runs["flow_runs"] if "flow_runs" in runs else runs.get("runs", runs)
parents = [r for r in runs if not r.get("child")]
assert len(parents) == 1, parents
parent = parents[0]
assert parent["state"] == "Success", parent
kids = get(f"/api/v1/flow-runs/{parent['id']}/children")
chunks = [(c["chunk"], c["start"], c["end"], c["task"], c["state"]) for c in kids["children"]]
assert chunks == [(i, 10 * i, min(10 * i + 10, 45), "score", "Success") for i in range(5)], chunks
assert kids["final"] == 5 and kids["by_state"] == {"Success": 5}, kids
for c in kids["children"]:
    child = get(f"/api/v1/flow-runs/{c['id']}")
    assert child["child"]["parent_run_id"] == parent["id"], child
    assert (child["infrastructure"] or {}).get("kind") == "process", child
single = get(f"/api/v1/flow-runs/{parent['id']}")
assert single["children"]["count"] == 5, single["children"]
tasks = get(f"/api/v1/flow-runs/{parent['id']}/task-runs")
assert {t["task"]: t["state"] for t in tasks["task_runs"]} == {"docs": "Success", "total": "Success"}, tasks
mapped = {m["task"]: m for m in tasks["mapped_tasks"]}
assert mapped["score"]["count"] == 45 and mapped["score"]["states"] == {"Success": 45}, mapped
elements = get(f"/api/v1/flow-runs/{parent['id']}/task-runs?task=score&limit=1000")["task_runs"]
assert [t["map_index"] for t in elements] == list(range(45)), elements[:3]
assert all(t["state"] == "Success" and t["attempts"] == 1 for t in elements), elements
# Each chunk's elements ran in its child's process, not in the parent's.
print("parent", parent["id"], "children", [c["id"] for c in kids["children"]])
PYEOF
RUN="$(sed -n 's/^parent \([^ ]*\) .*/\1/p' "$WORK/check.log")"
culvert get logs "$RUN" >"$WORK/logs.log" 2>&1 || fail "culvert get logs" "$WORK/logs.log"
grep -q 'total 990 from 45 scores in 5 processes, the reduce in its own process' "$WORK/logs.log" ||
  fail "the reduce's line (the total, 5 worker processes) is not in the run's logs" "$WORK/logs.log"
grep -q 'scoring doc-44' "$WORK/logs.log" || fail "an element's line is not in the parent run's logs" "$WORK/logs.log"
left="$(find "$WORK/shared/maps" -type f | wc -l)"
[[ "$left" == 0 ]] || fail "$left chunk objects left in the map's storage"
step "run $RUN Success over 5 child runs in 5 processes, total 990, elements' lines in its logs"
echo "python maps test: ok"
