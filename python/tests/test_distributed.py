"""Distributed maps in the Python SDK: map(workers=...) and Flow(result_storage=...), the
flow description's "distributed" member (as the C++ SDK writes it), the refusal of a
distributed map without storage, local runs (in this process), and chunked runs, in
which each chunk's elements and results go through the serializers as they do between
a parent run and its workers."""

import json
import os
import subprocess
import sys

import pytest

import culvert
from culvert import Flow, Parameter, task


class CountingJSON(culvert.JSONSerializer):
    """JSON, counting what it turns into bytes and back."""

    def __init__(self):
        self.dumped, self.loaded = [], []

    def dumps(self, value):
        self.dumped.append(value)
        return super().dumps(value)

    def loads(self, data):
        value = super().loads(data)
        self.loaded.append(value)
        return value


def scoring_flow(storage="file:///shared/maps", workers=4, chunk_size=3, n=10, run_config=None,
                 items_serializer=None, score_serializer=None):
    @task(serializer=items_serializer)
    def items(count: int):
        return [f"item-{i}" for i in range(count)]

    @task(serializer=score_serializer)
    def score(item):
        return (int(item.split("-")[1]) * 2, os.getpid())

    @task
    def reduce(scores):
        return sum(s for s, _ in scores)

    with Flow("scoring", result_storage=storage) as flow:
        count = Parameter("n", default=n)
        scored = score.map(items(count), workers=workers, chunk_size=chunk_size, run_config=run_config)
        total = reduce(scored)
    return flow, scored, total


def test_a_local_run_of_a_distributed_map_runs_in_this_process():
    flow, scored, total = scoring_flow()
    r = flow.run(workers=3)
    assert r.state == "Success", r
    assert r.result(total) == sum(2 * i for i in range(10))
    assert {pid for _, pid in r.result(scored)} == {os.getpid()}
    assert [t.map_index for t in r.task_runs if t.task == "score"] == list(range(10))
    # Nothing crossed a serializer: the elements' results are the tuples the task returned.
    assert all(isinstance(v, tuple) for v in r.result(scored))


def test_describe_writes_the_distributed_member_and_the_result_storage():
    flow, _, _ = scoring_flow(storage="s3://bucket/maps", workers=50, chunk_size=100,
                              run_config=culvert.LocalRun(labels=["small"]))
    d = flow.describe()
    assert d["result_storage"] == "s3://bucket/maps"
    t = {x["name"]: x for x in d["tasks"]}
    assert t["score"]["mapped"] is True
    dist = t["score"]["distributed"]
    assert {k: dist[k] for k in ("max_workers", "chunk_size", "storage")} == {
        "max_workers": 50, "chunk_size": 100, "storage": "s3://bucket/maps"}
    assert dist["run_config"]["type"] == "local" and dist["run_config"]["labels"] == ["small"]
    assert set(dist) == {"max_workers", "chunk_size", "storage", "run_config"}
    assert "distributed" not in t["items"] and "distributed" not in t["reduce"]


def test_a_map_s_own_storage_wins_over_the_flow_s():
    @task
    def one(x):
        return x

    with Flow("own", result_storage="s3://bucket/flow") as flow:
        one.map([1, 2], workers=2, storage="file:///mnt/shared")
    d = {x["name"]: x for x in flow.describe()["tasks"]}
    assert d["one"]["distributed"]["storage"] == "file:///mnt/shared"
    assert d["one"]["distributed"]["chunk_size"] == 0  # the elements divided by the workers
    assert "run_config" not in d["one"]["distributed"]


def test_the_description_matches_the_cpp_sdk_s():
    binary = os.path.join(os.environ.get("CULVERT_BINARY_DIR", ""), "tests", "e2e", "map_flow")
    if not os.path.exists(binary):
        pytest.skip("the C++ map flow (tests/e2e/map_flow) is not built")
    env = dict(os.environ, MAP_FLOW_STORAGE="file:///shared/maps", MAP_FLOW_WORKERS="4", MAP_FLOW_CHUNK="3")
    cpp = json.loads(subprocess.run([binary, "describe"], capture_output=True, text=True, env=env,
                                    check=True).stdout)
    flow, _, _ = scoring_flow(storage="file:///shared/maps", workers=4, chunk_size=3)
    py = flow.describe()
    cpp_task = {t["name"]: t for t in cpp["tasks"]}["score"]
    py_task = {t["name"]: t for t in py["tasks"]}["score"]
    assert py_task["distributed"] == cpp_task["distributed"]
    assert py["result_storage"] == cpp["result_storage"]


