#!/usr/bin/python3
"""A test-only ECS-compatible endpoint that runs each task as a real Docker container.

This is a fixture for end-to-end tests and benchmarks, not part of the product. moto
keeps ECS tasks as metadata; this endpoint instead starts the task's `flow` container
(its image, command and environment, with the run's container overrides) on a real
Docker daemon, host network, with the container's memory as a hard limit, and reports
what ECS would report:

  lastStatus  PROVISIONING -> PENDING -> RUNNING -> DEPROVISIONING -> STOPPED
  stopCode    EssentialContainerExited (the container exited), TaskFailedToStart (the
              image is not there: CannotPullContainerError; the container could not be
              created or started), UserInitiated (StopTask)
  container   exitCode, and reason "OutOfMemoryError: Container killed due to memory
              usage" when the memory limit killed it (exit 137)

Calls (JSON 1.1, the request parameters checked against botocore's ECS and CloudWatch
Logs models with botocore's own validator; an invalid request is refused with
InvalidParameterException and recorded):
  ECS   RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
        DeregisterTaskDefinition, RunTask (clientToken idempotency: the same token
        answers the same task), DescribeTasks (100 tasks at most, failures MISSING),
        StopTask, ListTasks (startedBy, family, desiredStatus, paged), TagResource,
        ListTagsForResource, CreateCluster, DescribeClusters
  EC2   DescribeVpcs, DescribeSubnets (query protocol, XML answers): one default VPC
  Logs  GetLogEvents: the container's output, for tasks whose flow container has an
        awslogs log configuration (stream PREFIX/CONTAINER/TASK-ID)
Requests must be SigV4-signed for the service they name (the Authorization header's
credential scope); the signature itself is not verified (moto does that in the tests
that need it).

Control endpoint (plain HTTP, JSON):
  GET  /_fixture/state    call counts, faults injected, invalid requests, tasks
  POST /_fixture/faults   {"throttle": F, "server_error": F, "lose_run_task_answer": F,
                           "slow_start_seconds": S, "actions": [...] or null, "seed": N}
                          F: the fraction of calls (of `actions`, or all) refused with
                          400 ThrottlingException / 500 ServerException before they
                          run; lose_run_task_answer: the fraction of RunTask calls that
                          start their task and then answer 500 anyway
Task modes (--task-mode):
  containers  (the default) each task is a Docker container, as above. At most
              --max-starting (8) tasks are being created or started, or removed, on the
              Docker daemon at once; the others wait in PROVISIONING (or DEPROVISIONING),
              as ECS provisions at its own pace: 500 container creations at once make a
              2-core daemon answer no call within minutes.
  processes   each task's command runs as a plain local process instead, for benchmarks
              that time the agent, server and `culvert execute` without Docker's cost
              per container: the flow container's command (override, else definition;
              entryPoint first) with only the task's environment plus PATH, in a folder
              of its own under DIR/tasks/ID (also its HOME and, replacing any given, its
              CULVERT_ARTIFACT_CACHE: empty, as a fresh container's would be). No image
              is looked at, mount points are not mapped (give host paths), and memory is
              not limited (no OutOfMemoryError). StopTask sends SIGTERM to its process
              group, SIGKILL after the container's stopTimeout (30 s). The exit code is
              the process's (128 + N when signal N killed it, as Docker reports). No
              Docker daemon is needed.

Usage: ecs_fixture.py [--docker-socket PATH] --dir DIR [--task-mode containers|processes]
                      [--max-starting N] [--region R] [--cluster NAME...]
  Listens on 127.0.0.1 on a free port and writes it to DIR/port once ready. SIGTERM
  removes the containers (ends the processes) of its tasks and ends it.
"""
import argparse
import http.client
import http.server
import json
import os
import random
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

try:
    import botocore.session
    from botocore.validate import ParamValidator
except ImportError as e:  # pragma: no cover
    print(f"ecs_fixture: botocore is not importable ({e}); install python3-botocore", file=sys.stderr)
    sys.exit(2)

ECS_PREFIX = "AmazonEC2ContainerServiceV20141113."
LOGS_PREFIX = "Logs_20140328."
ACCOUNT = "123456789012"
MAX_BODY = 1 << 20


class AwsError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def now():
    return time.time()


