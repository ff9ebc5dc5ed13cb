#!/usr/bin/env python3
"""Distributed maps: the overhead per element of distribution, on this machine, with real
processes, side by side with dask.distributed on the same graph (bench/maps/README.md).

The graph: n no-op elements (default 10,000) mapped in chunks of `--chunk` (500), then a
reduce (their sum).

Culvert: `culvert server start` (SQLite, a temporary HOME), one local agent
(`--workers 1`: one engine thread per run), the flows of map_bench_flow.cpp registered to
file:// storage. For each worker count N:
  local        `map_bench_flow run`: the map inside one process, no server
  plain        the same map in one run through the server and the agent (map-bench-plain):
               each element a task run reported to the server, nothing distributed
  distributed  map-bench: the map over child runs (n / chunk chunks, at most N at once)
               that the agent launches as processes, chunks through file:// storage
The run's time is the parent's Running -> end (server timestamps). Overhead per element of
distribution = (distributed - plain) / n; against a local run = (distributed - local) / n.

dask.distributed: a LocalCluster of N worker processes of one thread each, the same graph
(a bag of n elements in partitions of `--chunk`, map(noop), sum). Its time is compute()
with the cluster already up; its local run the same bag on the synchronous scheduler;
overhead = (cluster - local) / n.

--python: the same graph as a Python flow too (its local run: `python3 flow.py run`).

Each figure is the median of --repeat runs (after one warm-up). Usage:
    /usr/bin/python3 bench/maps/maps_bench.py [--build build] [--n 10000] [--chunk 500]
                                              [--workers 1,2,4,20] [--repeat 3] [--no-dask]
                                              [--python]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from culvert_bench import start_server, ts  # noqa: E402

FINAL = ("Success", "Failed", "Crashed", "Cancelled", "TimedOut")


def noop(x):
    return x


# The Python flow (--python): the same graph as map_bench_flow.cpp, written as two flow
# files (map-bench-py distributed, map-bench-py-plain not), registered like the binaries.
PY_FLOW = """
import os

import culvert
from culvert import task, Flow, Parameter


@task
def items(n: int):
    return list(range(n))


@task
def noop(x):
    return x


@task
def reduce(xs):
    return sum(xs)


with Flow(NAME, result_storage=os.environ.get("MAP_BENCH_STORAGE")) as flow:
    n = Parameter("n", default=10000)
    if DISTRIBUTED:
        mapped = noop.map(items(n), workers=int(os.environ.get("MAP_BENCH_WORKERS", "2")),
                          chunk_size=int(os.environ.get("MAP_BENCH_CHUNK", "500")))
    else:
        mapped = noop.map(items(n))
    reduce(mapped)

if __name__ == "__main__":
    culvert.main(flow)
