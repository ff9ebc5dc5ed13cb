"""`culvert image build --python`: the culvert Python package added to the layer for a
base whose own python3 loads it (a Debian 12 minbase with python3), and a clear refusal
for bases whose python3 cannot (none at all; another version). Real dockerd (fixture)."""

import os
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.e2e

BINARY_DIR = os.environ.get("CULVERT_BINARY_DIR", "")
SOURCE_DIR = os.environ.get("CULVERT_SOURCE_DIR", "")
CULVERT = os.path.join(BINARY_DIR, "culvert")

FLOW = """
import culvert
from culvert import task, Flow

@task
def words():
    return ["in", "the", "image"]

@task
def shout(w):
    print("word", w.upper())
    return w.upper()

with Flow("in_image") as flow:
    out = shout.map(words())

r = flow.run(workers=2)
print("state", r.state, r.result(out))
print("logs", sorted(m for (t, _, _, m) in r.logs))
"""


@pytest.fixture
def docker():
    d = os.environ.get("CULVERT_DOCKERD_DIR")
    assert d, "run through ctest (the dockerd fixture)"
    socket = open(os.path.join(d, "socket")).read().strip()
    return socket, ["docker", "-H", f"unix://{socket}"]


def base(kind, socket):
    cache = os.environ.get("CULVERT_IMAGE_BASES_CACHE") or os.path.join(BINARY_DIR, "tests", "image", "bases")
    r = subprocess.run([os.path.join(SOURCE_DIR, "tests", "image", "bases.sh"), kind, socket, cache],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def image_build(socket, base_tag, tag):
    # The package from the build tree, as `culvert` of the build tree finds it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([CULVERT, "image", "build", "--base", base_tag, "--tag", tag, "--python",
                           "--docker-host", f"unix://{socket}"], capture_output=True, text=True, env=env,
                          timeout=900)


def test_the_package_runs_in_a_bookworm_base_with_python(docker):
    socket, cli = docker
    tag = "culvert-py-e2e/bookworm-python:" + uuid.uuid4().hex[:8]
    r = image_build(socket, base("bookworm", socket), tag)
    assert r.returncode == 0, r.stderr
    try:
        run = subprocess.run(cli + ["run", "--rm", tag, "python3", "-c", FLOW], capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        assert "state Success ['IN', 'THE', 'IMAGE']" in run.stdout, run.stdout
        assert "logs ['word IMAGE', 'word IN', 'word THE']" in run.stdout
        # culvert itself is there too, from the same layer.
        v = subprocess.run(cli + ["run", "--rm", tag, "culvert", "--version"], capture_output=True, text=True,
                           timeout=120)
        assert v.returncode == 0 and "culvert" in v.stdout, v.stderr
    finally:
        subprocess.run(cli + ["rmi", "-f", tag], capture_output=True)


def test_bases_whose_python_cannot_load_it_are_refused(docker, tmp_path):
    socket, cli = docker
    busybox = base("busybox", socket)
    r = image_build(socket, busybox, "culvert-py-e2e/never:1")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"--python: base image '{busybox}' has no python3 that runs" in r.stderr, r.stderr
    # A base whose python3 is another version.
    (tmp_path / "python3").write_text("#!/bin/sh\necho 3.9\necho glibc 2.36\n")
    (tmp_path / "python3").chmod(0o755)
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox}\nCOPY python3 /usr/bin/python3\nENV PATH=/usr/bin:/bin\n")
    other = "culvert-py-e2e/python39:" + uuid.uuid4().hex[:8]
    b = subprocess.run(cli + ["build", "-q", "-t", other, str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert b.returncode == 0, b.stderr
    try:
        r = image_build(socket, other, "culvert-py-e2e/never:2")
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"base image '{other}' has Python 3.9, but the culvert Python package's extension is built " \
               "for Python 3.11" in r.stderr, r.stderr
    finally:
        subprocess.run(cli + ["rmi", "-f", other], capture_output=True)
