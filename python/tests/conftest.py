"""Shared helpers of the Python SDK's tests (run by CTest: python_sdk_test and
python_sdk_e2e_test, with PYTHONPATH at the build's python/ folder)."""

import os
import subprocess
import sys
import textwrap

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: needs real services (s3rver, a server, agents, Docker)")


def _env(extra=None):
    env = dict(os.environ)
    env.update(extra or {})
    return env


@pytest.fixture
def flow_file(tmp_path):
    """Writes a flow file (dedented source) and returns its path."""

    def write(source, name="flow.py"):
        p = tmp_path / name
        p.write_text(textwrap.dedent(source))
        return p

    return write


@pytest.fixture
def run_file():
    """Runs `python3 FILE ARGS...`; returns the CompletedProcess (text)."""

    def run(path, *args, env=None, timeout=120, cwd=None):
        return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                              env=_env(env), timeout=timeout, cwd=cwd)

    return run
