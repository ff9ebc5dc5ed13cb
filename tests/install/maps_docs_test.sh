#!/usr/bin/env bash
# docs/SDK.md's "Distributed maps", tried as its reader would: Culvert installed into a
# prefix (its bin/ on PATH, nothing of the build tree), a flow with a distributed map
# written in a folder of its own against that package (find_package(Culvert), no
# storage in code but the map's result storage), registered with --storage, run by a
# local agent with room for the children, the fan-out seen with `culvert run inspect`.
#   maps_docs_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/walkthrough.sh"
BUILD="$1"

walkthrough_begin "maps docs test"
install_culvert "$BUILD"

mkdir -p "$WORK/etl" "$WORK/shared/maps"
cat >"$WORK/etl/main.cpp" <<EOF
#include <culvert/culvert.hpp>
#include <numeric>
#include <string>
#include <vector>
int main(int argc, char** argv) {
  culvert::Flow flow("etl");
  flow.result_storage("file://$WORK/shared/maps");
  flow.max_run_retries(1);
  auto rows = flow.parameter<int>("rows", 40);
  auto data = flow.task("load", [](int n) {
    std::vector<int> v(n);
    std::iota(v.begin(), v.end(), 1);
    return v;
  }, rows);
  auto scores = flow.map("score", [](culvert::TaskContext& ctx, const int& x) {
                  ctx.info("scoring " + std::to_string(x));
                  return 2.0 * x;
                }, data)
                    .retries(2)
                    .distributed({.max_workers = 4, .chunk_size = 10});
  flow.task("report", [](culvert::TaskContext& ctx, const std::vector<double>& s) {
    ctx.info("total score " + std::to_string(static_cast<long>(std::accumulate(s.begin(), s.end(), 0.0))));
  }, scores);
  return culvert::main(flow, argc, argv);
}
EOF
build_outside_flow
step "a flow with a distributed map built against the installed package"

# Without storage for the map, describe refuses the flow and names what to add.
sed "s|  flow.result_storage(\"file://$WORK/shared/maps\");||" "$WORK/etl/main.cpp" >"$WORK/etl/nostorage.cpp"
cp "$WORK/etl/main.cpp" "$WORK/etl/main.cpp.keep"
cp "$WORK/etl/nostorage.cpp" "$WORK/etl/main.cpp"
build_outside_flow
if "$WORK/etl/etl" describe >"$WORK/describe.log" 2>&1; then fail "describe accepted a distributed map without storage" "$WORK/describe.log"; fi
grep -q "result_storage" "$WORK/describe.log" || fail "describe's refusal does not say what to add" "$WORK/describe.log"
cp "$WORK/etl/main.cpp.keep" "$WORK/etl/main.cpp"
build_outside_flow
step "without storage, describe refuses: $(grep -o "task 'score' is distributed: [^;]*" "$WORK/describe.log" | head -c 120)..."

start_server
culvert project create demo >/dev/null
culvert flow register "$WORK/etl/etl" --project demo --storage "file://$WORK/shared/flows" >"$WORK/register.log" 2>&1 ||
  fail "culvert flow register" "$WORK/register.log"
step "registered"

# The agent needs room for the parent and its four workers.
culvert agent start --max-concurrent 5 >"$WORK/agent.log" 2>&1 &
PIDS+=("$!")
timeout 180 culvert run etl --project demo --watch >"$WORK/watch.log" 2>&1 || fail "culvert run etl --watch" "$WORK/watch.log"
grep -q 'Success' "$WORK/watch.log" || fail "the run did not end Success" "$WORK/watch.log"
RUN="$(culvert get runs --flow etl --limit 50 --output json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["runs"] if isinstance(d,dict) else d; print([x["id"] for x in r if not x.get("child")][0])')"
culvert get logs "$RUN" >"$WORK/logs.log" 2>&1 || fail "culvert get logs" "$WORK/logs.log"
grep -q 'total score 1640' "$WORK/logs.log" || fail "the report task's line is not in the run's logs" "$WORK/logs.log"
grep -q 'scoring 40' "$WORK/logs.log" || fail "an element's line is not in the parent run's logs" "$WORK/logs.log"
culvert run inspect "$RUN" >"$WORK/inspect.log" 2>&1 || fail "culvert run inspect" "$WORK/inspect.log"
grep -qi 'child' "$WORK/inspect.log" || fail "run inspect does not show the run's child runs" "$WORK/inspect.log"
[[ "$(grep -c 'Success' "$WORK/inspect.log")" -ge 4 ]] || fail "run inspect does not show 4 Success children" "$WORK/inspect.log"
left="$(find "$WORK/shared/maps" -type f | wc -l)"
[[ "$left" == 0 ]] || fail "$left chunk objects left in the map's storage"
step "run $RUN Success over 4 child runs, elements' lines in its logs, the map's storage empty again"
echo "maps docs test: ok"
