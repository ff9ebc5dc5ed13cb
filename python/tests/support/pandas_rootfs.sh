#!/usr/bin/env bash
# Makes (once) the root filesystem of a Debian 12 image with Python 3 and pandas, as a
# tar file that `docker import` takes: debootstrap --variant=minbase, then python3 and
# python3-pandas from Debian's archive. Cached by name: a second call with the file in
# place does nothing (reruns are fast).
#   pandas_rootfs.sh OUT.tar
set -euo pipefail
out="${1:?usage: pandas_rootfs.sh OUT.tar}"
[[ -s "$out" ]] && { echo "cached: $out"; exit 0; }
command -v debootstrap >/dev/null || { echo "pandas_rootfs.sh: debootstrap is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
root="$(mktemp -d /tmp/culvert-rootfs-XXXXXX)"
cleanup() {
  for m in proc sys dev; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true; done
  rm -rf "$root"
}
trap cleanup EXIT
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; exit 1; }
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  python3 python3-pandas ca-certificates >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"*
rm -f "$root.log"
tar -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "built: $out"
