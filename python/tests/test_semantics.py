"""The SDK's semantics on the engine: parameters, retries on a simulated clock, timeouts,
triggers, map/reduce, ordering, command tasks, logs, exceptions, hooks and limits."""

import threading

import pytest

import culvert
from culvert import Flow, Parameter, task


def test_a_flow_passes_values_between_tasks():
    @task
    def extract(rows: int):
        return list(range(rows))

    @task
    def total(xs):
        return sum(xs)

    with Flow("etl") as flow:
        rows = Parameter("rows", default=4)
        t = total(extract(rows))
    r = flow.run()
    assert r.state == "Success", r
    assert r.result(t) == 6
    assert flow.run(parameters={"rows": 5}).result(t) == 10


def test_parameter_types_come_from_defaults_hints_and_type():
    @task
    def use(n: int, ratio: float, flag: bool, name):
        return (n, ratio, flag, name)

    with Flow("params") as flow:
        n = Parameter("n")                       # required; int from the hint
        ratio = Parameter("ratio", default=0.5)  # float from the default
        flag = Parameter("flag", type=bool, default=True)
        name = Parameter("name", default="x")
        out = use(n, ratio, flag, name)
    params = {p["name"]: p for p in flow.describe()["parameters"]}
    assert params["n"]["type"] == "int" and params["n"]["required"] is True
    assert params["ratio"]["type"] == "float"
    assert params["flag"]["type"] == "bool"
    assert params["name"]["type"] == "string"
    r = flow.run(parameters={"n": "3", "flag": False})
    assert r.result(out) == (3, 0.5, False, "x")
    with pytest.raises(ValueError, match="n"):
        flow.run()  # a required parameter without a value
    with pytest.raises(ValueError, match="n"):
        flow.run(parameters={"n": "three"})


def test_bad_parameter_defaults_are_refused():
    with Flow("bad"):
        with pytest.raises(TypeError, match="'when'"):
            Parameter("when", default=[1, 2])
        with pytest.raises(ValueError, match="None"):
            Parameter("x", default=None)


def test_retries_wait_on_the_simulated_clock():
    calls = []
    clock = culvert.ManualClock()
    start = clock.now()

    @task(retries=3, retry_delay=10, retry_backoff=2)
    def flaky():
        calls.append(clock.now() - start)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "ok"

    with Flow("retries") as flow:
        t = flaky()
    r = flow.run(clock=clock)
    assert r.state == "Success"
    assert r.result(t) == "ok"
    assert r.task_run(t).attempts == 3
    # 10 s, then 20 s (backoff 2), in simulated time only.
    assert calls == [0.0, 10.0, 30.0]
    retrying = [e for e in r.events if e[2] == "Retrying"]
    assert len(retrying) == 2
    assert "ConnectionError: not yet" in retrying[0][4]


def test_retry_on_an_exception_class():
    attempts = []

    @task(retries=5, retry_on=ConnectionError)
    def wrong_kind():
        attempts.append(1)
        raise ValueError("bad input")

    @task(retries=2, retry_on=OSError)  # ConnectionError is an OSError
    def right_kind():
        attempts.append(2)
        raise ConnectionResetError("reset")

    with Flow("retry-on") as flow:
        a = wrong_kind()
        b = right_kind()
    r = flow.run(clock=culvert.ManualClock())
    assert r.state == "Failed"
    assert r.task_run(a).attempts == 1
    assert r.task_run(b).attempts == 3
    assert r.task_run(a).message == "ValueError: bad input"


def test_an_exception_is_the_message_and_its_traceback_a_log_line():
    @task
    def boom():
        raise KeyError("missing")

    with Flow("exc") as flow:
        t = boom()
    r = flow.run()
    assert r.state == "Failed"
    assert r.task_run(t).state == "Failed"
    assert r.task_run(t).message == "KeyError: 'missing'"
    errors = [m for (task_name, _, level, m) in r.logs if task_name == "boom" and level == "ERROR"]
    assert len(errors) == 1
    assert errors[0].startswith("Traceback (most recent call last):")
    assert 'raise KeyError("missing")' in errors[0]


def test_print_and_logging_become_the_task_runs_log_lines():
    import logging
    import sys

    @task
    def chatty(x):
        print("hello", x)
        print("part", end="")
        print(" two")
        print("to stderr", file=sys.stderr)
        logging.getLogger("user.module").info("from logging %d", 7)
        culvert.get_logger().warning("from the task logger")
        print("unterminated", end="")
        return x

    with Flow("logs") as flow:
        chatty(1)
    r = flow.run()
    assert r.state == "Success"
    lines = [(level, m) for (t, _, level, m) in r.logs if t == "chatty"]
    assert lines == [("INFO", "hello 1"), ("INFO", "part two"), ("WARNING", "to stderr"),
                     ("INFO", "from logging 7"), ("WARNING", "from the task logger"), ("INFO", "unterminated")]


