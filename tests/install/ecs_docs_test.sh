#!/usr/bin/env bash
# docs/ECS.md's "Set-up, step by step" as its reader runs it, with the AWS parts played by
# this machine's stand-ins: Culvert installed into a prefix (only its bin/ on PATH), a flow
# built outside the repository against that package with the page's `EcsRun`, the image
# made by `culvert image build` on a base the project did not build (busybox-static on
# `FROM scratch`), the code in an S3 bucket (s3rver), and the agent started with the
# page's flags against the test-only ECS endpoint (tests/support/ecs_fixture.py), which
# runs each task as a container of the test dockerd. What differs from AWS, and why:
#   - the cluster (step 3) is the fixture's `--cluster culvert`; roles, subnets and the
#     security group (steps 4-6) are names the fixture records but does not enforce;
#   - the task role's S3 access (step 4) is the agent's `--env` with s3rver's keys and
#     endpoint, which the run's container gets;
#   - the image is not pushed to ECR (step 7): the fixture's dockerd has it already.
#   ecs_docs_test.sh BUILD_DIR SOURCE_DIR DOCKERD_FIXTURE_DIR S3RVER_FIXTURE_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/walkthrough.sh"
BUILD="$1"
SRC="$2"
DOCKERD_DIR="$3"
S3_DIR="$4"
SOCKET="$(cat "$DOCKERD_DIR/socket")"
S3="http://127.0.0.1:$(cat "$S3_DIR/port")"
walkthrough_begin "ecs docs test"
IMAGE="culvert-docs/etl:$(basename "$WORK" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9')"

walkthrough_cleanup_extra() { docker -H "unix://$SOCKET" image rm -f "$IMAGE" >/dev/null 2>&1; }
install_culvert "$BUILD"
export DOCKER_HOST="unix://$SOCKET"
# The user's S3 credentials (s3rver's) for registering: on AWS, the user's own.
export CULVERT_S3_ENDPOINT="$S3" AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true

# 1. The server and a runner token.
start_server
culvert auth create-token --name ecs-agent --scope runner >"$WORK/token.txt" 2>&1 || fail "auth create-token" "$WORK/token.txt"
RUNNER="$(grep -o 'cvt_[A-Za-z0-9_-]*' "$WORK/token.txt" | head -1)"
[[ -n "$RUNNER" ]] || fail "no cvt_ token in create-token's output" "$WORK/token.txt"
step "1. server started, runner token created"

# 7. The image: the flow's dependencies (here: none beyond a shell) plus Culvert's layer.
BASE="$("$SRC/tests/image/bases.sh" busybox "$SOCKET" "$BUILD/tests/image/bases")" || fail "making the busybox base"
culvert image build --base "$BASE" --tag "$IMAGE" >"$WORK/image.log" 2>&1 || fail "culvert image build" "$WORK/image.log"
step "7. culvert image build --base $BASE --tag $IMAGE"

# 8. The flow, with an ECS run config, written as the page shows it.
mkdir -p "$WORK/etl"
cat >"$WORK/etl/main.cpp" <<EOF
#include <culvert/culvert.hpp>
#include <string>
#include <vector>
int main(int argc, char** argv) {
  culvert::Flow flow("etl");
  flow.run_config(culvert::EcsRun{
      .image = "$IMAGE",
      .cpu = "1024", .memory = "2048",
      .labels = {"fargate-dev", "s3-flow-storage"}});
  auto rows = flow.parameter<int>("rows", 1000);
  auto data = flow.task("extract", [](int n) { return std::vector<int>(n, 2); }, rows);
  auto sum = flow.task("transform", [](const std::vector<int>& v) {
    long s = 0;
    for (int x : v) s += x;
    return s;
  }, data);
  flow.task("load", [](culvert::TaskContext& ctx, long s) { ctx.info("loaded a sum of " + std::to_string(s)); }, sum);
  flow.shell("where", "echo ON-ECS-TASK");
  return culvert::main(flow, argc, argv);
}
EOF
build_outside_flow
BUCKET="s3://culvert-e2e/ecs-docs-$(basename "$WORK")"
(cd "$WORK/etl" && culvert flow register ./etl --project data --storage "$BUCKET/flows") >"$WORK/register.log" 2>&1 ||
  fail "culvert flow register ./etl --project data --storage $BUCKET/flows" "$WORK/register.log"