"""


def wait_final(api, run_id, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = api.call("GET", "/api/v1/flow-runs/" + run_id)
        if run["state"] in FINAL:
            return run
        time.sleep(0.01)
    raise RuntimeError("run %s did not finish" % run_id)


class Culvert:
    """A server, its local agent (restarted per worker count), the two flows."""

    def __init__(self, build, tmp, chunk):
        self.build, self.tmp, self.chunk = build, tmp, chunk
        self.culvert = os.path.join(build, "culvert")
        self.env = dict(os.environ, HOME=os.path.join(tmp, "home"))
        os.makedirs(self.env["HOME"])
        for k in ("CULVERT_API_URL", "CULVERT_API_TOKEN", "CULVERT_PROFILE"):
            self.env.pop(k, None)
        # Python flows: the build's package, run by this interpreter (also under the agent).
        self.env["PYTHONPATH"] = os.path.join(build, "python") + (
            ":" + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
        self.env["CULVERT_PYTHON"] = sys.executable
        self.maps = os.path.join(tmp, "maps")
        os.makedirs(self.maps)
        self.procs = []
        self.agent = None
        self.url, self.token, self.api = start_server(self.culvert, tmp, self.env, self.procs)

    def flow_env(self, workers):
        return dict(self.env, MAP_BENCH_STORAGE="file://" + self.maps, MAP_BENCH_WORKERS=str(workers),
                    MAP_BENCH_CHUNK=str(self.chunk), CULVERT_API_URL=self.url, CULVERT_API_TOKEN=self.token)

    def binary(self, name):
        return os.path.join(self.build, "bench", "maps", name)

    def py_flow(self, plain):
        path = os.path.join(self.tmp, "map_bench_flow%s.py" % ("_plain" if plain else ""))
        if not os.path.exists(path):
            with open(path, "w") as fh:
                fh.write(PY_FLOW.replace("NAME", repr("map-bench-py" + ("-plain" if plain else "")))
                         .replace("DISTRIBUTED", "False" if plain else "True"))
        return path

    def setup(self, workers, python):
        """Registers the flows with these settings and (re)starts the agent with them."""
        env = self.flow_env(workers)
        flows = [self.binary("map_bench_flow"), self.binary("map_bench_flow_plain")]
        if python:
            flows += [self.py_flow(False), self.py_flow(True)]
        for path in flows:
            subprocess.run([self.culvert, "flow", "register", path, "--project", "bench",
                            "--storage", "file://" + os.path.join(self.tmp, "flows")],
                           env=env, check=True, stdout=subprocess.DEVNULL)
        self.stop_agent()
        # The parent and up to `workers` children at once, one engine thread each.
        self.agent = subprocess.Popen([self.culvert, "agent", "start", "--type", "local", "--name", "bench",
                                       "--max-concurrent", str(workers + 1), "--workers", "1"],
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(self.tmp, "agent-%d.log" % workers), "w"))

    def stop_agent(self):
        if self.agent is not None:
            self.agent.send_signal(signal.SIGTERM)
            self.agent.wait(timeout=60)
            self.agent = None

    def local(self, n, workers, python=False):
        """`FLOW run` here (the map in this process, no server), in seconds."""
        cmd = [sys.executable, self.py_flow(False)] if python else [self.binary("map_bench_flow")]
        t0 = time.perf_counter()
        subprocess.run(cmd + ["run", "--workers", "1", "--param", "n=%d" % n],
                       env=self.flow_env(workers), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def orchestrated(self, flow, n):
        """One run of `flow` through the server and the agent: (Running -> end, run JSON)."""
        run = self.api.call("POST", "/api/v1/flow-runs", {"project": "bench", "flow": flow, "parameters": {"n": n}})
        fin = wait_final(self.api, run["id"])
        if fin["state"] != "Success":
            raise RuntimeError("run %s of %s ended %s: %s (see %s)" % (run["id"], flow, fin["state"],
                                                                  fin.get("state_message"), self.tmp))
        return ts(fin["end_time"]) - ts(fin["start_time"]), fin

    def children(self, run_id):
        doc = self.api.call("GET", "/api/v1/flow-runs/%s/children" % run_id)
        return doc["children"]

    def close(self):
        self.stop_agent()
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def dask_figures(n, chunk, workers, repeat):
    """(local, cluster) medians in seconds for the same bag on dask's synchronous
    scheduler and on a LocalCluster of `workers` processes."""
    import dask
    import dask.bag as db
    from distributed import Client, LocalCluster

    def bag():
        return db.from_sequence(range(n), partition_size=chunk).map(noop).sum()

    want = n * (n - 1) // 2
    local = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        got = bag().compute(scheduler="sync")
        local.append(time.perf_counter() - t0)
        assert got == want, got
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        cl = []
        for _ in range(repeat + 1):
            t0 = time.perf_counter()
            got = client.compute(bag()).result()
            cl.append(time.perf_counter() - t0)
            assert got == want, got
    return statistics.median(local[1:]), statistics.median(cl[1:]), dask.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--workers", default="1,2,4,20", help="comma-separated worker counts")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--python", action="store_true", help="also the same graph as a Python flow")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    tmp = tempfile.mkdtemp(prefix="culvert-maps-bench-")
    cv = Culvert(build, tmp, a.chunk)
    rows = []
    try:
        for workers in [int(w) for w in a.workers.split(",") if w]:
            cv.setup(workers, a.python)
            flows = [("C++", "map-bench", False)] + ([("Python", "map-bench-py", True)] if a.python else [])
            dask = None
            if not a.no_dask:
                dask = dask_figures(a.n, a.chunk, workers, a.repeat)
            for label, flow, python in flows:
                cv.orchestrated(flow + "-plain", a.n)  # warm-up: the artifact cache, the agent's registration
                _, warm = cv.orchestrated(flow, a.n)
                kids = cv.children(warm["id"])
                chunks = (a.n + a.chunk - 1) // a.chunk
                assert len(kids) == chunks and all(k["state"] == "Success" for k in kids), kids
                local = statistics.median(cv.local(a.n, workers, python) for _ in range(a.repeat))
                plain = statistics.median(cv.orchestrated(flow + "-plain", a.n)[0] for _ in range(a.repeat))
                dist = statistics.median(cv.orchestrated(flow, a.n)[0] for _ in range(a.repeat))
                row = {"flow": label, "workers": workers, "local": local, "plain": plain, "dist": dist,
                       "chunks": chunks}
                if dask is not None:
                    row["dask_local"], row["dask_cluster"], row["dask"] = dask
                rows.append(row)
                print_row(row, a.n, header=len(rows) == 1, dask=dask is not None)
    finally:
        cv.close()
        if a.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def ms_per(seconds, n):
    return seconds * 1000.0 / n


def print_row(r, n, header, dask):
    if header:
        print("%d no-op elements in %d chunks; times in seconds, overheads in ms per element (medians)"
              % (n, r["chunks"]))
        cols = ["flow", "workers", "culvert local", "plain run", "distributed", "overhead/elem", "vs local/elem"]
        if dask:
            cols += ["dask local", "dask cluster", "dask overhead/elem", "overhead culvert/dask",
                     "time culvert/dask"]
        print(" | ".join(cols))
    over = ms_per(r["dist"] - r["plain"], n)
    vs_local = ms_per(r["dist"] - r["local"], n)
    line = [r["flow"], "%d" % r["workers"], "%.3f" % r["local"], "%.3f" % r["plain"], "%.3f" % r["dist"],
            "%.4f" % over, "%.4f" % vs_local]
    if dask:
        dover = ms_per(r["dask_cluster"] - r["dask_local"], n)
        line += ["%.3f" % r["dask_local"], "%.3f" % r["dask_cluster"], "%.4f" % dover,
                 "%.2fx" % (vs_local / dover) if dover > 0 else "-", "%.2fx" % (r["dist"] / r["dask_cluster"])]
    print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