def test_skip_ends_the_task_run_skipped_and_skips_downstream():
    @task
    def maybe():
        raise culvert.SKIP("nothing to do today")

    @task
    def after_it(x):
        return x

    with Flow("skip") as flow:
        a = maybe()
        b = after_it(a)
    r = flow.run()
    assert r.task_run(a).state == "Skipped"
    assert r.task_run(a).message == "nothing to do today"
    assert r.task_run(b).state == "Skipped"
    assert r.state == "Success"


def test_triggers():
    @task
    def fails():
        raise RuntimeError("no")

    @task(trigger="all_finished")
    def cleanup():
        return "cleaned"

    @task(trigger=culvert.ANY_FAILED)
    def alert():
        return "alerted"

    @task
    def normal():
        return "ran"

    with Flow("triggers") as flow:
        f = fails()
        c = cleanup().after(f)
        a = alert().after(f)
        n = normal().after(f)
    r = flow.run()
    assert r.task_run(c).state == "Success" and r.result(c) == "cleaned"
    assert r.task_run(a).state == "Success"
    assert r.task_run(n).state == "TriggerFailed"
    assert r.state == "Failed"
    with pytest.raises(ValueError, match="unknown trigger"):
        task(lambda: 1, trigger="sometimes")


def test_map_and_reduce():
    @task
    def numbers(n):
        return list(range(n))

    @task
    def square(x):
        return x * x

    @task
    def add(x, y):
        return x + y

    @task
    def total(xs):
        return sum(xs)

    with Flow("map") as flow:
        sq = square.map(numbers(5))
        tot = total(sq)
        shifted = add.map([1, 2, 3], y=culvert.unmapped(10))
        empty = square.map(numbers(0))
        tot_empty = total(empty)
    r = flow.run(workers=3)
    assert r.state == "Success", [t for t in r.task_runs if t.state != "Success"]
    assert r.result(sq) == [0, 1, 4, 9, 16]
    assert r.result(tot) == 30
    assert r.result(shifted) == [11, 12, 13]
    assert r.result(empty) == [] and r.result(tot_empty) == 0
    assert [t.map_index for t in r.task_runs if t.task == "square"] == [0, 1, 2, 3, 4]


def test_mapping_over_something_that_is_not_a_sequence_fails_clearly():
    @task
    def one():
        return 42

    @task
    def each(x):
        return x

    with Flow("map-bad") as flow:
        m = each.map(one())
    r = flow.run()
    assert r.state == "Failed"
    failed = [t for t in r.task_runs if t.task == "each"]
    assert "TypeError: map() maps over a list or another sequence, not a value of type int" in failed[0].message
    assert m is not None


def test_a_failing_mapped_run_fails_the_reduce():
    @task
    def inverse(x):
        return 1 / x

    @task
    def total(xs):
        return sum(xs)

    with Flow("map-fail") as flow:
        t = total(inverse.map([1, 0, 2]))
    r = flow.run()
    assert r.task_run("inverse", 1).state == "Failed"
    assert r.task_run("inverse", 1).message == "ZeroDivisionError: division by zero"
    assert r.task_run("inverse", 0).state == "Success"
    assert r.task_run(t).state == "TriggerFailed"


def test_after_orders_tasks_and_shell_tasks_run_commands(tmp_path):
    order = []

    @task
    def first():
        order.append("first")

    @task
    def second():
        order.append("second")

    marker = tmp_path / "m"
    with Flow("order") as flow:
        s = second()
        f = first()
        s.after(f)
        sh = culvert.shell("write", f"echo out; echo err >&2; echo done > {marker}").after(s)
        bad = culvert.shell("bad", "exit 3")
    r = flow.run()
    assert order == ["first", "second"]
    assert r.task_run(sh).state == "Success"
    assert marker.read_text() == "done\n"
    assert [(level, m) for (t, _, level, m) in r.logs if t == "write"] == [("INFO", "out"), ("WARNING", "err")]
    assert r.task_run(bad).state == "Failed"
    with Flow("dup"):
        culvert.shell("x", "true")
        with pytest.raises(ValueError, match="already exists"):
            culvert.shell("x", "true")


def test_calling_the_same_task_twice_gives_two_task_runs():
    @task
    def one(x):
        return x

    with Flow("twice") as flow:
        a = one(1)
        b = one(2)
    assert (a.name, b.name) == ("one", "one-2")
    r = flow.run()
    assert (r.result(a), r.result(b)) == (1, 2)


def test_tasks_outside_a_flow_are_refused_and_run_calls_the_function():
    @task
    def f(x):
        return x + 1

    with pytest.raises(RuntimeError, match="outside a `with Flow"):
        f(1)
    assert f.run(1) == 2


def test_hooks_see_state_changes_and_failures():
    seen, failures, flow_states = [], [], []

    @task(on_state_change=lambda e: seen.append(e.state), on_failure=lambda e: failures.append(e.message))
    def bad():
        raise ValueError("x")

    with Flow("hooks", on_state_change=lambda e: flow_states.append(e.state)) as flow:
        bad()
    r = flow.run()
    assert r.state == "Failed"
    assert seen == ["Running", "Failed"]
    assert failures == ["ValueError: x"]
    assert flow_states == ["Running", "Failed"]


