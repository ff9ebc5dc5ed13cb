#!/usr/bin/env python3
"""Checks requests against botocore's service model, with botocore's own validator.

Usage: botocore_validate.py SERVICE FILE
FILE holds one JSON object per line: {"action": "RunTask", "params": {...}} (the JSON
body of a JSON 1.1 request is its parameters). A line may name another "service" than
SERVICE, and carry "form": the urlencoded body a query-protocol request (EC2) sent for
those parameters, which must equal botocore's own serialization of them. Prints every
invalid request with botocore's report and exits 1 if there is one; exits 2 when
botocore is missing.
"""
import json
import sys

from urllib.parse import parse_qsl

try:
    import botocore.session
    from botocore.serialize import create_serializer
    from botocore.validate import ParamValidator
except ImportError as e:  # pragma: no cover
    print(f"botocore_validate: botocore is not importable ({e}); install python3-botocore", file=sys.stderr)
    sys.exit(2)


def main() -> int:
    service, path = sys.argv[1], sys.argv[2]
    session = botocore.session.get_session()
    models = {}
    validator = ParamValidator()
    bad = 0
    checked = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            name = item.get("service", service)
            if name not in models:
                models[name] = session.get_service_model(name)
            op = models[name].operation_model(item["action"])
            report = validator.validate(item["params"], op.input_shape)
            checked += 1
            if report.has_errors():
                bad += 1
                print(f"line {n}: {item['action']}: {report.generate_report()}")
            elif "form" in item:
                protocol = models[name].metadata["protocol"]
                expected = create_serializer(protocol).serialize_to_request(item["params"], op)["body"]
                sent = dict(parse_qsl(item["form"], keep_blank_values=True))
                if sent != expected:
                    bad += 1
                    print(f"line {n}: {item['action']}: sent {sent}, botocore serializes {expected}")
    print(f"botocore_validate: {checked} request(s) checked, {bad} invalid (botocore {botocore.__version__})")
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
