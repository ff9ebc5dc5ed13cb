"""culvert.main(flow): the flow file's command line, as a C++ flow binary's."""

import json
import signal
import subprocess
import sys

HELLO = """
    import culvert
    from culvert import task, Flow, Parameter

    @task(retries=1, retry_delay=0)
    def greet(who: str, times: int):
        print("hello", who)
        return [who] * times

    @task
    def shout(x):
        return x.upper()

    with Flow("hello") as flow:
        who = Parameter("who", default="world")
        times = Parameter("times", default=2)
        shout.map(greet(who, times))

    if __name__ == "__main__":
        culvert.main(flow)
"""


def test_run_prints_a_summary_and_logs(flow_file, run_file):
    p = flow_file(HELLO)
    r = run_file(p, "run", "--param", "who=culvert", "--output", "json", "--workers", "2")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["flow"] == "hello" and doc["state"] == "Success"
    assert "hello culvert" in r.stderr
    runs = [t for t in doc["task_runs"] if t["task"] == "shout"]
    assert [t["map_index"] for t in runs] == [0, 1]


def test_bad_parameters_and_flags_exit_2(flow_file, run_file):
    p = flow_file(HELLO)
    r = run_file(p, "run", "--param", "times=many")
    assert r.returncode == 2
    assert "times" in r.stderr
    r = run_file(p, "run", "--param", "nope=1")
    assert r.returncode == 2 and "nope" in r.stderr
    r = run_file(p, "run", "--workers", "0")
    assert r.returncode == 2 and "--workers" in r.stderr
    r = run_file(p, "frobnicate")
    assert r.returncode == 2
    r = run_file(p)
    assert r.returncode == 2 and "usage" in r.stderr


def test_describe_and_graph(flow_file, run_file):
    p = flow_file(HELLO)
    r = run_file(p, "describe")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["artifact_kind"] == "python"
    assert [t["name"] for t in d["tasks"]] == ["greet", "shout"]
    r = run_file(p, "graph", "--dot")
    assert r.returncode == 0 and "digraph" in r.stdout and "greet" in r.stdout
    r = run_file(p, "execute")
    assert r.returncode == 2 and "CULVERT_API_URL" in r.stderr
    r = run_file(p, "register")
    assert r.returncode == 2 and "--project" in r.stderr


def test_a_failed_run_exits_1(flow_file, run_file):
    p = flow_file("""
        import culvert
        from culvert import task, Flow

        @task
        def bad():
            raise RuntimeError("it broke")

        with Flow("bad") as flow:
            bad()

        culvert.main(flow)
    """)
    r = run_file(p, "run")
    assert r.returncode == 1
    assert "RuntimeError: it broke" in r.stdout + r.stderr
    assert "Traceback" in r.stderr


def test_sigterm_cancels_the_run(flow_file):
    p = flow_file("""
        import culvert
        from culvert import task, Flow

        @task
        def wait():
            print("waiting now", flush=True)
            while culvert.context().sleep(0.05):
                pass
            return "stopped"

        @task
        def later(x):
            return x

        with Flow("cancel") as flow:
            later(wait())

        culvert.main(flow)
    """)
    proc = subprocess.Popen([sys.executable, str(p), "run", "--output", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "waiting now" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    doc = json.loads(out)
    assert doc["state"] == "Cancelled"
    states = {t["task"]: t["state"] for t in doc["task_runs"]}
    assert states["wait"] == "Cancelled"


def test_a_task_left_behind_by_its_timeout_does_not_hold_the_process(flow_file, run_file):
    p = flow_file("""
        import threading, time
        import culvert
        from culvert import task, Flow

        @task(timeout=0.2, grace=0.2)
        def stuck():
            threading.Event().wait()   # ignores the cancellation forever

        with Flow("stuck") as flow:
            stuck()

        culvert.main(flow)
    """)
    r = run_file(p, "run", "--output", "json", timeout=60)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["task_runs"][0]["state"] == "TimedOut"
    assert "abandoned" in doc["task_runs"][0]["message"]
