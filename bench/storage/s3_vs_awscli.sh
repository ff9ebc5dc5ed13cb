#!/usr/bin/env bash
# Times a 64 MiB upload and download through Culvert's S3 store and through the aws CLI,
# against a local s3rver. Usage: bench/storage/s3_vs_awscli.sh [BUILD_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
W="$(mktemp -d)"
trap '"$ROOT/scripts/testenv/s3rver.sh" stop "$W/s3" >/dev/null; rm -rf "$W"' EXIT
"$ROOT/scripts/testenv/s3rver.sh" start "$W/s3" bench >/dev/null
export CULVERT_S3_ENDPOINT="http://127.0.0.1:$(cat "$W/s3/port")"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
head -c $((64 << 20)) /dev/urandom >"$W/file"
CP="$BUILD/bench/storage/culvert_s3_copy"
AWS="/usr/bin/aws --endpoint-url $CULVERT_S3_ENDPOINT s3 cp --only-show-errors"
hyperfine -w 1 -r 5 -N \
  -n "culvert put 64 MiB" "$CP put s3://bench/c/file $W/file" \
  -n "aws cli put 64 MiB" "$AWS $W/file s3://bench/a/file" \
  -n "culvert get 64 MiB" "$CP get s3://bench/c/file $W/back-c" \
  -n "aws cli get 64 MiB" "$AWS s3://bench/a/file $W/back-a"
