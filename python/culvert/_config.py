"""Run configs (where an agent runs the flow) and schedules (when the server starts it)."""

import datetime
import json


def _strings(v):
    return [str(x) for x in (v or [])]


class _RunConfig:
    _type = ""

    def __init__(self, **fields):
        self._fields = fields

    def _to_dict(self):
        d = {"type": self._type}
        d.update({k: v for k, v in self._fields.items() if v is not None})
        return d

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._fields.items() if v is not None)
        return f"{type(self).__name__}({args})"


class LocalRun(_RunConfig):
    """A run started by a local agent as a process on its machine."""
    _type = "local"

    def __init__(self, env=None, working_dir=None, labels=None):
        super().__init__(env=env, working_dir=working_dir, labels=_strings(labels))


class DockerRun(_RunConfig):
    """A run in a container of `image`, started by a Docker agent."""
    _type = "docker"

    def __init__(self, image=None, env=None, network_mode=None, volumes=None, cpu=None, memory=None,
                 labels=None):
        super().__init__(image=image, env=env, network_mode=network_mode, volumes=_strings(volumes),
                         cpu=None if cpu is None else str(cpu), memory=None if memory is None else str(memory),
                         labels=_strings(labels))


class EcsRun(_RunConfig):
    """A run as an ECS task (Fargate or EC2), started by an ECS agent."""
    _type = "ecs"

    def __init__(self, image=None, env=None, cpu=None, memory=None, task_role_arn=None,
                 execution_role_arn=None, cluster=None, subnets=None, security_groups=None,
                 assign_public_ip=None, task_definition=None, run_task_kwargs=None, labels=None):
        if isinstance(task_definition, dict):
            task_definition = json.dumps(task_definition)
        if isinstance(run_task_kwargs, dict):
            run_task_kwargs = json.dumps(run_task_kwargs)
        super().__init__(image=image, env=env, cpu=None if cpu is None else str(cpu),
                         memory=None if memory is None else str(memory), task_role_arn=task_role_arn,
                         execution_role_arn=execution_role_arn, cluster=cluster, subnets=_strings(subnets),
                         security_groups=_strings(security_groups), assign_public_ip=assign_public_ip,
                         task_definition=task_definition, run_task_kwargs=run_task_kwargs,
                         labels=_strings(labels))


class SlurmRun(_RunConfig):
    """A run as a Slurm batch job."""
    _type = "slurm"

    def __init__(self, partition=None, cpus=None, memory=None, time_limit=None, extra_options=None,
                 env=None, labels=None):
        super().__init__(partition=partition, cpus=cpus, memory=memory, time_limit=time_limit,
                         extra_options=_strings(extra_options), env=env, labels=_strings(labels))


class Cron:
    """A cron schedule in a time zone: Cron("0 6 * * *", "Europe/Berlin")."""

    def __init__(self, expression, timezone="UTC", parameters=None, catchup="skip", active=True):
        self.expression = expression
        self.timezone = timezone
        self.parameters = dict(parameters or {})
        self.catchup = catchup
        self.active = active

    def _to_dict(self):
        return {"cron": self.expression, "timezone": self.timezone, "parameters": self.parameters,
                "catchup": self.catchup, "active": self.active}


class Interval:
    """A fixed interval (seconds or a timedelta), counted from `anchor` (default: the epoch)."""

    def __init__(self, every, anchor=None, parameters=None, catchup="skip", active=True):
        if isinstance(every, datetime.timedelta):
            every = every.total_seconds()
        if every <= 0 or int(every) != every:
            raise ValueError(f"Interval: the interval must be a positive whole number of seconds, got {every!r}")
        self.every = int(every)
        if isinstance(anchor, datetime.datetime):
            if anchor.tzinfo is None:
                raise ValueError("Interval: anchor must be a timezone-aware datetime")
            anchor = int(anchor.timestamp())
        self.anchor = anchor
        self.parameters = dict(parameters or {})
        self.catchup = catchup
        self.active = active

    def _to_dict(self):
        return {"interval_seconds": self.every, "anchor_unix": self.anchor, "parameters": self.parameters,
                "catchup": self.catchup, "active": self.active}
