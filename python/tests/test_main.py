"""culvert.main(flow): the flow file's command line, as a C++ flow binary's."""

import json
import os
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


def test_the_documented_pandas_example_runs(run_file):
    import os

    import pandas

    example = os.path.join(os.environ["CULVERT_SOURCE_DIR"], "examples", "python", "ecs_demo.py")
    r = run_file(example, "run", "--param", "rows=3")
    assert r.returncode == 0, r.stderr
    assert f"extract INFO pandas version: {pandas.__version__}" in r.stderr
    assert "load INFO loaded 3 rows, total amount 4.5" in r.stderr
    r = run_file(example, "describe")
    d = json.loads(r.stdout)
    assert d["run_config"]["type"] == "ecs" and d["schedule"]["timezone"] == "Europe/Berlin"


def test_package_archives_are_reproducible_and_run_from_the_archive(tmp_path, run_file):
    import hashlib
    import os
    import time

    from culvert import _package

    pkg = tmp_path / "pkg"
    (pkg / "lib").mkdir(parents=True)
    (pkg / "lib" / "__init__.py").write_text("")
    (pkg / "lib" / "words.py").write_text("WORD = 'packaged'\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"x")
    flow = pkg / "flows" / "pf.py"
    flow.parent.mkdir()
    flow.write_text("""
import culvert
from culvert import task, Flow
from lib.words import WORD

@task
def say():
    print("word:", WORD)

with Flow("pf") as flow:
    say()

culvert.main(flow)
""")
    a = _package.build_archive(str(pkg), str(flow))
    os.utime(flow, (time.time() + 100, time.time() + 100))  # times do not count
    b = _package.build_archive(str(pkg), str(flow))
    try:
        digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
        assert digest(a) == digest(b)
        import tarfile
        names = tarfile.open(a).getnames()
        assert names[0] == ".culvert-entrypoint" and "lib/words.py" in names
        assert not any("__pycache__" in n for n in names)
        import subprocess
        import sys
        r = subprocess.run([sys.executable, "-m", "culvert._package", a, "run"], capture_output=True, text=True,
                           env={**os.environ, "CULVERT_PACKAGE_DIR": str(tmp_path / "unpacked")}, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "say INFO word: packaged" in r.stderr
    finally:
        os.unlink(a)
        os.unlink(b)
    try:
        _package.build_archive(str(pkg / "lib"), str(flow))
        raise AssertionError("a folder without the flow file was archived")
    except ValueError as e:
        assert "is not inside it" in str(e)


def test_describe_into_a_closed_pipe_has_no_traceback(flow_file):
    p = flow_file(HELLO)
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the flow file writes (as `describe | grep -q`)
    try:
        proc = subprocess.run([sys.executable, str(p), "describe"], stdout=w, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    finally:
        os.close(w)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
