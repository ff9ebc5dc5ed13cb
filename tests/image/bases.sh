#!/usr/bin/env bash
# Base images the project did not build, for the image end-to-end tests.
#   bases.sh busybox  SOCKET CACHE_DIR   FROM scratch + Debian's busybox-static (/bin/busybox
#                                        and its links, sh among them): no libc at all
#   bases.sh arm64-empty SOCKET CACHE_DIR  an empty linux/arm64 image
#   bases.sh bookworm SOCKET CACHE_DIR   a Debian 12 root filesystem from
#                                        `debootstrap --variant=minbase bookworm` plus python3,
#                                        imported with `docker import`
# Prints the image's tag. An image the daemon has already is kept; the bookworm root
# filesystem is also kept as CACHE_DIR/<tag>.tar, so a fresh daemon imports it in seconds
# instead of bootstrapping again (about a minute). Delete the file to rebuild it.
set -euo pipefail
kind="${1:?usage: bases.sh busybox|bookworm|arm64-empty SOCKET CACHE_DIR}"
socket="${2:?socket}"
cache="${3:?cache dir}"
docker=(docker -H "unix://$socket")
mkdir -p "$cache"

have() { "${docker[@]}" image inspect "$1" >/dev/null 2>&1; }

case "$kind" in
  busybox)
    tag="culvert-test/busybox-static:1"
    have "$tag" && { echo "$tag"; exit 0; }
    [[ -x /bin/busybox ]] || { echo "bases.sh: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
    ! ldd /bin/busybox >/dev/null 2>&1 ||
      { echo "bases.sh: /bin/busybox is not static (install busybox-static, not busybox)" >&2; exit 1; }
    ctx="$(mktemp -d)"; trap 'rm -rf "$ctx"' EXIT
    cp /bin/busybox "$ctx/busybox"
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
DOCKERFILE
    "${docker[@]}" build -q -t "$tag" "$ctx" >/dev/null
    ;;
  bookworm)
    tag="culvert-test/bookworm-minbase-python3:1"
    have "$tag" && { echo "$tag"; exit 0; }
    tarball="$cache/bookworm-minbase-python3-1.tar"
    if [[ ! -s "$tarball" ]]; then
      command -v debootstrap >/dev/null || { echo "bases.sh: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
      root="$(mktemp -d "$cache/rootfs.XXXXXX")"
      trap 'rm -rf "$root"' EXIT
      mirror="${CULVERT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
      debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
      chroot "$root" apt-get install -y -qq --no-install-recommends python3 >>"$cache/debootstrap.log" 2>&1 ||
        { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
      chroot "$root" apt-get clean
      tar -C "$root" -cf "$tarball.part" .
      mv "$tarball.part" "$tarball"
    fi
    "${docker[@]}" import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      "$tarball" "$tag" >/dev/null
    ;;
  arm64-empty)
    # An empty linux/arm64 image (docker load of a hand-made image archive), for the
    # "not linux/amd64" error.
    tag="culvert-test/arm64-empty:1"
    have "$tag" && { echo "$tag"; exit 0; }
    ctx="$(mktemp -d)"; trap 'rm -rf "$ctx"' EXIT
    tar -C "$ctx" -cf "$ctx/layer.tar" --files-from /dev/null
    diff_id="$(sha256sum "$ctx/layer.tar" | cut -d' ' -f1)"
    printf '{"architecture":"arm64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
      "$diff_id" >"$ctx/config.json"
    config="$(sha256sum "$ctx/config.json" | cut -d' ' -f1).json"
    mv "$ctx/config.json" "$ctx/$config"
    printf '[{"Config":"%s","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$config" "$tag" >"$ctx/manifest.json"
    tar -C "$ctx" -cf - manifest.json "$config" layer.tar | "${docker[@]}" load >/dev/null
    ;;
  *) echo "bases.sh: unknown base '$kind' (busybox, bookworm or arm64-empty)" >&2; exit 2 ;;
esac
echo "$tag"
