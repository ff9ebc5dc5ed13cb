#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 cluster for tests and benchmarks.
#
#   scripts/testenv/postgres.sh start STATE_DIR [--no-fsync]
#       initdb in a new temporary directory, start the server on 127.0.0.1 on a free
#       port (unix socket in the same temporary directory), create database "culvert",
#       write the connection URL to STATE_DIR/url and print it. fsync stays on unless
#       --no-fsync (speed-only runs).
#   scripts/testenv/postgres.sh stop STATE_DIR
#       stop that server (pg_ctl with its data directory; its PID is in STATE_DIR/pid)
#       and delete its temporary directory.
#
# As root the server runs as the "postgres" user (initdb refuses root).
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
cmd="${1:-}"; state="${2:-}"
[[ -n "$cmd" && -n "$state" ]] || { echo "usage: $0 start|stop STATE_DIR [--no-fsync]" >&2; exit 2; }

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

case "$cmd" in
  start)
    mkdir -p "$state"
    if [[ -f "$state/datadir" ]]; then "$0" stop "$state" || true; fi
    fsync=on; [[ "${3:-}" == "--no-fsync" ]] && fsync=off
    tmp="$(mktemp -d /tmp/culvert-pg.XXXXXX)"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$tmp"
    echo "$tmp" > "$state/datadir"
    as_pg "$PGBIN/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$tmp/initdb.log" 2>&1 \
      || { cat "$tmp/initdb.log" >&2; exit 1; }
    started=0
    for _ in 1 2 3 4 5; do
      port="$(free_port)"
      if as_pg "$PGBIN/pg_ctl" -D "$tmp/data" -l "$tmp/pg.log" -w -t 60 \
           -o "-c listen_addresses=127.0.0.1 -p $port -k $tmp -c fsync=$fsync -c max_connections=200" \
           start >/dev/null; then
        started=1; break
      fi
    done
    [[ $started -eq 1 ]] || { cat "$tmp/pg.log" >&2; exit 1; }
    head -1 "$tmp/data/postmaster.pid" > "$state/pid"
    "$PGBIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE culvert" >/dev/null
    url="postgresql://postgres@127.0.0.1:$port/culvert"
    echo "$url" > "$state/url"
    echo "$url"
    ;;
  stop)
    [[ -f "$state/datadir" ]] || exit 0
    tmp="$(cat "$state/datadir")"
    if [[ -d "$tmp/data" ]]; then
      as_pg "$PGBIN/pg_ctl" -D "$tmp/data" -m fast -w stop >/dev/null 2>&1 || {
        # pg_ctl could not stop it: signal the postmaster by its recorded PID.
        [[ -f "$state/pid" ]] && kill -TERM "$(cat "$state/pid")" 2>/dev/null || true
      }
    fi
    rm -rf "$tmp"
    rm -f "$state/datadir" "$state/pid" "$state/url"
    ;;
  *)
    echo "usage: $0 start|stop STATE_DIR [--no-fsync]" >&2; exit 2 ;;
esac
