#!/usr/bin/env bash
# docs/SLURM.md's "Set-up on a login node", run as its reader would: Culvert installed
# into a prefix (its bin/ on PATH, nothing of the build tree), a flow built outside the
# repository against that package, and the page's commands as written, with this
# machine's values in place of the examples' (the server's URL, the partition, the
# shared folders). The user systemd unit is written by `agent install-service` and
# checked by `systemd-analyze verify`; systemd is not the init of a test container, so
# the unit's own ExecStart line is run instead of `systemctl --user enable --now`.
#   slurm_docs_test.sh BUILD_DIR SLURM_FIXTURE_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/walkthrough.sh"
BUILD="$1"
SLURM_DIR="$2"
if [[ -f "$SLURM_DIR/missing" ]]; then
  echo "Slurm is not installed here: $(cat "$SLURM_DIR/missing")"
  exit 0
fi

walkthrough_begin "slurm docs test"
install_culvert "$BUILD"
# The cluster's client configuration (on a real login node it is /etc/slurm/slurm.conf).
export "$(cat "$SLURM_DIR/env")"

# A flow as its user writes it: its own folder, find_package(Culvert), no storage in code.
mkdir -p "$WORK/etl"
cat >"$WORK/etl/main.cpp" <<'EOF'
#include <culvert/culvert.hpp>
#include <numeric>
#include <string>
#include <vector>
int main(int argc, char** argv) {
  culvert::Flow flow("etl");
  auto rows = flow.parameter<int>("rows", 10);
  auto data = flow.task("extract", [](int n) {
    std::vector<int> v(n);
    std::iota(v.begin(), v.end(), 1);
    return v;
  }, rows);
  auto sum = flow.task("transform", [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }, data);
  flow.task("load", [](culvert::TaskContext& ctx, int s) { ctx.info("sum is " + std::to_string(s)); }, sum);
  flow.shell("where", "echo ON-SLURM-JOB=$SLURM_JOB_ID");
  return culvert::main(flow, argc, argv);
}
EOF
build_outside_flow
step "a flow built against the installed package"

# The server (elsewhere in real life): its first start makes the local admin profile.
start_server
culvert project create demo >/dev/null

# 1. A runner token, from wherever the server runs.
culvert auth create-token --name hpc-login --scope runner >"$WORK/token.txt" 2>&1 || fail "auth create-token" "$WORK/token.txt"
TOKEN="$(grep -o 'cvt_[A-Za-z0-9_-]*' "$WORK/token.txt" | head -1)"
[[ -n "$TOKEN" ]] || fail "no cvt_ token in create-token's output" "$WORK/token.txt"
step "1. runner token created"

# 3. The flow with a slurm run config, registered from anywhere (here with the admin
# profile, before the login node's profile becomes the runner's). file:// storage on a
# folder the node shares (one machine here).
culvert flow register "$WORK/etl/etl" --project demo --storage "file://$WORK/shared/flows" --label hpc \
  --run-config '{"type":"slurm","partition":"debug","cpus":1,"memory":"200M","time_limit":"5m"}' \
  >"$WORK/register.log" 2>&1 || fail "culvert flow register" "$WORK/register.log"
step "3. flow registered with a slurm run config"
ADMIN_TOKEN="$(python3 - "$HOME/.culvert/config.toml" <<'EOF'
import re, sys
m = re.search(r'api_token\s*=\s*"([^"]+)"', open(sys.argv[1]).read())
print(m.group(1) if m else "")
EOF
)"
[[ -n "$ADMIN_TOKEN" ]] || fail "the local profile holds no token"

# 2. On the login node, as the user whose jobs the runs become: the runner token.
culvert config set api-url "$URL" >/dev/null
culvert auth login --token "$TOKEN" >"$WORK/login.log" 2>&1 || fail "culvert auth login" "$WORK/login.log"
step "2. the login node's profile holds the runner token"

# 4. The agent as a user systemd unit.
mkdir -p ~/.config/systemd/user
culvert agent install-service --systemd-user --type slurm --label hpc --max-concurrent 50 \
  --partition debug --job-output-dir "$WORK/shared/job-output" \
  -o ~/.config/systemd/user >"$WORK/unit.log" 2>&1 || fail "agent install-service --systemd-user" "$WORK/unit.log"
UNIT=~/.config/systemd/user/culvert-agent.service
[[ -f "$UNIT" ]] || fail "no $UNIT" "$WORK/unit.log"
grep -q '^Restart=always' "$UNIT" || fail "the unit does not restart the agent" "$UNIT"
grep -q '^KillMode=process' "$UNIT" || fail "the unit's KillMode is not process" "$UNIT"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT" >"$WORK/verify.log" 2>&1 || fail "systemd-analyze verify $UNIT" "$WORK/verify.log"
  step "4. user unit written and verified by systemd-analyze"
else
  step "4. user unit written (systemd-analyze not installed: not verified)"
fi
EXEC="$(sed -n 's/^ExecStart=//p' "$UNIT")"
[[ -n "$EXEC" ]] || fail "the unit has no ExecStart" "$UNIT"
[[ "$EXEC" == *"--type slurm"* && "$EXEC" == *"--label hpc"* ]] || fail "ExecStart lacks the flags: $EXEC"
# What systemd would start, with the unit's environment: the agent under this user.
eval "set -- $EXEC"
"$@" >"$WORK/agent.log" 2>&1 &
PIDS+=("$!")
step "4. the unit's ExecStart running: $1 ${*:2:3} ..."

# 5. Run it (with the admin token: the runner token may not start runs).
CULVERT_API_TOKEN="$ADMIN_TOKEN" timeout 120 culvert run etl --project demo --param rows=100 --watch \
  >"$WORK/watch.log" 2>&1 || fail "culvert run etl --project demo --watch" "$WORK/watch.log"
grep -q 'Success' "$WORK/watch.log" || fail "the run did not end Success" "$WORK/watch.log"
RUN="$(CULVERT_API_TOKEN="$ADMIN_TOKEN" culvert get runs --limit 1 --output json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["runs"] if isinstance(d,dict) else d; print(r[0]["id"])')"
CULVERT_API_TOKEN="$ADMIN_TOKEN" culvert run inspect "$RUN" >"$WORK/inspect.log" 2>&1 || fail "culvert run inspect" "$WORK/inspect.log"
JOB="$(grep -o 'slurm-job [0-9]*' "$WORK/inspect.log" | head -1 | cut -d' ' -f2)"
[[ -n "$JOB" ]] || fail "run inspect does not show the slurm-job" "$WORK/inspect.log"
CULVERT_API_TOKEN="$ADMIN_TOKEN" culvert get logs "$RUN" >"$WORK/logs.log" 2>&1 || fail "culvert get logs" "$WORK/logs.log"
grep -q "ON-SLURM-JOB=$JOB" "$WORK/logs.log" || fail "the command task's line (with the job id) is not in the run's logs" "$WORK/logs.log"
grep -q 'sum is 5050' "$WORK/logs.log" || fail "the load task's line is not in the run's logs" "$WORK/logs.log"
sacct_or_scontrol="$(scontrol show job "$JOB" 2>/dev/null | grep -o "JobName=culvert-etl-$RUN" || true)"
step "5. run $RUN Success as Slurm job $JOB, its logs on the server${sacct_or_scontrol:+ ($sacct_or_scontrol)}"
echo "slurm docs test: ok"
