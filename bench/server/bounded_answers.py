#!/usr/bin/env python3
"""Re-runs the attack probe's two memory bombs against a real `culvert server start` and
prints the answer sizes and the server's memory.

  1. One task-state item with map_count 3000 and a 64 KB message, then
     GET /api/v1/flow-runs/{id}/task-runs (and the first page of that task's task runs).
  2. Log lines of 64 KB (--lines of them), then GET .../logs?limit=10000.

Usage: bench/server/bounded_answers.py [--culvert BUILD/culvert] [--lines 4200]
       [--server-flag=--max-log-bytes-per-run=0 ...]
The server runs on a free port with a temporary HOME and SQLite database; it is stopped
(SIGTERM, by its pid) at the end. Standard library only.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


class Api:
    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": "Bearer " + self.token}
        if data is not None:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, raw, time.monotonic() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--culvert", default=os.path.join(os.path.dirname(__file__), "../../build/culvert"))
    ap.add_argument("--lines", type=int, default=4200)
    ap.add_argument("--line-bytes", type=int, default=64 * 1024)
    ap.add_argument("--server-flag", action="append", default=[])
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="culvert-bounded-")
    port_file = os.path.join(home, "port")
    server = subprocess.Popen(
        [args.culvert, "server", "start", "--listen", "127.0.0.1:0", "--port-file", port_file,
         "--db", "sqlite://" + os.path.join(home, "culvert.db")] + args.server_flag,
        env=dict(os.environ, HOME=home), stdout=subprocess.PIPE, stderr=open(os.path.join(home, "server.log"), "w"),
        text=True)
    try:
        port = None
        for line in server.stdout:  # the server says when it listens
            m = re.match(r"listening on http://[^ ]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            sys.exit("the server did not start: " + open(os.path.join(home, "server.log")).read()[-2000:])
        config = open(os.path.join(home, ".culvert", "config.toml")).read()
        token = re.search(r'api_token = "([^"]+)"', config).group(1)
        api = Api(port, token)
        st, raw, _ = api.call("POST", "/api/v1/flows", {
            "project": "probe", "name": "bomb",
            "artifact": {"uri": "file:///flows/bomb", "sha256": "0" * 64},
            "tasks": [{"name": "m", "mapped": True}], "run_config": {"type": "local"}})
        assert st in (200, 201), raw[:300]
        flow = json.loads(raw)["id"]
        st, raw, _ = api.call("POST", "/api/v1/flow-runs", {"flow_id": flow})
        assert st == 201, raw[:300]
        run = json.loads(raw)["id"]
        base = rss_kib(server.pid)

        rows = []
        st, raw, _ = api.call("POST", "/api/v1/task-runs/states", [{
            "flow_run_id": run, "task": "m", "map_index": 0, "map_count": 3000, "state": "Failed",
            "message": "x" * 65536}])
        assert st == 200, raw[:300]
        st, raw, secs = api.call("GET", f"/api/v1/flow-runs/{run}/task-runs")
        rows.append(("GET task-runs", st, len(raw), secs, rss_kib(server.pid)))
        st, raw, secs = api.call("GET", f"/api/v1/flow-runs/{run}/task-runs?task=m&limit=10000")
        rows.append(("GET task-runs?task=m&limit=10000", st, len(raw), secs, rss_kib(server.pid)))

        line = "y" * args.line_bytes
        per_batch = max(1, (900 * 1024) // (args.line_bytes + 200))
        sent, refused = 0, None
        while sent < args.lines:
            n = min(per_batch, args.lines - sent)
            st, raw, _ = api.call("POST", "/api/v1/logs", [{"flow_run_id": run, "message": line}] * n)
            if st != 201:
                refused = (st, json.loads(raw)["error"]["message"])
                break
            sent += n
        st, raw, secs = api.call("GET", f"/api/v1/flow-runs/{run}/logs?limit=10000")
        more = json.loads(raw).get("more") if st == 200 else None
        rows.append((f"GET logs?limit=10000 ({sent} lines of {args.line_bytes} B sent)", st, len(raw), secs,
                     rss_kib(server.pid)))

        print(f"server: {args.culvert}  (RSS before: {base['VmRSS'] / 1024:.1f} MB)")
        print(f"{'request':58} {'status':>6} {'answer bytes':>14} {'seconds':>8} {'RSS MB':>7} {'peak MB':>8}")
        for name, st, size, secs, mem in rows:
            print(f"{name:58} {st:>6} {size:>14,} {secs:>8.3f} {mem['VmRSS'] / 1024:>7.1f} "
                  f"{mem['VmHWM'] / 1024:>8.1f}")
        if more is not None:
            print(f"logs answer says more={more}")
        if refused:
            print(f"log batch refused after {sent} lines: {refused[0]} {refused[1]}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
