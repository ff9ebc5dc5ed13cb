#!/usr/bin/env bash
# Makes a Docker daemon available to the end-to-end tests.
#   dockerd.sh start DIR   writes the socket path to DIR/socket. If the default daemon
#                          answers (docker info), it is used and nothing is started.
#                          Otherwise a private dockerd is started: socket, data, pidfile
#                          and log in a fresh /tmp/cvd.* directory (named in DIR/root),
#                          no bridge and no iptables changes (tests use host networking).
#   dockerd.sh stop DIR    stops only a daemon this script started (by its PID),
#                          unmounts what it left under its directory, removes it.
# Idempotent: start on a DIR whose daemon still answers does nothing.
set -euo pipefail
cmd="${1:?usage: dockerd.sh start|stop DIR}"
dir="${2:?usage: dockerd.sh start|stop DIR}"

answers() { docker -H "unix://$1" info >/dev/null 2>&1; }

stop() {
  [[ -f "$dir/pid" ]] || { rm -rf "$dir"; return 0; }
  local pid root
  pid="$(cat "$dir/pid")"; root="$(cat "$dir/root")"
  if kill -0 "$pid" 2>/dev/null; then
    # Containers left behind by a failed test would keep mounts busy: remove them first.
    ids="$(docker -H "unix://$root/docker.sock" ps -aq 2>/dev/null || true)"
    [[ -n "$ids" ]] && docker -H "unix://$root/docker.sock" rm -f $ids >/dev/null 2>&1 || true
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  if [[ -n "$root" && "$root" == /tmp/cvd.* ]]; then
    awk -v d="$root" 'index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$root"
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [[ -f "$dir/socket" ]] && answers "$(cat "$dir/socket")"; then
      echo "dockerd already available at $(cat "$dir/socket")"; exit 0
    fi
    stop; mkdir -p "$dir"
    if answers /var/run/docker.sock; then
      echo /var/run/docker.sock >"$dir/socket"
      echo "using the running Docker daemon at /var/run/docker.sock"; exit 0
    fi
    command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
    root="$(mktemp -d /tmp/cvd.XXXXXX)"   # short: containerd socket paths must fit 108 bytes
    echo "$root" >"$dir/root"
    dockerd --host "unix://$root/docker.sock" --data-root "$root/data" --exec-root "$root/x" \
      --pidfile "$root/docker.pid" --bridge none --iptables=false --ip-masq=false \
      >"$root/dockerd.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 300); do
      if [[ -S "$root/docker.sock" ]] && answers "$root/docker.sock"; then
        echo "$root/docker.sock" >"$dir/socket"
        echo "started dockerd (pid $(cat "$dir/pid")) at $root/docker.sock"; exit 0
      fi
      kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "dockerd.sh: dockerd did not come up:" >&2; tail -20 "$root/dockerd.log" >&2; stop; exit 1 ;;
  stop) stop ;;
  *) echo "usage: dockerd.sh start|stop DIR" >&2; exit 2 ;;
esac
