"""Overhead per no-op Python task run: Culvert's Python SDK (the C++ engine, with state
tracking: every task run's states are reported to an observer and summed up) against
Dask's threaded scheduler, on the same graphs, in the same process:

  independent  N tasks without dependencies
  chain        N tasks, each taking the previous one's value
  map          one task returning a list of N, one mapped task over it, one reduce

Prints a table (microseconds per task, best of --repeat runs) and the ratio Dask/Culvert.
Run from a build tree (Debian's python3-dask):

    PYTHONPATH=build/python /usr/bin/python3 bench/python/python_bench.py --n 10000
"""

import argparse
import json
import time

import culvert
from culvert import Flow, task


def noop():
    return None


def inc(v):
    return 0 if v is None else v + 1


def source(n):
    return [1] * n


def total(values):
    return sum(values)


def culvert_flows(n):
    t_noop, t_inc = task(noop), task(inc)
    t_one = task(lambda x: x, name="one")
    t_src, t_total = task(source), task(total)
    with Flow("independent") as independent:
        for _ in range(n):
            t_noop()
    with Flow("chain") as chain:
        prev = t_noop()
        for _ in range(n - 1):
            prev = t_inc(prev)
    with Flow("map") as mapped:
        t_total(t_one.map(t_src(n)))
    return {"independent": independent, "chain": chain, "map": mapped}


def dask_graphs(n):
    independent = {("t", i): (noop,) for i in range(n)}
    chain = {("c", 0): (noop,)}
    for i in range(1, n):
        chain[("c", i)] = (inc, ("c", i - 1))
    mapped = {"source": (source, n)}
    for i in range(n):
        mapped[("m", i)] = (lambda src, i=i: src[i], "source")
    mapped["total"] = (total, [("m", i) for i in range(n)])
    return {"independent": (independent, list(independent)), "chain": (chain, [("c", n - 1)]),
            "map": (mapped, ["total"])}


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = ap.parse_args()
    import dask
    from dask.threaded import get as threaded_get

    flows = culvert_flows(args.n)
    graphs = dask_graphs(args.n)
    for f in flows.values():
        f.validate()  # builds the engine flow once, as a flow file does before its run
    rows = []
    for shape in ("independent", "chain", "map"):
        for w in args.workers:
            flow = flows[shape]

            def run_culvert():
                r = flow.run(workers=w)
                assert r.state == "Success", r

            c = best(run_culvert, args.repeat)
            dsk, keys = graphs[shape]
            d = best(lambda: threaded_get(dsk, keys, num_workers=w), args.repeat)
            per = lambda s: s / args.n * 1e6  # noqa: E731
            rows.append({"shape": shape, "workers": w, "n": args.n, "culvert_us": round(per(c), 2),
                         "dask_us": round(per(d), 2), "ratio": round(d / c, 1)})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"no-op Python task runs, N={args.n}, best of {args.repeat}; dask {dask.__version__}")
    print(f"{'graph':<12} {'workers':>7} {'culvert us/task':>16} {'dask us/task':>13} {'dask/culvert':>13}")
    for r in rows:
        print(f"{r['shape']:<12} {r['workers']:>7} {r['culvert_us']:>16.2f} {r['dask_us']:>13.2f} {r['ratio']:>12.1f}x")


if __name__ == "__main__":
    main()