def test_workers_run_python_tasks_in_parallel_with_the_gil_released_in_waits():
    barrier = threading.Barrier(2, timeout=60)

    @task
    def meet(i):
        barrier.wait()  # both tasks must be running at once
        return i

    with Flow("parallel") as flow:
        a = meet(1)
        b = meet(2)
    r = flow.run(workers=2)
    assert r.state == "Success", r.task_runs
    assert (r.result(a), r.result(b)) == (1, 2)


def test_concurrency_limits_by_tag():
    lock = threading.Lock()
    running = [0]
    peak = [0]

    @task(tags=["db"])
    def query(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        culvert.context().sleep(0.01)
        with lock:
            running[0] -= 1
        return i

    with Flow("limits", concurrency_limits={"db": 1}) as flow:
        m = query.map(list(range(6)))
    r = flow.run(workers=4)
    assert r.state == "Success"
    assert r.result(m) == list(range(6))
    assert peak[0] == 1


def test_context_describes_the_task_run():
    @task
    def who(x):
        c = culvert.context()
        return (c.task_name, c.map_index, c.attempt, c.flow_name, c.parameter("p"))

    with Flow("ctx") as flow:
        p = Parameter("p", default="v")
        m = who.map([p, p]) if False else who.map(["a", "b"])
        w = who(p)
    r = flow.run(flow_run_id="run-1")
    assert r.result(m) == [("who", 0, 1, "ctx", "v"), ("who", 1, 1, "ctx", "v")]
    assert r.result(w) == ("who-2", -1, 1, "ctx", "v")
    with pytest.raises(RuntimeError):
        culvert.context()


def test_a_task_that_sees_its_timeout_ends_timed_out():
    @task(timeout=5)
    def polite():
        # Sleeps on the run's (simulated) clock and returns when the timeout cancels it.
        while culvert.context().sleep(1):
            pass
        return "stopped"

    @task(timeout=5, retries=1)
    def quick():
        return "fine"

    with Flow("timeouts") as flow:
        p = polite()
    r = flow.run(clock=culvert.ManualClock())
    assert r.task_run(p).state == "TimedOut"
    assert r.task_run(p).message == "timed out after 5s"
    assert r.task_run(p).attempts == 1
    assert r.state == "Failed"
    with Flow("quick") as flow:
        q = quick()
    r = flow.run(clock=culvert.ManualClock())
    assert r.task_run(q).state == "Success" and r.result(q) == "fine"


def test_a_task_that_ignores_its_timeout_is_abandoned_after_the_grace():
    clock = culvert.ManualClock()
    release = threading.Event()
    finished = threading.Event()

    @task(timeout=5, grace=2)
    def stubborn():
        clock.advance(60)  # past the timeout and the grace, ignoring the token
        release.wait(60)
        finished.set()
        return "too late"

    @task(trigger="all_finished")
    def after_it():
        return "ran"

    with Flow("abandon") as flow:
        s = stubborn()
        a = after_it().after(s)
    r = flow.run(clock=clock)
    release.set()
    assert r.task_run(s).state == "TimedOut"
    assert "ignored its cancellation for the grace period of 2s and was abandoned" in r.task_run(s).message
    assert r.task_run(a).state == "Success"
    assert r.state == "Success"  # the terminal task decides
    assert finished.wait(60)  # the thread left behind ran on, holding the GIL only for Python code


def test_definition_errors_are_reported():
    @task
    def a():
        return 1

    with Flow("cycle") as flow:
        x = a()
        y = a().after(x)
        x.after(y)
    with pytest.raises(ValueError, match="cycle"):
        flow.validate()
    with Flow("other") as other:
        z = a()
    @task
    def b(v):
        return v

    with Flow("mixed"):
        with pytest.raises(ValueError, match="another flow"):
            b(z)
    assert other is not None


def test_describe_and_graph():
    @task(retries=2, retry_delay=1, timeout=30, tags=["t"])
    def extract(rows: int):
        return rows

    with Flow("etl", storage="s3://bucket/flows",
              run_config=culvert.EcsRun(image="img:1", cpu=1024, memory=2048, labels=["fargate-dev"]),
              schedule=culvert.Cron("0 6 * * *", "Europe/Berlin")) as flow:
        rows = Parameter("rows", default=1000)
        e = extract(rows)
        culvert.shell("report", "echo hi").after(e)
    d = flow.describe()
    assert d["artifact_kind"] == "python"
    assert d["name"] == "etl" and d["storage"] == "s3://bucket/flows"
    t = {x["name"]: x for x in d["tasks"]}
    assert t["extract"]["kind"] == "python" and t["extract"]["retries"] == 2
    assert t["extract"]["timeout_ms"] == 30000 and t["extract"]["tags"] == ["t"]
    assert t["report"]["kind"] == "shell"
    assert d["run_config"]["type"] == "ecs" and d["run_config"]["image"] == "img:1"
    assert d["schedule"]["cron"] == "0 6 * * *"
    assert "extract" in flow.graph() and "report" in flow.graph()
