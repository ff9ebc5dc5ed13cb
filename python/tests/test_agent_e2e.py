"""End to end: a Python flow using pandas, registered to S3 (s3rver) and run by a local
agent and by a Docker agent in an image with Python and pandas, against a real server.
The DataFrame stays in the flow's process: nothing of it reaches the server's database.
CTest starts s3rver and dockerd (fixtures) for python_sdk_e2e_test."""

import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

pytestmark = pytest.mark.e2e

BINARY_DIR = os.environ.get("CULVERT_BINARY_DIR", "")
SOURCE_DIR = os.environ.get("CULVERT_SOURCE_DIR", "")
CULVERT = os.path.join(BINARY_DIR, "culvert")
PYTHON = os.environ.get("CULVERT_PYTHON", sys.executable)
MARKER = "df-marker-" + uuid.uuid4().hex[:10]

PANDAS_FLOW = """
import pandas as pd
import culvert
from culvert import task, Flow, Parameter

@task(retries=1)
def extract(rows: int) -> pd.DataFrame:
    culvert.get_logger().info("pandas version: %s", pd.__version__)
    return pd.DataFrame({"id": range(rows), "label": ["MARKER"] * rows})

@task
def summarize(df):
    return {"rows": int(len(df)), "labels": int(df["label"].nunique())}

@task
def report(summary):
    print(f"summary: {summary['rows']} rows, {summary['labels']} label")

with Flow("pandas_etl", run_config=culvert.LocalRun()) as flow:
    rows = Parameter("rows", default=3)
    report(summarize(extract(rows)))

if __name__ == "__main__":
    culvert.main(flow)
""".replace("MARKER", MARKER)


def wait_for(cond, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Env:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.procs = []
        d = os.environ.get("CULVERT_S3RVER_DIR")
        if not d:
            pytest.fail("run through ctest (the s3rver and dockerd fixtures)")
        with open(os.path.join(d, "port")) as fh:
            self.s3 = "http://127.0.0.1:" + fh.read().strip()
        self.bucket = "s3://culvert-e2e/py-e2e-" + uuid.uuid4().hex[:10]
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                    "TMPDIR": str(tmp_path), "PYTHONPATH": os.environ["PYTHONPATH"], "CULVERT_PYTHON": PYTHON,
                    "CULVERT_S3_ENDPOINT": self.s3, "AWS_ACCESS_KEY_ID": "S3RVER",
                    "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true", "CULVERT_HEARTBEAT_SECONDS": "1",
                    "CULVERT_CANCEL_POLL_MS": "200"}

    def start(self, name, argv):
        log = open(self.dir / f"{name}.log", "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=str(self.dir))
        self.procs.append((p, log))
        return p

    def log(self, name):
        return (self.dir / f"{name}.log").read_text()

    def start_server(self):
        port_file = self.dir / "server.port"
        self.db = self.dir / "culvert.db"
        self.start("server", [CULVERT, "server", "start", "--db", f"sqlite://{self.db}", "--listen", "127.0.0.1:0",
                              "--port-file", str(port_file), "--heartbeat-interval", "1s"])
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), "the server's port", 60)
        self.env["CULVERT_API_URL"] = "http://127.0.0.1:" + port_file.read_text().strip()
        profile = (self.home / ".culvert" / "config.toml").read_text()
        token = profile.split("api_token", 1)[1].split('"')[1]
        self.env["CULVERT_API_TOKEN"] = token

    def run(self, argv, timeout=300, check=True):
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout, cwd=str(self.dir))
        if check:
            assert r.returncode == 0, f"{argv}: {r.stdout}\n{r.stderr}\n" + self.agent_logs()
        return r

    def culvert(self, *args, **kw):
        return self.run([CULVERT, *args], **kw)

    def agent_logs(self):
        return "".join(f"\n--- {p}:\n{p.read_text()[-4000:]}" for p in self.dir.glob("agent*.log"))

    def stop(self):
        for p, log in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()

    def run_to_success(self, flow, project, params=()):
        args = ["run", flow, "--project", project, "--watch", "--output", "json"]
        for p in params:
            args += ["--param", p]
        r = self.culvert(*args, timeout=600)
        doc = json.loads(r.stdout)
        run = doc.get("flow_run", doc)
        assert run["state"] == "Success", r.stdout + self.agent_logs()
        return run["id"]

    def database_bytes(self):
        data = b""
        for f in glob.glob(str(self.db) + "*"):
            with open(f, "rb") as fh:
                data += fh.read()
        return data


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    e.start_server()
    yield e
    e.stop()


def write_flow(dir, source=PANDAS_FLOW, name="pandas_etl.py"):
    dir.mkdir(parents=True, exist_ok=True)
    p = dir / name
    p.write_text(source)
    return p


