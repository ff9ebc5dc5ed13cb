"""Results, targets and caching on file:// (pickle by default, pluggable serializers)."""

import json
import pickle

import pytest

import culvert
from culvert import Flow, Parameter, task


def test_result_persists_the_value_with_pickle(tmp_path):
    @task(result=f"file://{tmp_path}/results/{{flow_name}}/{{task_name}}")
    def make():
        return {"rows": [1, 2, 3]}

    with Flow("res") as flow:
        make()
    r = flow.run()
    assert r.state == "Success"
    with open(tmp_path / "results/res/make", "rb") as fh:
        assert pickle.load(fh) == {"rows": [1, 2, 3]}


def test_a_pluggable_serializer(tmp_path):
    @task(result=culvert.LocalResult(str(tmp_path), location="{task_name}.json",
                                     serializer=culvert.JSONSerializer()))
    def make():
        return {"b": 1, "a": [True, None]}

    class Upper(culvert.Serializer):
        def dumps(self, value):
            return value.upper().encode()

        def loads(self, data):
            return data.decode()

    @task(result=f"file://{tmp_path}/upper", serializer=Upper())
    def word():
        return "quiet"

    with Flow("ser") as flow:
        make()
        word()
    r = flow.run()
    assert r.state == "Success"
    assert json.loads((tmp_path / "make.json").read_text()) == {"a": [True, None], "b": 1}
    assert (tmp_path / "upper").read_text() == "QUIET"


def test_a_value_the_serializer_refuses_fails_the_task_run(tmp_path):
    @task(result=f"file://{tmp_path}/lock")
    def unpicklable():
        import threading
        return threading.Lock()

    with Flow("unpicklable") as flow:
        t = unpicklable()
    r = flow.run()
    assert r.task_run(t).state == "Failed"
    assert "could not persist the result" in r.task_run(t).message
    assert "TypeError" in r.task_run(t).message


def test_cache_for_reuses_a_result_until_it_expires(tmp_path):
    calls = []
    clock = culvert.ManualClock()

    @task(cache_for=3600)
    def expensive(n):
        calls.append(n)
        return n * 2

    @task
    def use(x):
        return x + 1

    with Flow("cache", cache_storage=f"file://{tmp_path}/cache") as flow:
        n = Parameter("n", default=3)
        e = expensive(n)
        u = use(e)
    r1 = flow.run(clock=clock)
    r2 = flow.run(clock=clock)
    assert r1.task_run(e).state == "Success"
    assert r2.task_run(e).state == "Cached"
    assert r2.result(u) == 7
    assert calls == [3]
    flow.run(parameters={"n": 4}, clock=clock)  # other inputs: another key
    assert calls == [3, 4]
    clock.advance(3601)
    r4 = flow.run(clock=clock)
    assert r4.task_run(e).state == "Success"
    assert calls == [3, 4, 3]


def test_cache_key_function_and_constants(tmp_path):
    calls = []

    @task(cache_for=60, cache_key=lambda c: c.task_name + "-fixed")
    def keyed(x):
        calls.append(("keyed", x))
        return x

    @task(cache_for=60)
    def const(x):
        calls.append(("const", x))
        return x

    def build(value):
        with Flow("keys", cache_storage=f"file://{tmp_path}/cache") as flow:
            keyed(value)
            const(value)
        return flow

    build(1).run()
    r = build(2).run()
    # The cache key function ignores the input; the default key covers constants.
    assert r.task_run("keyed").state == "Cached"
    assert r.task_run("const").state == "Success"
    assert sorted(calls) == [("const", 1), ("const", 2), ("keyed", 1)]


def test_target_skips_the_task_when_its_result_exists(tmp_path):
    calls = []

    @task(target=f"file://{tmp_path}/targets/{{task_name}}-{{map_index}}")
    def each(x):
        calls.append(x)
        return x * 10

    @task
    def total(xs):
        return sum(xs)

    with Flow("target") as flow:
        t = total(each.map([1, 2]))
    r1 = flow.run()
    r2 = flow.run()
    assert r1.result(t) == 30 and r2.result(t) == 30
    assert sorted(calls) == [1, 2]
    assert {x.state for x in r2.task_runs if x.task == "each"} == {"Cached"}


def test_a_corrupt_cache_entry_is_ignored(tmp_path):
    calls = []

    @task(target=f"file://{tmp_path}/t")
    def make():
        calls.append(1)
        return 5

    with Flow("corrupt") as flow:
        m = make()
    (tmp_path / "t").write_bytes(b"not a pickle")
    r = flow.run()
    assert r.task_run(m).state == "Success" and r.result(m) == 5
    assert any("does not decode" in line for line in r.log_lines(m))
    assert calls == [1]


def test_result_requires_known_placeholders():
    @task(result="file:///tmp/{nope}")
    def x():
        return 1

    with Flow("placeholders") as flow:
        x()
    with pytest.raises(ValueError, match="nope"):
        flow.validate()
