#!/usr/bin/python3
"""Generates SigV4 test vectors for Culvert's signer with botocore, offline.

Each vector is a fixed request signed with fixed credentials at a fixed time by
botocore's own signer (S3SigV4Auth for S3, SigV4Auth for other services). The output
is committed as src/aws/testdata/sigv4_vectors.json and read by
sigv4_test.cpp; rerun this script only to add vectors.

Usage: /usr/bin/python3 scripts/gen_sigv4_vectors.py > src/aws/testdata/sigv4_vectors.json
(Debian's python3-botocore; no network is used.)
"""
import datetime
import hashlib
import json
import sys
import types
from urllib.parse import urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2013, 5, 24, 0, 0, 0)


class _FixedDateTime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return FIXED


# botocore reads the time through its module-level `datetime`; pin it.
botocore.auth.datetime = types.SimpleNamespace(datetime=_FixedDateTime)

KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "AQoDYXdzEJr//////////wEa8AI1example+session/token=="

# (name, service, region, method, url, params, headers, body, token)
CASES = [
    ("s3-doc-get-object", "s3", "us-east-1", "GET",
     "https://examplebucket.s3.amazonaws.com/test.txt", [], {"Range": "bytes=0-9"}, b"", None),
    ("s3-doc-put-object", "s3", "us-east-1", "PUT",
     "https://examplebucket.s3.amazonaws.com/test%24file.text", [],
     {"Date": None, "x-amz-storage-class": "REDUCED_REDUNDANCY"}, b"Welcome to Amazon S3.", None),
    ("s3-doc-list-objects", "s3", "us-east-1", "GET",
     "https://examplebucket.s3.amazonaws.com/", [("max-keys", "2"), ("prefix", "J")], {}, b"", None),
    ("s3-path-style-put-special-key", "s3", "eu-west-1", "PUT",
     "http://127.0.0.1:4568/flows/prod/etl%20job/a%2Bb%3Dc%26d.bin", [],
     {"Content-Type": "application/octet-stream"}, b"\x00\x01binary\xffpayload", None),
    ("s3-head-session-token", "s3", "us-west-2", "HEAD",
     "https://my-bucket.s3.us-west-2.amazonaws.com/flows/etl/0123abcd", [], {}, b"", TOKEN),
    ("s3-multipart-initiate", "s3", "us-east-1", "POST",
     "http://127.0.0.1:4568/bucket/big/object", [("uploads", "")], {}, b"", None),
    ("s3-multipart-upload-part", "s3", "us-east-1", "PUT",
     "http://127.0.0.1:4568/bucket/big/object",
     [("partNumber", "2"), ("uploadId", "VXBsb2FkIElEIGZvciBlbHZpbmc/x+y=z")], {}, b"part two bytes", None),
    ("s3-delete-unicode-key", "s3", "ap-southeast-2", "DELETE",
     "https://bucket-1.s3.ap-southeast-2.amazonaws.com/r%C3%A9sultats/%E2%82%AC/x~y_z-0.9", [], {}, b"",
     TOKEN),
    ("ecs-json-run-task", "ecs", "us-east-1", "POST", "https://ecs.us-east-1.amazonaws.com/", [],
     {"Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.RunTask"},
     b'{"cluster":"default","taskDefinition":"culvert-run:3","count":1}', TOKEN),
    ("ecs-json-describe-tasks-spaces", "ecs", "eu-central-1", "POST",
     "http://127.0.0.1:9001/", [],
     {"Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.DescribeTasks",
      "X-Custom-Spaces": "  a   b  c "},
     b'{"tasks":["arn:aws:ecs:eu-central-1:123456789012:task/x"]}', None),
]


class _Recording:
    """Mixin that keeps the canonical request and string to sign botocore computed."""

    def canonical_request(self, request):
        self.last_canonical = super().canonical_request(request)
        return self.last_canonical

    def string_to_sign(self, request, canonical_request):
        self.last_sts = super().string_to_sign(request, canonical_request)
        return self.last_sts


class RecS3(_Recording, botocore.auth.S3SigV4Auth):
    pass


class RecV4(_Recording, botocore.auth.SigV4Auth):
    pass


def main():
    out = []
    for name, service, region, method, url, params, headers, body, token in CASES:
        headers = {k: v for k, v in headers.items() if v is not None}
        creds = Credentials(KEY, SECRET, token)
        signer = (RecS3 if service == "s3" else RecV4)(creds, service, region)
        req = AWSRequest(method=method, url=url, headers=dict(headers), data=body,
                         params=list(params) if params else None)
        signer.add_auth(req)
        parts = urlsplit(url)
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        out.append({
            "name": name,
            "service": service,
            "region": region,
            "access_key_id": KEY,
            "secret_access_key": SECRET,
            "session_token": token or "",
            "time": FIXED.strftime("%Y%m%dT%H%M%SZ"),
            "method": method,
            "host": host,
            "path": parts.path or "/",
            "query": [[k, v] for k, v in params],
            "headers": [[k, v] for k, v in headers.items()],
            "payload_sha256": hashlib.sha256(body).hexdigest(),
            "double_encode_path": service != "s3",
            "content_sha256_header": service == "s3",
            "expected": {
                "canonical_request": signer.last_canonical,
                "string_to_sign": signer.last_sts,
                "authorization": req.headers["Authorization"],
            },
        })
    json.dump({"generator": "botocore " + botocore.__version__, "vectors": out}, sys.stdout,
              indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
