#!/usr/bin/env bash
# Builds culvert_<version>_amd64.deb (the package-deb target), installs it with apt-get
# into a clean Debian 12 container (debootstrap minbase, tests/image/bases.sh), and from
# the installed files only: `culvert --version`; `systemd-analyze verify` of both units;
# the server started by its unit's ExecStart line as its User with its Environment (no
# systemd runs in the container); an agent started by the agent unit's ExecStart line
# with an /etc/culvert/agent.env; a flow registered and run by that agent to Success.
#   package_test.sh BUILD_DIR SOURCE_DIR DOCKERD_FIXTURE_DIR BASES_CACHE_DIR
set -euo pipefail
BUILD="$1"; SRC="$2"; DOCKERD_DIR="$3"; CACHE="$4"
socket="$(cat "$DOCKERD_DIR/socket")"
docker=(docker -H "unix://$socket")
WORK="$(mktemp -d /tmp/culvert-package-XXXXXX)"
container="culvert-package-test-$$"
installed="culvert-test/deb-installed:$$"
cleanup() {
  "${docker[@]}" rm -f "$container" >/dev/null 2>&1 || true
  "${docker[@]}" rmi -f "$installed" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cmake --build "$BUILD" --target package-deb >"$WORK/cpack.log" 2>&1 || { cat "$WORK/cpack.log"; exit 1; }
deb="$(ls "$BUILD"/package/culvert_*_amd64.deb)"
echo "package: $deb ($(stat -c %s "$deb") bytes)"
dpkg-deb -I "$deb" | grep -E '^ (Depends|Installed-Size):'
# Stripped: no debug sections in the packaged culvert.
dpkg-deb -x "$deb" "$WORK/x"
if readelf -S "$WORK/x/usr/bin/culvert" | grep -q '\.debug_info'; then
  echo "the packaged culvert is not stripped" >&2; exit 1
fi
echo "culvert: $(stat -c %s "$BUILD/culvert") bytes in the build tree, $(stat -c %s "$WORK/x/usr/bin/culvert") in the package"

base="$("$SRC/tests/image/bases.sh" bookworm "$socket" "$CACHE")"
mkdir -p "$WORK/pkg"; cp "$deb" "$WORK/pkg/"
cp "$BUILD/tests/e2e/e2e_flow" "$WORK/pkg/e2e_flow"
cp "$SRC/tests/package/inside.sh" "$WORK/pkg/inside.sh"

# 1. apt-get installs the package and what it depends on from Debian's archive
#    (host network: the archive is the only thing reached), plus systemd for
#    systemd-analyze. The result is kept as an image.
"${docker[@]}" run --name "$container" --network host -v "$WORK/pkg:/pkg:ro" "$base" sh -c '
  set -e
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends /pkg/'"$(basename "$deb")"' >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
  apt-get install -y -qq --no-install-recommends systemd >>/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
  dpkg -s culvert | grep -E "^(Status|Version):"'
"${docker[@]}" commit "$container" "$installed" >/dev/null
"${docker[@]}" rm -f "$container" >/dev/null

# 2. From the installed files, in a container with no network but its own loopback.
"${docker[@]}" run --rm --network none -v "$WORK/pkg:/pkg:ro" "$installed" sh /pkg/inside.sh
echo "package test: ok"
