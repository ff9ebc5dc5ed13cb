#!/usr/bin/env python3
"""End-to-end figures for the hybrid model, on this machine, with real processes.

Starts `culvert server start` (SQLite, temporary HOME) and one local agent, registers
bench_flow to file:// storage, then measures:

  start latency   `POST /flow-runs` -> the run is Running (server timestamps), p50/p99
                  over N runs created one after another (each waited for)
  throughput      M short runs created at once through one agent with --max-concurrent 8
                  -> runs per second from the first creation to the last end
  overhead        a flow of T no-op tasks run by the agent vs the same binary run locally

Usage: bench/agent/agent_bench.py [--build build] [--runs 100] [--burst 1000] [--tasks 10000]
                                  [--work-us 0,1000]
"""
import argparse, json, os, shutil, signal, sqlite3, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from culvert_bench import Api, pct, start_server, ts  # noqa: E402



def wait_final(api, run_id, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = api.call("GET", "/api/v1/flow-runs/" + run_id)
        if run["state"] in ("Success", "Failed", "Crashed", "Cancelled", "TimedOut"):
            return run
        time.sleep(0.002)
    raise RuntimeError("run %s did not finish" % run_id)


def running_time(api, run_id):
    hist = api.call("GET", "/api/v1/flow-runs/%s/history" % run_id)
    items = hist["history"] if isinstance(hist, dict) else hist
    created = ts(items[0]["timestamp"])
    for h in items:
        if h["state"] == "Running":
            return ts(h["timestamp"]) - created
    raise RuntimeError("run %s never Running" % run_id)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--work-us", default="0,1000",
                    help="comma-separated busy-work per task (microseconds) for the overhead runs")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    culvert = os.path.join(build, "culvert")
    flow_bin = os.path.join(build, "bench", "agent", "bench_flow")
    tmp = tempfile.mkdtemp(prefix="culvert-bench-")
    env = dict(os.environ, HOME=os.path.join(tmp, "home"))
    os.makedirs(env["HOME"])
    for k in ("CULVERT_API_URL", "CULVERT_API_TOKEN", "CULVERT_PROFILE"):
        env.pop(k, None)
    procs = []
    try:
        url, token, api = start_server(culvert, tmp, env, procs)
        subprocess.run([culvert, "flow", "register", flow_bin, "--project", "bench", "--storage",
                        "file://" + os.path.join(tmp, "flows")], env=env, check=True, stdout=subprocess.DEVNULL)
        agent = subprocess.Popen([culvert, "agent", "start", "--type", "local", "--name", "bench-agent",
                                  "--max-concurrent", "8"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(tmp, "agent.log"), "w"))
        procs.append(agent)
        # Warm-up: the artifact cache and the agent's registration.
        wait_final(api, api.call("POST", "/api/v1/flow-runs", {"project": "bench", "flow": "bench"})["id"])

        lat = []
        for _ in range(a.runs):
            run = api.call("POST", "/api/v1/flow-runs", {"project": "bench", "flow": "bench"})
            wait_final(api, run["id"])
            lat.append(running_time(api, run["id"]) * 1000)
        print("start latency (culvert run -> Running), %d runs: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
              % (len(lat), pct(lat, 50), pct(lat, 99), max(lat)))

        t0 = time.time()
        ids = [api.call("POST", "/api/v1/flow-runs", {"project": "bench", "flow": "bench"})["id"]
               for _ in range(a.burst)]
        created = time.time() - t0
        ends = [ts(wait_final(api, i)["end_time"]) for i in ids]
        first = ts(api.call("GET", "/api/v1/flow-runs/" + ids[0])["created"])
        span = max(ends) - first
        print("throughput: %d short runs through one agent (--max-concurrent 8): %.1f runs/s "
              "(%.1f s; creating them took %.1f s)" % (a.burst, a.burst / span, span, created))

        for work_us in [int(w) for w in a.work_us.split(",") if w]:
            t0 = time.time()
            subprocess.run([flow_bin, "run", "--param", "tasks=%d" % a.tasks, "--param", "work_us=%d" % work_us],
                           env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            local = time.time() - t0
            t0 = time.time()
            run = api.call("POST", "/api/v1/flow-runs", {"project": "bench", "flow": "bench",
                                                         "parameters": {"tasks": a.tasks, "work_us": work_us}})
            fin = wait_final(api, run["id"])
            orchestrated = time.time() - t0
            executing = ts(fin["end_time"]) - ts(fin["start_time"])
            server_side = ts(fin["end_time"]) - ts(fin["created"])
            trs = api.call("GET", "/api/v1/flow-runs/%s/task-runs" % run["id"])
            n_tr = len(trs["task_runs"] if isinstance(trs, dict) else trs)
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(tmp, "bench.db"), uri=True)
            rows = db.execute("SELECT COUNT(*) FROM task_runs WHERE flow_run_id = ?", (run["id"],)).fetchone()[0]
            db.close()
            print("overhead: %d tasks of %d us: local %.3f s; through server+agent %.3f s end to end "
                  "(%.3f s created->end, %.3f s Running->end; %s, %d task runs stored in %d rows): %.2fx end to end"
                  % (a.tasks, work_us, local, orchestrated, server_side, executing, fin["state"], n_tr, rows,
                     orchestrated / local))
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
