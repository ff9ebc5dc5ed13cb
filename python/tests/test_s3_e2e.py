"""Results and caching on s3:// against a real s3rver (CTest's s3rver fixture)."""

import os
import pickle
import subprocess
import uuid

import pytest

import culvert
from culvert import Flow, task

pytestmark = pytest.mark.e2e


@pytest.fixture
def s3(monkeypatch):
    d = os.environ.get("CULVERT_S3RVER_DIR")
    if not d:
        pytest.fail("run through ctest (the s3rver fixture sets CULVERT_S3RVER_DIR)")
    with open(os.path.join(d, "port")) as fh:
        endpoint = "http://127.0.0.1:" + fh.read().strip()
    env = {"CULVERT_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    prefix = "s3://culvert-e2e/py-" + uuid.uuid4().hex[:12]
    return endpoint, prefix, env


def aws_get(endpoint, env, uri, dest):
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", endpoint, "s3", "cp", uri, str(dest)],
                       capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert r.returncode == 0, r.stderr


def test_results_and_cache_on_s3(s3, tmp_path):
    endpoint, prefix, env = s3
    calls = []

    @task(result=culvert.S3Result(prefix[len("s3://"):], location="results/{task_name}"))
    def make():
        return {"rows": list(range(5))}

    @task(cache_for=3600)
    def double(d):
        calls.append(1)
        return [x * 2 for x in d["rows"]]

    with Flow("s3-results", cache_storage=prefix + "/cache") as flow:
        d = double(make())
    r1 = flow.run()
    assert r1.state == "Success", r1.task_runs
    r2 = flow.run()
    assert r2.task_run(d).state == "Cached"
    assert r2.result(d) == [0, 2, 4, 6, 8]
    assert calls == [1]
    # The object is in the bucket, seen from the other side (aws CLI), as a pickle.
    aws_get(endpoint, env, prefix + "/results/make", tmp_path / "make")
    with open(tmp_path / "make", "rb") as fh:
        assert pickle.load(fh) == {"rows": [0, 1, 2, 3, 4]}


def test_an_unreachable_bucket_fails_the_task_run_with_the_reason(s3):
    endpoint, prefix, env = s3

    @task(result="s3://no-such-bucket-here/x")
    def make():
        return 1

    with Flow("s3-missing") as flow:
        m = make()
    r = flow.run()
    assert r.task_run(m).state == "Failed"
    assert "could not persist the result" in r.task_run(m).message