def test_pandas_flow_on_a_local_agent(env, tmp_path):
    user = tmp_path / "user"
    flow = write_flow(user)
    (user / "helpers.py").write_text("GREETING = 'from a package'\n")
    # Registered by the CLI, its artifact (the file) on S3, content-addressed.
    r = env.culvert("flow", "register", str(flow), "--project", "demo", "--storage", env.bucket + "/flows",
                    "--output", "json")
    version = json.loads(r.stdout)
    assert version["artifact"]["kind"] == "python"
    assert version["artifact"]["uri"].startswith(env.bucket + "/flows/")
    # And by the flow file itself, as a package of its folder, on file:// storage.
    pkg_flow = user / "pkg_flow.py"
    pkg_flow.write_text(PANDAS_FLOW.replace('Flow("pandas_etl"', 'Flow("pandas_pkg"').replace(
        "import culvert\n", "import culvert\nimport helpers\n", 1).replace(
        "    print(f\"summary:", "    print(helpers.GREETING)\n    print(f\"summary:"))
    r = env.run([PYTHON, str(pkg_flow), "register", "--project", "demo", "--storage",
                 f"file://{tmp_path}/flows", "--package", str(user), "--output", "json"])
    assert json.loads(r.stdout)["artifact"]["kind"] == "python-package"
    # Registering the same folder again gives the same artifact (a reproducible archive).
    r2 = env.run([PYTHON, str(pkg_flow), "register", "--project", "demo", "--storage",
                  f"file://{tmp_path}/flows", "--package", str(user), "--output", "json"])
    assert json.loads(r2.stdout)["artifact"]["sha256"] == json.loads(r.stdout)["artifact"]["sha256"]

    env.start("agent-local", [CULVERT, "agent", "start", "--type", "local", "--name", "py-local",
                              "--heartbeat-seconds", "1"])
    run_id = env.run_to_success("pandas_etl", "demo", ["rows=4"])
    logs = env.culvert("get", "logs", run_id).stdout
    import pandas
    assert f"pandas version: {pandas.__version__}" in logs, logs
    assert "summary: 4 rows, 1 label" in logs
    pkg_id = env.run_to_success("pandas_pkg", "demo")
    pkg_logs = env.culvert("get", "logs", pkg_id).stdout
    assert "from a package" in pkg_logs and "summary: 3 rows, 1 label" in pkg_logs
    # Nothing of the DataFrame reached the server: only states, logs and metadata.
    assert MARKER.encode() not in env.database_bytes()


def culvert_image(env, socket):
    """An image with Debian's Python 3 and pandas (a cached debootstrap root filesystem),
    the culvert binary with its shared libraries, and the culvert Python package."""
    docker = ["docker", "-H", f"unix://{socket}"]
    base = "culvert-py-e2e-base:bookworm-pandas"
    if subprocess.run(docker + ["image", "inspect", base], capture_output=True).returncode != 0:
        rootfs = os.path.join(BINARY_DIR, "image-cache", "debian-bookworm-python3-pandas.tar")
        r = subprocess.run([os.path.join(SOURCE_DIR, "python/tests/support/pandas_rootfs.sh"), rootfs],
                           capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(rootfs, "rb") as fh:
            r = subprocess.run(docker + ["import", "-", base], stdin=fh, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
    libs = set()
    ext = glob.glob(os.path.join(os.environ["PYTHONPATH"].split(":")[0], "culvert", "_culvert*.so"))[0]
    for binary in (CULVERT, ext):
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        for line in out.splitlines():
            path = line.split("=>")[-1].strip().split(" ")[0]
            if path.startswith("/"):
                # /lib is a link to usr/lib in the image too: the folder resolved, the name kept
                libs.add(os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)))
    glibc = ("libc.so", "libm.so", "libpthread", "libdl.so", "librt.so", "ld-linux", "libresolv")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, data, mode=0o644):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        add("Dockerfile", f"FROM {base}\nCOPY . /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n".encode())
        with open(CULVERT, "rb") as fh:
            add("usr/local/bin/culvert", fh.read(), 0o755)
        for lib in sorted(libs):
            if any(g in os.path.basename(lib) for g in glibc):
                continue  # the image's own C library
            with open(lib, "rb") as fh:
                add(lib.lstrip("/"), fh.read(), 0o755)
        pkg = os.path.dirname(ext)
        for f in sorted(os.listdir(pkg)):
            if f.endswith((".py", ".so")):
                with open(os.path.join(pkg, f), "rb") as fh:
                    add(f"usr/local/lib/python3.11/dist-packages/culvert/{f}", fh.read())
        add("tmp/.keep", b"")
    tag = "culvert-py-e2e-runner:" + uuid.uuid4().hex[:8]
    r = subprocess.run(docker + ["build", "-q", "-t", tag, "-"], input=buf.getvalue(), capture_output=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    return docker, tag


def test_pandas_flow_on_a_docker_agent(env, tmp_path):
    d = os.environ.get("CULVERT_DOCKERD_DIR")
    assert d, "run through ctest (the dockerd fixture)"
    socket = open(os.path.join(d, "socket")).read().strip()
    docker, image = culvert_image(env, socket)
    try:
        # The image's own python3 imports the package and pandas.
        r = subprocess.run(docker + ["run", "--rm", image, "python3", "-c",
                                     "import culvert, pandas; print(pandas.__version__)"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        image_pandas = r.stdout.strip()
        flow = write_flow(tmp_path / "user")
        run_config = {"type": "docker", "image": image, "network_mode": "host",
                      "env": {"CULVERT_ARTIFACT_CACHE": "/tmp/artifacts", "CULVERT_PYTHON": "python3"}}
        # Registered by the flow file itself, with the run config replaced.
        env.run([PYTHON, str(flow), "register", "--project", "containers", "--storage", env.bucket + "/flows",
                 "--run-config", json.dumps(run_config)])
        argv = [CULVERT, "agent", "start", "--type", "docker", "--name", "py-docker", "--docker-host", socket]
        for k in ("CULVERT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                  "AWS_EC2_METADATA_DISABLED"):
            argv += ["--env", f"{k}={env.env[k]}"]
        env.start("agent-docker", argv)
        run_id = env.run_to_success("pandas_etl", "containers", ["rows=6"])
        logs = env.culvert("get", "logs", run_id).stdout
        assert f"pandas version: {image_pandas}" in logs, logs
        assert "summary: 6 rows, 1 label" in logs
        inspect = env.culvert("run", "inspect", run_id, "--output", "json").stdout
        assert "container" in inspect or "docker" in inspect
        assert MARKER.encode() not in env.database_bytes()
    finally:
        subprocess.run(docker + ["rmi", "-f", image], capture_output=True)
