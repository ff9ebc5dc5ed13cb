"""What the Python benchmarks share: times, an API client, percentiles, and a server.

Imported by bench/agent/agent_bench.py and bench/slurm/slurm_bench.py (each puts bench/
on sys.path first).
"""
import json, os, subprocess, time
import urllib.request
from datetime import datetime


def ts(s):
    """An API timestamp (ISO 8601, UTC with Z) as seconds since the epoch."""
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def start_server(culvert, tmp, env, procs, extra_args=()):
    """`culvert server start` on a free port with SQLite in tmp and env's HOME (whose local
    profile it creates); returns (url, admin token, Api). The process goes into procs."""
    port_file = os.path.join(tmp, "port")
    server = subprocess.Popen([culvert, "server", "start", "--listen", "127.0.0.1:0", "--port-file", port_file,
                               "--db", "sqlite://" + os.path.join(tmp, "bench.db"), *extra_args],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "server.log"), "w"))
    procs.append(server)
    for _ in range(3000):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        if server.poll() is not None:
            raise RuntimeError("culvert server start exited with %s; see %s/server.log" % (server.returncode, tmp))
        time.sleep(0.01)
    url = "http://127.0.0.1:" + open(port_file).read().strip()
    subprocess.run([culvert, "config", "set", "api-url", url], env=env, check=True, stdout=subprocess.DEVNULL)
    cfg = open(os.path.join(env["HOME"], ".culvert", "config.toml")).read()
    token = cfg.split("api_token")[1].split('"')[1]
    return url, token, Api(url, token)
