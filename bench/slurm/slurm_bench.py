#!/usr/bin/env python3
"""The Slurm agent's figures, on a real single-node Slurm 22.05 with accounting.

Starts a Slurm cluster (scripts/testenv/slurm.sh --accounting, a node declared with
--cpus CPUs so that many mostly idle jobs run at once), `culvert server start` (SQLite,
temporary HOME) and one `culvert agent start --type slurm --max-concurrent M`, with
counting shims for sbatch/squeue/sacct/scontrol/scancel first on its PATH (each logs its
call, then runs the real command). Registers the e2e flow; runs --latency-runs runs one at
a time (each final before the next is created) for the claim -> sbatch figure on an
otherwise idle cluster; then, once per value of
--submit-parallelism (default 1,8: one after another, then eight at once), queues N runs,
starts the agent, waits until every run is final, stops the agent, and reports:

  agent overhead   claim (the run's submitted_at) -> sbatch returned (the agent's
                   "launched as Slurm job" log line), p50/p90, beside a bare
                   `sbatch --parsable --wrap true` through the same shim, timed on the
                   idle cluster and every 0.5 s while the runs go (the part that is Slurm's)
  Slurm calls      by command over the whole run, and per poll (squeue calls, and the
                   agent's polls over the run time at --poll-interval)
  every run once   each run's marker line counted; one job per run (sacct by job name)
  throughput       runs per second, first creation -> last final state
  side by side     Slurm's own time per job from sacct: submit -> start (queueing and
                   scheduling), start -> end (the job), and Culvert's end detection
                   (job end -> the run's final state on the server)

Usage: bench/slurm/slurm_bench.py [--build build] [--runs 200] [--max-concurrent 50]
                                  [--cpus 64] [--poll-interval 1s] [--latency-runs 30]
                                  [--submit-parallelism 1,8]
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from culvert_bench import Api, pct, start_server, ts  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))



def local_ts(s):  # sacct / spdlog local times, no zone: this machine's
    return datetime.fromisoformat(s).timestamp()


def ms(x):
    return "%.0f ms" % (x * 1000)


def latency_phase(a, culvert, tmp, env, cenv, shims, calls_log, api, procs):
    """One run at a time on an otherwise idle cluster: claim -> sbatch returned, unloaded."""
    agent_log_path = os.path.join(tmp, "agent-latency.log")
    open(calls_log, "w").close()
    agent = subprocess.Popen([culvert, "agent", "start", "--type", "slurm", "--name", "bench-latency", "--label", "hpc",
                              "--max-concurrent", "1", "--poll-interval", a.poll_interval,
                              "--job-output-dir", os.path.join(tmp, "job-output")],
                             env=dict(cenv, PATH=shims + ":" + env["PATH"]),
                             stdout=open(agent_log_path, "w"), stderr=subprocess.STDOUT)
    procs.append(agent)
    marker = os.path.join(tmp, "executions-latency")
    runs = {}
    for _ in range(a.latency_runs):
        r = api.call("POST", "/api/v1/flow-runs", {"project": "bench", "flow": "e2e",
                                                   "parameters": {"marker": marker, "sleep_ms": 0}})
        deadline = time.time() + 120
        while time.time() < deadline:
            run = api.call("GET", "/api/v1/flow-runs/" + r["id"])
            if run["state"] in ("Success", "Failed", "Crashed", "Cancelled", "TimedOut"):
                runs[r["id"]] = run
                break
            time.sleep(0.1)
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    launched = {}
    for line in open(agent_log_path):
        if "launched as Slurm job" in line:
            launched[line.split("run ")[1].split(" ")[0]] = local_ts(line[1:24])
    sbatch_start = {}
    for line in open(calls_log):
        if line.startswith("sbatch ") and "--job-name=" in line:
            sbatch_start["-".join(line.strip().rsplit("-", 5)[-5:])] = float(line.split()[1])
    ids = [i for i in runs if i in launched and i in sbatch_start]
    total = [launched[i] - ts(runs[i]["submitted_at"]) for i in ids]
    before = [sbatch_start[i] - ts(runs[i]["submitted_at"]) for i in ids]
    during = [launched[i] - sbatch_start[i] for i in ids]
    states = {}
    for r in runs.values():
        states[r["state"]] = states.get(r["state"], 0) + 1
    print("Slurm agent, %d runs one at a time (each final before the next is created), idle cluster" % a.latency_runs)
    print("  final states: %s" % states)
    print("  agent overhead, claim -> sbatch returned: p50 %s, p90 %s (n=%d); of which claim -> sbatch started "
          "p50 %s, p90 %s; the sbatch call p50 %s, p90 %s" %
          (ms(pct(total, 50)), ms(pct(total, 90)), len(total), ms(pct(before, 50)), ms(pct(before, 90)),
           ms(pct(during, 50)), ms(pct(during, 90))))


def phase(a, culvert, tmp, env, cenv, shims, calls_log, api, procs, parallelism):
    """N runs queued, then one agent with --submit-parallelism P until all are final."""
    tag = "p%d" % parallelism
    agent_log_path = os.path.join(tmp, "agent-%s.log" % tag)
    shim_env = dict(env, PATH=shims + ":" + env["PATH"], BENCH_BARE="1")

    def bare_sbatch():  # one sbatch through the same shim as the agent's, timed
        t0 = time.time()
        subprocess.run(["sbatch", "--parsable", "--wrap", "true", "-o", "/dev/null"], env=shim_env, check=True,
                       stdout=subprocess.DEVNULL)
        return time.time() - t0

    # Bare sbatch round trips on the idle cluster, the part of the overhead that is Slurm's.
    bare_idle = [bare_sbatch() for _ in range(20)]
    time.sleep(3)  # let those end before the measured runs
    open(calls_log, "w").close()

    # N runs queued before the agent starts.
    marker = os.path.join(tmp, "executions-" + tag)
    t_start = time.time()
    ids = []
    for _ in range(a.runs):
        r = api.call("POST", "/api/v1/flow-runs", {"project": "bench", "flow": "e2e",
                                                   "parameters": {"marker": marker, "sleep_ms": 1000}})
        ids.append(r["id"])
    agent = subprocess.Popen([culvert, "agent", "start", "--type", "slurm", "--name", "bench-" + tag, "--label", "hpc",
                              "--max-concurrent", str(a.max_concurrent), "--poll-interval", a.poll_interval,
                              "--submit-parallelism", str(parallelism),
                              "--job-output-dir", os.path.join(tmp, "job-output")],
                             env=dict(cenv, PATH=shims + ":" + env["PATH"]),
                             stdout=open(agent_log_path, "w"), stderr=subprocess.STDOUT)
    procs.append(agent)
    # Bare sbatch beside the agent's, every 0.5 s while the runs go: the same load.
    bare_busy = []
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.5):
            bare_busy.append(bare_sbatch())

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    runs = {}
    deadline = time.time() + 1800
    while time.time() < deadline:
        pending = [i for i in ids if i not in runs]
        for i in pending:
            run = api.call("GET", "/api/v1/flow-runs/" + i)
            if run["state"] in ("Success", "Failed", "Crashed", "Cancelled", "TimedOut"):
                runs[i] = run
        if len(runs) == len(ids):
            break
        time.sleep(0.5)
    stop.set()
    th.join()
    t_end = max(ts(r["end_time"]) for r in runs.values())
    elapsed = t_end - t_start
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)

    states = {}
    for r in runs.values():
        states[r["state"]] = states.get(r["state"], 0) + 1
    executions = {}
    for line in open(marker):
        executions[line.strip()] = executions.get(line.strip(), 0) + 1
    once = sum(1 for i in ids if executions.get(i) == 1)

    # Agent overhead: claim (submitted_at) -> "launched as Slurm job" in the agent's log.
    launched = {}
    for line in open(agent_log_path):
        if "launched as Slurm job" in line:
            stamp = line[1:24]
            run_id = line.split("run ")[1].split(" ")[0]
            launched[run_id] = (local_ts(stamp), line.rsplit("Slurm job ", 1)[1].strip())
    overhead = [launched[i][0] - ts(runs[i]["submitted_at"]) for i in ids if i in launched]

    # Slurm's own times from sacct.
    jobs = {launched[i][1]: i for i in ids if i in launched}
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(jobs), "-o", "JobID,JobName,Submit,Start,End,State"],
                         env=env, check=True, capture_output=True, text=True).stdout
    queue, job_time, detect = [], [], []
    names = {}
    for line in out.splitlines():
        f = line.split("|")
        if len(f) < 6 or f[0] not in jobs:
            continue
        names[f[1]] = names.get(f[1], 0) + 1
        sub, start, end = local_ts(f[2]), local_ts(f[3]), local_ts(f[4])
        queue.append(start - sub)
        job_time.append(end - start)
        detect.append(ts(runs[jobs[f[0]]]["end_time"]) - end)
    calls = {}
    times = []
    sbatch_start = {}  # run id -> when its sbatch started
    for line in open(calls_log):
        cmd, t = line.split()[:2]
        if cmd == "sbatch" and "--job-name=" in line:
            run_id = "-".join(line.strip().rsplit("-", 5)[-5:])  # culvert-<flow>-<uuid>: its last 5 groups
            sbatch_start[run_id] = float(t)
        calls[cmd] = calls.get(cmd, 0) + 1
        if cmd == "squeue":
            times.append(float(t))
    poll_s = float(a.poll_interval.rstrip("s")) if a.poll_interval.endswith("s") and not a.poll_interval.endswith("ms") \
        else float(a.poll_interval.rstrip("ms")) / 1000

    calls.pop("sbatch-bare", None)
    print("Slurm agent, %d runs queued, --max-concurrent %d, --submit-parallelism %d, node of %d declared CPUs, "
          "poll %s" % (a.runs, a.max_concurrent, parallelism, a.cpus, a.poll_interval))
    print("  final states: %s; executed exactly once: %d/%d; distinct jobs: %d; jobs per run name (sacct): %s" %
          (states, once, len(ids), len(jobs), sorted(set(names.values()))))
    print("  throughput: %.2f runs/s (%.1f s for %d runs)" % (a.runs / elapsed, elapsed, a.runs))
    print("  agent overhead, claim -> sbatch returned: p50 %s, p90 %s (n=%d)" %
          (ms(pct(overhead, 50)), ms(pct(overhead, 90)), len(overhead)))
    before = [sbatch_start[i] - ts(runs[i]["submitted_at"]) for i in ids if i in sbatch_start]
    during = [launched[i][0] - sbatch_start[i] for i in ids if i in sbatch_start and i in launched]
    if before and during:
        print("    of which claim -> sbatch started: p50 %s, p90 %s; sbatch started -> returned (the agent's own "
              "sbatch): p50 %s, p90 %s (n=%d)" % (ms(pct(before, 50)), ms(pct(before, 90)), ms(pct(during, 50)),
                                                 ms(pct(during, 90)), len(during)))
    print("  a bare sbatch through the same shim: idle cluster p50 %s, p90 %s (n=%d); beside the agent's, "
          "every 0.5 s during the runs: p50 %s, p90 %s (n=%d)" %
          (ms(pct(bare_idle, 50)), ms(pct(bare_idle, 90)), len(bare_idle), ms(pct(bare_busy, 50)),
           ms(pct(bare_busy, 90)), len(bare_busy)))
    print("  Slurm calls: %s; squeue calls %d over %.1f s = %d polls of %s: %.2f squeue per poll" %
          (calls, calls.get("squeue", 0), elapsed, int(elapsed / poll_s), a.poll_interval,
           calls.get("squeue", 0) / max(1, int(elapsed / poll_s))))
    print("  Slurm's own time per job (sacct, 1 s resolution): submit -> start p50 %.1f s p90 %.1f s; "
          "start -> end p50 %.1f s p90 %.1f s" %
          (pct(queue, 50), pct(queue, 90), pct(job_time, 50), pct(job_time, 90)))
    print("  Culvert's end detection, job end -> run final on the server: p50 %.2f s, p90 %.2f s" %
          (pct(detect, 50), pct(detect, 90)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--max-concurrent", type=int, default=50)
    ap.add_argument("--cpus", type=int, default=64)
    ap.add_argument("--poll-interval", default="1s")
    ap.add_argument("--latency-runs", type=int, default=30,
                    help="runs created one at a time first, for the unloaded claim -> sbatch figure (0: none)")
    ap.add_argument("--submit-parallelism", default="1,8",
                    help="comma-separated: one phase per value, each with N fresh runs")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    culvert = os.path.join(build, "culvert")
    flow_bin = os.path.join(build, "tests", "e2e", "e2e_flow")
    tmp = tempfile.mkdtemp(prefix="culvert-slurm-bench-")
    procs = []
    slurm_dir = os.path.join(tmp, "slurm")
    try:
        env0 = dict(os.environ, SLURM_TEST_CPUS=str(a.cpus), SLURM_TEST_MEMORY_MB=str(a.cpus * 200))
        subprocess.run([os.path.join(ROOT, "scripts", "testenv", "slurm.sh"), "start", slurm_dir, "--accounting"],
                       env=env0, check=True, stdout=subprocess.DEVNULL)
        if os.path.exists(os.path.join(slurm_dir, "missing")):
            print("skipped: " + open(os.path.join(slurm_dir, "missing")).read().strip())
            return 0
        slurm_env = dict(l.strip().split("=", 1) for l in open(os.path.join(slurm_dir, "env")) if "=" in l)
        slurm_env.pop("SLURM_ACCOUNTING", None)
        env = dict(os.environ, HOME=os.path.join(tmp, "home"), **slurm_env)
        os.makedirs(env["HOME"])
        for k in ("CULVERT_API_URL", "CULVERT_API_TOKEN", "CULVERT_PROFILE"):
            env.pop(k, None)

        # Counting shims: log "<command> <epoch seconds>" then exec the real one.
        shims = os.path.join(tmp, "shims")
        os.makedirs(shims)
        calls_log = os.path.join(tmp, "slurm-calls.log")
        for cmd in ("sbatch", "squeue", "sacct", "scontrol", "scancel"):
            real = shutil.which(cmd)
            with open(os.path.join(shims, cmd), "w") as f:
                # The benchmark's own bare sbatch calls (BENCH_BARE=1) are logged apart.
                # sbatch's line also names the job (--job-name=culvert-<flow>-<run>).
                job = ' $(for x in "$@"; do case "$x" in --job-name=*) echo "$x";; esac; done)' if cmd == "sbatch" else ""
                f.write("#!/bin/sh\necho \"%s${BENCH_BARE:+-bare} $(date +%%s.%%N)%s\" >> '%s'\nexec '%s' \"$@\"\n"
                        % (cmd, job, calls_log, real))
            os.chmod(os.path.join(shims, cmd), 0o755)

        url, token, api = start_server(culvert, tmp, env, procs, ["--submitted-deadline", "1h"])
        cenv = dict(env, CULVERT_API_URL=url, CULVERT_API_TOKEN=token)
        subprocess.run([culvert, "flow", "register", flow_bin, "--project", "bench", "--storage",
                        "file://" + os.path.join(tmp, "flows"), "--label", "hpc", "--run-config",
                        json.dumps({"type": "slurm", "memory": "100M", "time_limit": "10m"})],
                       env=cenv, check=True, stdout=subprocess.DEVNULL)
        if a.latency_runs > 0:
            latency_phase(a, culvert, tmp, env, cenv, shims, calls_log, api, procs)
        for parallelism in [int(x) for x in a.submit_parallelism.split(",")]:
            phase(a, culvert, tmp, env, cenv, shims, calls_log, api, procs, parallelism)
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run([os.path.join(ROOT, "scripts", "testenv", "slurm.sh"), "stop", slurm_dir])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
