"""Dask's threaded scheduler on the graphs of engine_bench.cpp: N independent no-op
tasks, a chain of N, and one map of N elements with a reduce. Prints one JSON line per
(shape, workers) with the wall time per task. Run with Debian's python3-dask:
    /usr/bin/python3 dask_bench.py --n 100000
"""
import argparse
import json
import time

import dask
from dask.threaded import get as threaded_get


def noop():
    return None


def inc(v):
    return v + 1


def source(n):
    return [1] * n


def pick(src, i):
    return src[i]


def total(values):
    return sum(values)


def graphs(n):
    independent = {("t", i): (noop,) for i in range(n)}
    chain = {("c", 0): (noop,)}
    chain[("c", 0)] = (lambda: 0,)
    for i in range(1, n):
        chain[("c", i)] = (inc, ("c", i - 1))
    mapped = {"source": (source, n)}
    for i in range(n):
        mapped[("m", i)] = (pick, "source", i)
    mapped["reduce"] = (total, [("m", i) for i in range(n)])
    return {
        "independent": (independent, list(independent.keys()), n),
        "chain": (chain, [("c", n - 1)], n),
        "map": (mapped, ["reduce"], n + 2),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    args = ap.parse_args()
    for shape, (graph, keys, tasks) in graphs(args.n).items():
        for workers in (1, 2):
            t0 = time.perf_counter()
            threaded_get(graph, keys, num_workers=workers)
            dt = time.perf_counter() - t0
            print(json.dumps({"shape": shape, "workers": workers, "us_per_task": dt * 1e6 / tasks,
                              "dask": dask.__version__}), flush=True)


if __name__ == "__main__":
    main()