def test_a_distributed_map_without_storage_is_refused_naming_what_to_add(flow_file, run_file):
    flow, _, _ = scoring_flow(storage=None)
    with pytest.raises(ValueError) as e:
        flow.validate()
    msg = str(e.value)
    assert "task 'score' is distributed" in msg
    assert "result_storage=" in msg and "storage=" in msg
    assert ".result_storage(" not in msg  # the Python SDK's words, not the C++ one's

    path = flow_file("""
        import culvert
        from culvert import task, Flow

        @task
        def score(x):
            return x * 2

        with Flow("no-storage") as flow:
            score.map([1, 2, 3], workers=2)

        if __name__ == "__main__":
            culvert.main(flow)
    """)
    r = run_file(path, "describe")
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert "task 'score' is distributed" in r.stderr and "culvert.Flow(name, result_storage=...)" in r.stderr


def test_bad_distribution_arguments_are_refused():
    @task
    def one(x):
        return x

    with Flow("bad"):
        with pytest.raises(TypeError, match="workers=N"):
            one.map([1], chunk_size=10)
        with pytest.raises(TypeError, match="workers"):
            one.map([1], workers="50")
        with pytest.raises(TypeError, match="run config"):
            one.map([1], workers=2, run_config={"type": "local"})
    with Flow("range", result_storage="file:///x") as flow:
        one.map([1], workers=0)
    with pytest.raises(ValueError, match="max_workers must be 1..10000"):
        flow.validate()
    with Flow("where", result_storage="/tmp/maps") as flow:
        one.map([1], workers=2)
    with pytest.raises(ValueError, match="must be file:///dir or s3://bucket/prefix"):
        flow.validate()


def test_a_chunked_run_sends_elements_and_results_through_the_serializers():
    items_ser, score_ser = CountingJSON(), CountingJSON()
    flow, scored, total = scoring_flow(n=10, chunk_size=3, items_serializer=items_ser,
                                       score_serializer=score_ser)
    r = flow.run(workers=2, chunked=True)
    assert r.state == "Success", [t for t in r.task_runs if t.state != "Success"]
    assert r.result(total) == sum(2 * i for i in range(10))
    # The elements: one list per chunk (3, 3, 3, 1) through the items task's serializer.
    chunks = [v for v in items_ser.dumped if isinstance(v, list)]
    assert chunks == [[f"item-{i}" for i in range(b, min(b + 3, 10))] for b in range(0, 10, 3)]
    assert items_ser.loaded == chunks
    # The results: each element's through the mapped task's serializer, there and back:
    # JSON turns the tuples into lists, which a local run never does.
    assert len(score_ser.dumped) == 10 and len(score_ser.loaded) == 10
    assert r.result(scored) == [[2 * i, os.getpid()] for i in range(10)]
    assert [t.map_index for t in r.task_runs if t.task == "score"] == list(range(10))


def test_a_failing_element_of_a_chunked_map_fails_its_index_only():
    @task
    def inverse(x):
        return 1 / x

    @task(trigger="all_finished")
    def count(xs):
        return len(xs)

    with Flow("chunked-fail", result_storage="file:///shared") as flow:
        inv = inverse.map([1, 0, 2, 4], workers=2, chunk_size=2)
        count(inv)
    r = flow.run(chunked=True)
    states = {t.map_index: t.state for t in r.task_runs if t.task == "inverse"}
    assert states == {0: "Success", 1: "Failed", 2: "Success", 3: "Success"}
    assert "ZeroDivisionError" in r.task_run("inverse", 1).message
    # As in a local run: the same task runs end the same way, downstream triggers decide.
    local = flow.run()
    assert [(t.task, t.map_index, t.state) for t in r.task_runs] == [
        (t.task, t.map_index, t.state) for t in local.task_runs]
    assert [e for e in r.events if e[0] == "inverse" and e[1] == 1][-1][2] == "Failed"


def test_elements_the_serializer_cannot_carry_fail_the_map_not_the_process():
    @task
    def makers():
        return [lambda: 1, lambda: 2]  # pickle cannot carry lambdas

    @task
    def call(f):
        return f()

    with Flow("unpicklable", result_storage="file:///shared") as flow:
        call.map(makers(), workers=2, chunk_size=1)
    local = flow.run()
    assert local.state == "Success"  # in this process nothing is serialized
    r = flow.run(chunked=True)
    assert r.state == "Failed"
    elements = [t for t in r.task_runs if t.task == "call" and t.map_index >= 0]
    assert elements and all(t.state == "Failed" for t in elements)
    assert "cannot be serialized for the workers" in elements[0].message