# --------------------------------------------------------------------------- Docker
class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=None):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Docker:
    """The few Engine API calls the fixture needs (API 1.41), one connection per call."""

    def __init__(self, socket_path):
        self.socket_path = socket_path

    def call(self, method, path, body=None, timeout=120):
        conn = UnixConnection(self.socket_path, timeout=timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, "/v1.41" + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, raw
        finally:
            conn.close()

    def json(self, method, path, body=None, timeout=120):
        status, raw = self.call(method, path, body, timeout)
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, {"message": raw.decode(errors="replace")}

    @staticmethod
    def demux(raw):
        """The text of a multiplexed logs stream (8-byte frame headers)."""
        out, i = [], 0
        while i + 8 <= len(raw):
            n = int.from_bytes(raw[i + 4:i + 8], "big")
            out.append(raw[i + 8:i + 8 + n])
            i += 8 + n
        return b"".join(out).decode(errors="replace")


# --------------------------------------------------------------------------- state
class Task:
    def __init__(self, arn, cluster_arn, td, request):
        self.arn = arn
        self.id = arn.rsplit("/", 1)[1]
        self.cluster_arn = cluster_arn
        self.td = td
        self.request = request
        self.last_status = "PROVISIONING"
        self.desired_status = "RUNNING"
        self.stop_code = None
        self.stopped_reason = None
        self.created_at = now()
        self.started_at = None
        self.stopping_at = None
        self.stopped_at = None
        self.container_id = None
        self.container_status = "PENDING"
        self.exit_code = None
        self.container_reason = None
        self.tags = list(request.get("tags", []))
        self.stop_requested = threading.Event()
        self.process = None  # task mode "processes": its Popen

    def flow_container(self):
        defs = self.td["definition"].get("containerDefinitions", [])
        for c in defs:
            if c.get("name") == "flow":
                return c
        return defs[0] if defs else {"name": "flow"}

    def describe(self, with_tags):
        c = self.flow_container()
        container = {
            "containerArn": f"{self.cluster_arn.replace(':cluster/', ':container/')}/{self.id}/{uuid.uuid5(uuid.NAMESPACE_URL, self.arn)}",
            "taskArn": self.arn,
            "name": c.get("name", "flow"),
            "image": c.get("image", ""),
            "lastStatus": self.container_status,
            "networkInterfaces": [],
        }
        for key in ("memory", "memoryReservation", "cpu"):
            if c.get(key) is not None:
                container[key] = str(c[key])
        if self.container_id:
            container["runtimeId"] = self.container_id
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        if self.container_reason:
            container["reason"] = self.container_reason
        t = {
            "taskArn": self.arn,
            "clusterArn": self.cluster_arn,
            "taskDefinitionArn": self.td["arn"],
            "lastStatus": self.last_status,
            "desiredStatus": self.desired_status,
            "launchType": self.request.get("launchType", "FARGATE" if "capacityProviderStrategy" not in self.request else None),
            "cpu": self.td["definition"].get("cpu"),
            "memory": self.td["definition"].get("memory"),
            "createdAt": self.created_at,
            "group": self.request.get("group", "family:" + self.td["family"]),
            "containers": [container],
            "overrides": self.request.get("overrides", {}),
            "version": 1,
        }
        if "capacityProviderStrategy" in self.request:
            t["capacityProviderName"] = self.request["capacityProviderStrategy"][0].get("capacityProvider")
            t.pop("launchType", None)
        if t.get("launchType") is None:
            t.pop("launchType", None)
        if "startedBy" in self.request:
            t["startedBy"] = self.request["startedBy"]
        for key, value in (("startedAt", self.started_at), ("stoppingAt", self.stopping_at),
                           ("stoppedAt", self.stopped_at), ("stopCode", self.stop_code),
                           ("stoppedReason", self.stopped_reason)):
            if value is not None:
                t[key] = value
        if with_tags:
            t["tags"] = self.tags
        return t


class Fixture:
    def __init__(self, docker, region, clusters, task_mode="containers", work_dir=None, max_starting=8):
        self.docker = docker
        self.task_mode = task_mode
        self.docker_slots = threading.BoundedSemaphore(max_starting)
        self.work_dir = work_dir
        self.region = region
        self.lock = threading.Lock()
        self.clusters = {name: self.cluster_arn(name) for name in clusters}
        self.families = {}          # family -> [revision dict]
        self.tasks = {}             # arn -> Task
        self.tokens = {}            # clientToken -> (request json, task arn)
        self.logs = {}              # (group, stream) -> [events]
        self.tags = {}              # resource arn -> [tags]
        self.calls = {}
        self.faults = {"throttle": 0.0, "server_error": 0.0, "lose_run_task_answer": 0.0,
                       "slow_start_seconds": 0.0, "actions": None}
        self.injected = {"throttle": 0, "server_error": 0, "lose_run_task_answer": 0}
        self.rng = random.Random(1)
        self.invalid = []
        self.containers_started = 0
        session = botocore.session.get_session()
        self.models = {"ecs": session.get_service_model("ecs"), "logs": session.get_service_model("logs")}
        self.validator = ParamValidator()

    def cluster_arn(self, name):
        return f"arn:aws:ecs:{self.region}:{ACCOUNT}:cluster/{name}"

    # ----------------------------------------------------------------- dispatch
    def count(self, action):
        with self.lock:
            self.calls[action] = self.calls.get(action, 0) + 1

    def inject(self, action):
        """Raises the injected fault for this call, if one is drawn."""
        with self.lock:
            f = self.faults
            if f["actions"] is not None and action not in f["actions"]:
                return
            draw = self.rng.random()
            if draw < f["throttle"]:
                self.injected["throttle"] += 1
                raise AwsError(400, "ThrottlingException", "Rate exceeded")
            if draw < f["throttle"] + f["server_error"]:
                self.injected["server_error"] += 1
                raise AwsError(500, "ServerException", "Service Unavailable. Please try again later.")

    def validate(self, service, action, params):
        model = self.models[service]
        if action not in model.operation_names:
            raise AwsError(400, "UnknownOperationException", f"{action} is not an operation of {service}")
        op = model.operation_model(action)
        checked = params
        # Debian 12's botocore (1.29) predates RunTask's clientToken: with such a model the
        # token is checked here (a string of at most 64 characters) and the rest by botocore.
        if action == "RunTask" and "clientToken" not in op.input_shape.members and "clientToken" in params:
            token = params["clientToken"]
            if not isinstance(token, str) or not 1 <= len(token) <= 64:
                raise AwsError(400, "InvalidParameterException", "clientToken must be 1 to 64 characters")
            checked = {k: v for k, v in params.items() if k != "clientToken"}
        report = self.validator.validate(checked, op.input_shape)
        if report.has_errors():
            text = report.generate_report()
            with self.lock:
                self.invalid.append({"service": service, "action": action, "report": text})
            raise AwsError(400, "InvalidParameterException", text)

    def ecs(self, action, params):
        self.count(action)
        self.inject(action)
        self.validate("ecs", action, params)
        handler = getattr(self, "ecs_" + action, None)
        if handler is None:
            raise AwsError(400, "InvalidParameterException", f"the ECS fixture does not implement {action}")
        return handler(params)

    def logs_call(self, action, params):
        self.count(action)
        self.inject(action)
        self.validate("logs", action, params)
        if action != "GetLogEvents":
            raise AwsError(400, "InvalidParameterException", f"the fixture does not implement logs {action}")
        key = (params["logGroupName"], params["logStreamName"])
        with self.lock:
            if not any(g == key[0] for g, _ in self.logs):
                raise AwsError(400, "ResourceNotFoundException", "The specified log group does not exist.")
            if key not in self.logs:
                raise AwsError(400, "ResourceNotFoundException", "The specified log stream does not exist.")
            events = list(self.logs[key])
        limit = params.get("limit", 10000)
        events = events[:limit] if params.get("startFromHead") else events[-limit:]
        return {"events": events, "nextForwardToken": "f/0", "nextBackwardToken": "b/0"}

    def ec2(self, form):
        action = form.get("Action", "")
        self.count(action)
        self.inject(action)
        if action == "DescribeVpcs":
            body = ("<vpcSet><item><vpcId>vpc-fixture</vpcId><state>available</state>"
                    "<cidrBlock>172.31.0.0/16</cidrBlock><isDefault>true</isDefault></item></vpcSet>")
        elif action == "DescribeSubnets":
            items = "".join(
                f"<item><subnetId>subnet-fixture-{z}</subnetId><vpcId>vpc-fixture</vpcId>"
                f"<availabilityZone>{self.region}{z}</availabilityZone><defaultForAz>true</defaultForAz></item>"
                for z in "ab")
            body = f"<subnetSet>{items}</subnetSet>"
        else:
            raise AwsError(400, "InvalidAction", f"The action {action} is not valid for this web service.")
        ns = "http://ec2.amazonaws.com/doc/2016-11-15/"
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{ns}">'
                f"<requestId>{uuid.uuid4()}</requestId>{body}</{action}Response>")

    # ----------------------------------------------------------------- clusters
    def resolve_cluster(self, params):
        name = params.get("cluster", "default")
        if name.startswith("arn:"):
            name = name.rsplit("/", 1)[1]
        with self.lock:
            arn = self.clusters.get(name)
        if arn is None:
            raise AwsError(400, "ClusterNotFoundException", "Cluster not found.")
        return arn

    def ecs_CreateCluster(self, p):
        name = p.get("clusterName", "default")
        with self.lock:
            self.clusters.setdefault(name, self.cluster_arn(name))
        return {"cluster": {"clusterArn": self.cluster_arn(name), "clusterName": name, "status": "ACTIVE"}}

    def ecs_DescribeClusters(self, p):
        out, failures = [], []
        for c in p.get("clusters", ["default"]):
            name = c.rsplit("/", 1)[-1]
            with self.lock:
                arn = self.clusters.get(name)
            if arn:
                out.append({"clusterArn": arn, "clusterName": name, "status": "ACTIVE"})
            else:
                failures.append({"arn": c, "reason": "MISSING"})
        return {"clusters": out, "failures": failures}

    # ----------------------------------------------------------------- task definitions
    def ecs_RegisterTaskDefinition(self, p):
        family = p["family"]
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", family):
            raise AwsError(400, "ClientException", "Family contains invalid characters or is too long.")
        fargate = "FARGATE" in p.get("requiresCompatibilities", [])
        for v in p.get("volumes", []):
            if fargate and v.get("host", {}).get("sourcePath"):
                raise AwsError(400, "ClientException",
                               "Fargate compatible task definitions do not support sourcePath")
        for c in p["containerDefinitions"]:
            if not c.get("image"):
                raise AwsError(400, "ClientException", "Container.image should not be null or empty.")
        definition = {k: v for k, v in p.items() if k != "tags"}
        with self.lock:
            revisions = self.families.setdefault(family, [])
            rev = len(revisions) + 1
            arn = f"arn:aws:ecs:{self.region}:{ACCOUNT}:task-definition/{family}:{rev}"
            entry = {"arn": arn, "family": family, "revision": rev, "status": "ACTIVE",
                     "definition": definition, "registeredAt": now()}
            revisions.append(entry)
            self.tags[arn] = list(p.get("tags", []))
        return {"taskDefinition": self.describe_td(entry), "tags": list(p.get("tags", []))}

    def describe_td(self, entry):
        d = dict(entry["definition"])
        d.update({"taskDefinitionArn": entry["arn"], "family": entry["family"], "revision": entry["revision"],
                  "status": entry["status"], "registeredAt": entry["registeredAt"],
                  "compatibilities": ["EC2", "FARGATE"]})
        return d

    def find_td(self, ref):
        """The revision `ref` (family, family:revision or ARN) names; for a bare family its
        latest ACTIVE revision."""
        name = ref.split(":task-definition/", 1)[1] if ":task-definition/" in ref else ref
        family, _, rev = name.partition(":")
        with self.lock:
            revisions = self.families.get(family, [])
            if rev:
                for e in revisions:
                    if str(e["revision"]) == rev:
                        return e
                return None
            active = [e for e in revisions if e["status"] == "ACTIVE"]
            return active[-1] if active else None

    def ecs_DescribeTaskDefinition(self, p):
        entry = self.find_td(p["taskDefinition"])
        if entry is None:
            raise AwsError(400, "ClientException", "Unable to describe task definition.")
        out = {"taskDefinition": self.describe_td(entry)}
        if "TAGS" in p.get("include", []):
            with self.lock:
                out["tags"] = list(self.tags.get(entry["arn"], []))
        return out

    def ecs_DeregisterTaskDefinition(self, p):
        entry = self.find_td(p["taskDefinition"])
        if entry is None or ":" not in p["taskDefinition"].rsplit("/", 1)[-1]:
            raise AwsError(400, "ClientException", "Unable to describe task definition.")
        with self.lock:
            entry["status"] = "INACTIVE"
        return {"taskDefinition": self.describe_td(entry)}

    def ecs_ListTaskDefinitions(self, p):
        prefix = p.get("familyPrefix", "")
        status = p.get("status", "ACTIVE")
        with self.lock:
            arns = [e["arn"] for fam, revs in sorted(self.families.items()) if fam == prefix or not prefix
                    for e in revs if status == "ALL" or e["status"] == status]
        if p.get("sort") == "DESC":
            arns.reverse()
        return self.page(arns, p, "taskDefinitionArns")

    @staticmethod
    def page(items, p, key):
        start = int(p.get("nextToken") or 0)
        size = p.get("maxResults", 100)
        out = {key: items[start:start + size]}
        if start + size < len(items):
            out["nextToken"] = str(start + size)
        return out

    # ----------------------------------------------------------------- tags
    def ecs_TagResource(self, p):
        arn = p["resourceArn"]
        with self.lock:
            task = self.tasks.get(arn)
            if task is None and arn not in self.tags:
                raise AwsError(400, "InvalidParameterException", "The specified resource could not be found.")
            tags = task.tags if task else self.tags[arn]
            for t in p["tags"]:
                tags[:] = [x for x in tags if x.get("key") != t.get("key")] + [t]
        return {}

    def ecs_ListTagsForResource(self, p):
        arn = p["resourceArn"]
        with self.lock:
            task = self.tasks.get(arn)
            if task is None and arn not in self.tags:
                raise AwsError(400, "InvalidParameterException", "The specified resource could not be found.")
            return {"tags": list(task.tags if task else self.tags[arn])}

    # ----------------------------------------------------------------- tasks
    def ecs_RunTask(self, p):
        cluster_arn = self.resolve_cluster(p)
        if "launchType" in p and "capacityProviderStrategy" in p:
            raise AwsError(400, "InvalidParameterException",
                           "Specifying both a launch type and capacity provider strategy is not supported. "
                           "Remove one and try again.")
        token = p.get("clientToken")
        if token:
            with self.lock:
                seen = self.tokens.get(token)
            if seen is not None:
                if seen[0] != {k: v for k, v in p.items()}:
                    raise AwsError(400, "IdempotentParameterMismatchException",
                                   "The client token was used with different parameters.")
                with self.lock:
                    task = self.tasks[seen[1]]
                return {"tasks": [task.describe(True)], "failures": []}
        entry = self.find_td(p["taskDefinition"])
        if entry is None:
            raise AwsError(400, "ClientException", "Unable to describe task definition.")
        if entry["status"] != "ACTIVE":
            raise AwsError(400, "ClientException", "TaskDefinition is inactive")
        if p.get("count", 1) != 1:
            raise AwsError(400, "InvalidParameterException", "the fixture starts one task per RunTask")
        if entry["definition"].get("networkMode") == "awsvpc":
            subnets = p.get("networkConfiguration", {}).get("awsvpcConfiguration", {}).get("subnets", [])
            if not subnets:
                raise AwsError(400, "InvalidParameterException",
                               "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
        cluster = cluster_arn.rsplit("/", 1)[1]
        arn = f"arn:aws:ecs:{self.region}:{ACCOUNT}:task/{cluster}/{uuid.uuid4().hex}"
        task = Task(arn, cluster_arn, entry, p)
        with self.lock:
            self.tasks[arn] = task
            if token:
                self.tokens[token] = (dict(p), arn)
            lose = self.rng.random() < self.faults["lose_run_task_answer"] and \
                (self.faults["actions"] is None or "RunTask" in self.faults["actions"])
            if lose:
                self.injected["lose_run_task_answer"] += 1
            slow = float(self.faults["slow_start_seconds"])
        threading.Thread(target=self.run_task, args=(task, slow), daemon=True).start()
        if lose:
            raise AwsError(500, "ServerException", "Service Unavailable. Please try again later.")
        return {"tasks": [task.describe(True)], "failures": []}

    def ecs_DescribeTasks(self, p):
        cluster_arn = self.resolve_cluster(p)
        if len(p["tasks"]) > 100:
            raise AwsError(400, "InvalidParameterException", "Tasks cannot be longer than 100.")
        tags = "TAGS" in p.get("include", [])
        out, failures = [], []
        with self.lock:
            for ref in p["tasks"]:
                task = self.find_task(ref, cluster_arn)
                if task is None:
                    failures.append({"arn": ref, "reason": "MISSING"})
                else:
                    out.append(task.describe(tags))
        return {"tasks": out, "failures": failures}

    def find_task(self, ref, cluster_arn):
        """Holding self.lock."""
        task = self.tasks.get(ref)
        if task is None:
            for t in self.tasks.values():
                if t.id == ref:
                    task = t
        if task is not None and task.cluster_arn != cluster_arn:
            return None
        return task

    def ecs_ListTasks(self, p):
        cluster_arn = self.resolve_cluster(p)
        desired = p.get("desiredStatus", "RUNNING")
        with self.lock:
            arns = [t.arn for t in self.tasks.values()
                    if t.cluster_arn == cluster_arn and t.desired_status == desired
                    and ("startedBy" not in p or t.request.get("startedBy") == p["startedBy"])
                    and ("family" not in p or t.td["family"] == p["family"])]
        return self.page(arns, p, "taskArns")

    def ecs_StopTask(self, p):
        cluster_arn = self.resolve_cluster(p)
        with self.lock:
            task = self.find_task(p["task"], cluster_arn)
            if task is None:
                raise AwsError(400, "InvalidParameterException", "The referenced task was not found.")
            if task.desired_status != "STOPPED":
                task.desired_status = "STOPPED"
                task.stop_code = "UserInitiated"
                task.stopped_reason = p.get("reason") or "Task stopped by user"
                task.stopping_at = now()
            described = task.describe(False)
        task.stop_requested.set()
        threading.Thread(target=self.stop_container, args=(task,), daemon=True).start()
        return {"task": described}

    # ----------------------------------------------------------------- running a task
    def stop_container(self, task):
        if self.task_mode == "processes":
            return self.stop_process(task)
        cid = task.container_id
        if cid:
            timeout = int(task.flow_container().get("stopTimeout", 30))
            self.docker.call("POST", f"/containers/{cid}/stop?t={timeout}", timeout=timeout + 60)

    def fail_to_start(self, task, reason):
        with self.lock:
            task.last_status = "STOPPED"
            task.desired_status = "STOPPED"
            task.container_status = "STOPPED"
            if task.stop_code is None:
                task.stop_code = "TaskFailedToStart"
                task.stopped_reason = reason
            task.container_reason = reason
            task.stopped_at = now()

    def run_task(self, task, slow):
        try:
            self.run_task_inner(task, slow)
        except Exception as e:  # the task must end, whatever happened
            print(f"ecs_fixture: task {task.arn}: {e!r}", file=sys.stderr)
            self.fail_to_start(task, f"ResourceInitializationError: the fixture failed: {e}")

    def run_task_inner(self, task, slow):
        if slow > 0 and task.stop_requested.wait(slow):
            self.fail_to_start(task, task.stopped_reason)
            return
        if self.task_mode == "processes":
            return self.run_task_process(task)
        with self.docker_slots:
            cid = self.start_container(task)
        if cid is None:
            return
        self.docker.call("POST", f"/containers/{cid}/wait?condition=not-running", timeout=None)
        status, info = self.docker.json("GET", f"/containers/{cid}/json")
        state = info.get("State", {}) if status == 200 else {}
        with self.lock:
            task.last_status = "DEPROVISIONING"
            task.container_status = "STOPPED"
            task.exit_code = state.get("ExitCode")
            if state.get("OOMKilled"):
                task.container_reason = "OutOfMemoryError: Container killed due to memory usage"
            if task.stop_code is None:
                task.stop_code = "EssentialContainerExited"
                task.stopped_reason = "Essential container in task exited"
            task.desired_status = "STOPPED"
            if task.stopping_at is None:
                task.stopping_at = now()
        with self.docker_slots:
            self.collect(task, cid)
        with self.lock:
            task.last_status = "STOPPED"
            task.stopped_at = now()

    def start_container(self, task):
        """Creates and starts the task's container: its id, or None when the task failed to start."""
        c = task.flow_container()
        image = c.get("image", "")
        with self.lock:
            task.last_status = "PENDING"
        status, _ = self.docker.call("GET", f"/images/{urllib.parse.quote(image, safe='')}/json")
        if status == 404:
            self.fail_to_start(task, f"CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                                     f"failed to resolve ref {image}: {image}: not found")
            return
        override = {}
        for o in task.request.get("overrides", {}).get("containerOverrides", []):
            if o.get("name") == c.get("name"):
                override = o
        env = {e["name"]: e["value"] for e in c.get("environment", [])}
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        command = override.get("command") or c.get("command")
        volumes = {v["name"]: v.get("host", {}).get("sourcePath") for v in task.td["definition"].get("volumes", [])}
        binds = [f"{volumes[m['sourceVolume']]}:{m['containerPath']}" + (":ro" if m.get("readOnly") else "")
                 for m in c.get("mountPoints", []) if volumes.get(m.get("sourceVolume"))]
        memory = c.get("memory") or c.get("memoryReservation") or int(task.td["definition"].get("memory") or 0)
        host_config = {"NetworkMode": "host", "Binds": binds}
        if memory:
            host_config["Memory"] = int(memory) * 1024 * 1024
            host_config["MemorySwap"] = int(memory) * 1024 * 1024
        spec = {"Image": image, "Env": [f"{k}={v}" for k, v in env.items()], "HostConfig": host_config,
                "Labels": {"culvert-ecs-fixture-task": task.arn}}
        if command:
            spec["Cmd"] = command
        if c.get("entryPoint"):
            spec["Entrypoint"] = c["entryPoint"]
        status, created = self.docker.json("POST", "/containers/create", spec)
        if status != 201:
            self.fail_to_start(task, f"CannotCreateContainerError: {created.get('message', status)}")
            return None
        cid = created["Id"]
        with self.lock:
            task.container_id = cid
        if task.stop_requested.is_set():
            self.docker.call("DELETE", f"/containers/{cid}?force=true")
            self.fail_to_start(task, task.stopped_reason)
            return None
        status, started = self.docker.json("POST", f"/containers/{cid}/start")
        if status not in (204, 304):
            self.collect(task, cid)
            self.fail_to_start(task, f"CannotStartContainerError: {started.get('message', status)}")
            return None
        with self.lock:
            self.containers_started += 1
            task.last_status = "RUNNING"
            task.container_status = "RUNNING"
            task.started_at = now()
        if task.stop_requested.is_set():  # StopTask came while it started
            threading.Thread(target=self.stop_container, args=(task,), daemon=True).start()
        return cid

    # ----------------------------------------------------------------- task mode "processes"
    def task_environment(self, task):
        c = task.flow_container()
        override = {}
        for o in task.request.get("overrides", {}).get("containerOverrides", []):
            if o.get("name") == c.get("name"):
                override = o
        env = {e["name"]: e["value"] for e in c.get("environment", [])}
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        command = override.get("command") or c.get("command") or []
        return (c.get("entryPoint") or []) + command, env

    def run_task_process(self, task):
        argv, env = self.task_environment(task)
        if not argv:
            self.fail_to_start(task, "CannotStartContainerError: the fixture's process mode needs the container's "
                                     "command (none in the overrides or the definition)")
            return
        folder = os.path.join(self.work_dir, "tasks", task.id)
        os.makedirs(os.path.join(folder, "artifacts"), exist_ok=True)
        env.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder,
                    "CULVERT_ARTIFACT_CACHE": os.path.join(folder, "artifacts")})
        output = os.path.join(folder, "output")
        with self.lock:
            task.last_status = "PENDING"
        try:
            with open(output, "wb") as out:
                process = subprocess.Popen(argv, env=env, cwd=folder, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            self.fail_to_start(task, f"CannotStartContainerError: {argv[0]}: {e.strerror}")
            return
        with self.lock:
            task.process = process
            self.containers_started += 1
            task.last_status = "RUNNING"
            task.container_status = "RUNNING"
            task.started_at = now()
        if task.stop_requested.is_set():  # StopTask came while it started
            self.stop_process(task)
        code = process.wait()
        with self.lock:
            task.last_status = "DEPROVISIONING"
            task.container_status = "STOPPED"
            task.exit_code = code if code >= 0 else 128 - code
            if task.stop_code is None:
                task.stop_code = "EssentialContainerExited"
                task.stopped_reason = "Essential container in task exited"
            task.desired_status = "STOPPED"
            if task.stopping_at is None:
                task.stopping_at = now()
        with open(output, "rb") as f:
            self.keep_logs(task, f.read().decode(errors="replace"))
        with self.lock:
            task.last_status = "STOPPED"
            task.stopped_at = now()

    def stop_process(self, task):
        process = task.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except OSError:
            return
        timeout = int(task.flow_container().get("stopTimeout", 30))
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass

    def keep_logs(self, task, text):
        """Keeps a task's output for GetLogEvents when its flow container logs with awslogs."""
        c = task.flow_container()
        lc = c.get("logConfiguration", {})
        if lc.get("logDriver") != "awslogs":
            return
        opts = lc.get("options", {})
        group = opts.get("awslogs-group", "")
        stream = f"{opts.get('awslogs-stream-prefix', '')}/{c.get('name', 'flow')}/{task.id}"
        stamp = int(now() * 1000)
        events = [{"timestamp": stamp, "message": line, "ingestionTime": stamp} for line in text.splitlines()]
        with self.lock:
            if events or opts.get("awslogs-create-group") == "true":
                self.logs.setdefault((group, stream), []).extend(events)

    def collect(self, task, cid):
        """Keeps the container's output for GetLogEvents (awslogs), then removes it."""
        c = task.flow_container()
        lc = c.get("logConfiguration", {})
        if lc.get("logDriver") == "awslogs":
            status, raw = self.docker.call("GET", f"/containers/{cid}/logs?stdout=true&stderr=true&timestamps=false")
            text = Docker.demux(raw) if status == 200 else ""
            opts = lc.get("options", {})
            group = opts.get("awslogs-group", "")
            stream = f"{opts.get('awslogs-stream-prefix', '')}/{c.get('name', 'flow')}/{task.id}"
            stamp = int(now() * 1000)
            events = [{"timestamp": stamp, "message": line, "ingestionTime": stamp}
                      for line in text.splitlines()]
            with self.lock:
                if events or opts.get("awslogs-create-group") == "true":
                    self.logs.setdefault((group, stream), []).extend(events)
        self.docker.call("DELETE", f"/containers/{cid}?force=true")

    # ----------------------------------------------------------------- control
    def remove_containers(self):
        """Removes the containers of all tasks (when the fixture is stopped)."""
        if self.task_mode == "processes":
            with self.lock:
                processes = [t.process for t in self.tasks.values() if t.process]
            for p in processes:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            return
        with self.lock:
            ids = [t.container_id for t in self.tasks.values() if t.container_id]
        for cid in ids:
            try:
                self.docker.call("DELETE", f"/containers/{cid}?force=true", timeout=30)
            except OSError:
                pass

    def state(self):
        with self.lock:
            return {
                "calls": dict(self.calls),
                "injected": dict(self.injected),
                "invalid": list(self.invalid),
                "task_mode": self.task_mode,
                "containers_started": self.containers_started,
                "revisions": {f: len(r) for f, r in self.families.items()},
                "tasks": [{"arn": t.arn, "lastStatus": t.last_status, "desiredStatus": t.desired_status,
                           "stopCode": t.stop_code, "stoppedReason": t.stopped_reason, "exitCode": t.exit_code,
                           "containerId": t.container_id, "tags": t.tags,
                           "startedBy": t.request.get("startedBy")} for t in self.tasks.values()],
            }

    def set_faults(self, body):
        with self.lock:
            for k in ("throttle", "server_error", "lose_run_task_answer", "slow_start_seconds"):
                if k in body:
                    self.faults[k] = float(body[k])
            if "actions" in body:
                self.faults["actions"] = body["actions"]
            if "seed" in body:
                self.rng = random.Random(body["seed"])
            return dict(self.faults)


# --------------------------------------------------------------------------- HTTP
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fixture = None

    def log_message(self, fmt, *args):  # quiet: the tests read the state instead
        pass

    def send(self, status, body, content_type):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_fixture/state":
            return self.send(200, json.dumps(self.fixture.state()), "application/json")
        self.send(404, "{}", "application/json")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.send(413, '{"__type":"SerializationException","message":"request too large"}',
                             "application/x-amz-json-1.1")
        raw = self.rfile.read(length)
        if self.path == "/_fixture/faults":
            return self.send(200, json.dumps(self.fixture.set_faults(json.loads(raw or b"{}"))), "application/json")
        target = self.headers.get("X-Amz-Target", "")
        auth = SCOPE.search(self.headers.get("Authorization", ""))
        if target.startswith(ECS_PREFIX) or target.startswith(LOGS_PREFIX):
            service = "ecs" if target.startswith(ECS_PREFIX) else "logs"
            action = target.split(".", 1)[1]
            try:
                if auth is None or auth.group(2) != service:
                    raise AwsError(400, "MissingAuthenticationTokenException",
                                   f"Missing Authentication Token (a SigV4 signature for service {service})")
                try:
                    params = json.loads(raw or b"{}")
                except ValueError:
                    raise AwsError(400, "SerializationException", "the body is not JSON")
                if service == "ecs":
                    out = self.fixture.ecs(action, params)
                else:
                    out = self.fixture.logs_call(action, params)
                self.send(200, json.dumps(out), "application/x-amz-json-1.1")
            except AwsError as e:
                self.send(e.status, json.dumps({"__type": e.code, "message": e.message}), "application/x-amz-json-1.1")
            return
        form = dict(urllib.parse.parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
        if "Action" in form:
            try:
                if auth is None or auth.group(2) != "ec2":
                    raise AwsError(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
                self.send(200, self.fixture.ec2(form), "text/xml;charset=UTF-8")
            except AwsError as e:
                body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(e.code)}'
                        f"</Code><Message>{escape(e.message)}</Message></Error></Errors>"
                        f"<RequestID>{uuid.uuid4()}</RequestID></Response>")
                status = 503 if e.code == "ThrottlingException" else e.status
                if e.code == "ThrottlingException":
                    body = body.replace("ThrottlingException", "RequestLimitExceeded")
                self.send(status, body, "text/xml;charset=UTF-8")
            return
        self.send(400, '{"__type":"UnknownOperationException","message":"no X-Amz-Target and no Action"}',
                  "application/x-amz-json-1.1")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 512


def main():
    ap = argparse.ArgumentParser(description="test-only ECS-compatible endpoint running tasks on Docker")
    ap.add_argument("--docker-socket")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--task-mode", choices=["containers", "processes"], default="containers")
    ap.add_argument("--max-starting", type=int, default=8)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--cluster", action="append", default=[])
    a = ap.parse_args()
    docker = None
    if a.task_mode == "containers":
        if not a.docker_socket:
            print("ecs_fixture: --docker-socket is required for --task-mode containers", file=sys.stderr)
            return 2
        docker = Docker(a.docker_socket)
        status, _ = docker.call("GET", "/_ping")
        if status != 200:
            print(f"ecs_fixture: the Docker daemon at {a.docker_socket} does not answer", file=sys.stderr)
            return 1
    Handler.fixture = Fixture(docker, a.region, ["default"] + a.cluster, a.task_mode, os.path.abspath(a.dir),
                              max(1, a.max_starting))
    server = Server(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    tmp = os.path.join(a.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, os.path.join(a.dir, "port"))
    def stop(*_):
        Handler.fixture.remove_containers()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    where = f"Docker at {a.docker_socket}" if docker else "tasks as local processes"
    print(f"ecs_fixture on 127.0.0.1:{port}, {where}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