step "8. flow built against the installed package and registered with its code in the bucket"

# 9. The agent, with the page's flags, against the ECS stand-in.
mkdir -p "$WORK/fixture"
python3 "$SRC/tests/support/ecs_fixture.py" --docker-socket "$SOCKET" --dir "$WORK/fixture" --cluster culvert \
  >"$WORK/fixture.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 200); do [[ -s "$WORK/fixture/port" ]] && break; sleep 0.05; done
[[ -s "$WORK/fixture/port" ]] || fail "the ECS fixture did not start" "$WORK/fixture.log"
ECS="http://127.0.0.1:$(cat "$WORK/fixture/port")"
(
  export CULVERT_API_URL="$URL" CULVERT_API_TOKEN="$RUNNER"
  # The agent's own AWS identity (on EC2: its instance profile).
  export AWS_ACCESS_KEY_ID=AKIDDOCS AWS_SECRET_ACCESS_KEY=docs-secret
  unset CULVERT_S3_ENDPOINT
  exec culvert agent start --type ecs --name fargate-dev \
    --label fargate-dev --label s3-flow-storage \
    --cluster culvert --launch-type FARGATE \
    --execution-role-arn arn:aws:iam::000000000000:role/culvert-execution \
    --task-role-arn arn:aws:iam::000000000000:role/culvert-task \
    --subnet subnet-0a1b --subnet subnet-2c3d --security-group sg-0123 \
    --log-group /culvert/flows --region us-east-1 --max-concurrent 50 \
    --endpoint-url "$ECS" \
    --env CULVERT_S3_ENDPOINT="$S3" --env AWS_ACCESS_KEY_ID=S3RVER --env AWS_SECRET_ACCESS_KEY=S3RVER \
    --env AWS_REGION=us-east-1 --env AWS_EC2_METADATA_DISABLED=true
) >"$WORK/agent.log" 2>&1 &
PIDS+=("$!")
step "9. culvert agent start --type ecs --name fargate-dev ... (RUNNER token)"

# 10. Run and watch.
timeout 180 culvert run etl --project data --param rows=21 --watch >"$WORK/watch.log" 2>&1 ||
  { cat "$WORK/agent.log" >&2; fail "culvert run etl --project data --watch" "$WORK/watch.log"; }
grep -q 'Success' "$WORK/watch.log" || fail "the run did not end Success" "$WORK/watch.log"
RUN="$(culvert get runs --limit 1 --output json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["runs"] if isinstance(d,dict) else d; print(r[0]["id"])')"
culvert run inspect "$RUN" >"$WORK/inspect.log" 2>&1 || fail "culvert run inspect" "$WORK/inspect.log"
grep -q 'arn:aws:ecs:us-east-1:[0-9]*:task/culvert/' "$WORK/inspect.log" ||
  fail "run inspect does not show the task's ARN" "$WORK/inspect.log"
culvert get logs "$RUN" >"$WORK/logs.log" 2>&1 || fail "culvert get logs" "$WORK/logs.log"
grep -q 'ON-ECS-TASK' "$WORK/logs.log" || fail "the command task's line is not in the run's logs" "$WORK/logs.log"
grep -q 'loaded a sum of 42' "$WORK/logs.log" || fail "the load task's line is not in the run's logs" "$WORK/logs.log"
python3 - "$ECS" "$RUN" <<'EOF' || fail "the fixture's record of the task" "$WORK/fixture.log"
import json, sys, urllib.request
state = json.load(urllib.request.urlopen(sys.argv[1] + "/_fixture/state", timeout=10))
assert state.get("invalid", []) == [], "requests botocore's validator refused: %s" % state["invalid"]
tasks = [t for t in state.get("tasks", []) if any(tag.get("value") == sys.argv[2] for tag in t.get("tags", []))]
assert len(tasks) == 1, "expected one task of the run, found %d" % len(tasks)
t = tasks[0]
assert t.get("lastStatus") == "STOPPED" and t.get("stopCode") == "EssentialContainerExited", t
assert t.get("exitCode") == 0, t
print("task %s: %s, %s, exit code %s" % (t["arn"], t["lastStatus"], t["stopCode"], t["exitCode"]))
EOF
step "10. run $RUN Success as one ECS task (ended EssentialContainerExited, exit code 0), logs on the server"
echo "ecs docs test: ok"
