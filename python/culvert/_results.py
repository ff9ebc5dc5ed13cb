"""Serializers (how a task's value becomes bytes in storage) and result locations."""

import json
import pickle


class Serializer:
    """Turns a task's value into bytes and back. Subclass it, or pass any object with
    dumps(value) -> bytes and loads(bytes) -> value."""

    def dumps(self, value):
        raise NotImplementedError

    def loads(self, data):
        raise NotImplementedError


class PickleSerializer(Serializer):
    """The default: pickle (any picklable value, such as a pandas DataFrame)."""

    def __init__(self, protocol=pickle.HIGHEST_PROTOCOL):
        self.protocol = protocol

    def dumps(self, value):
        return pickle.dumps(value, protocol=self.protocol)

    def loads(self, data):
        return pickle.loads(data)


class JSONSerializer(Serializer):
    """JSON text (values of json.dumps: dicts, lists, strings, numbers)."""

    def dumps(self, value):
        return json.dumps(value, sort_keys=True).encode()

    def loads(self, data):
        return json.loads(data)


class _Result:
    def __init__(self, base, location, serializer):
        self.location = location
        self.serializer = serializer
        self.uri = base.rstrip("/") + "/" + location.lstrip("/")


_DEFAULT_LOCATION = "{flow_name}/{flow_run_id}/{task_name}-{map_index}"


class LocalResult(_Result):
    """Results in a local folder: LocalResult("/data/results")."""

    def __init__(self, dir, location=_DEFAULT_LOCATION, serializer=None):
        import os
        super().__init__("file://" + os.path.abspath(dir), location, serializer)


class S3Result(_Result):
    """Results in an S3 bucket: S3Result("my-bucket", location="etl/{flow_run_id}/{task_name}")."""

    def __init__(self, bucket, location=_DEFAULT_LOCATION, serializer=None):
        bucket = bucket[len("s3://"):] if bucket.startswith("s3://") else bucket
        super().__init__("s3://" + bucket, location, serializer)
