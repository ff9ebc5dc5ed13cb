"""Culvert's Python SDK: flows of Python tasks on Culvert's C++ engine and runtime.

    import culvert
    from culvert import task, Flow, Parameter

    @task(retries=3, retry_delay=10)
    def extract(rows: int):
        ...

    with Flow("etl", storage="s3://bucket/flows") as flow:
        rows = Parameter("rows", default=1000)
        extract(rows)

    if __name__ == "__main__":
        culvert.main(flow)   # run, describe, graph, register, execute

See docs/PYTHON.md.
"""

from culvert._flow import (
    SKIP,
    Flow,
    FlowRunResult,
    Parameter,
    Task,
    TaskRun,
    context,
    get_logger,
    main,
    shell,
    task,
    unmapped,
)
from culvert._config import (
    Cron,
    DockerRun,
    EcsRun,
    Interval,
    LocalRun,
    SlurmRun,
)
from culvert._results import (
    JSONSerializer,
    LocalResult,
    PickleSerializer,
    S3Result,
    Serializer,
)
from culvert._culvert import ManualClock

ALL_SUCCESSFUL = "all_successful"
ALL_FINISHED = "all_finished"
ANY_FAILED = "any_failed"
ALL_FAILED = "all_failed"
ANY_SUCCESSFUL = "any_successful"

__all__ = [
    "ALL_FAILED", "ALL_FINISHED", "ALL_SUCCESSFUL", "ANY_FAILED", "ANY_SUCCESSFUL",
    "Cron", "DockerRun", "EcsRun", "Flow", "FlowRunResult", "Interval", "JSONSerializer",
    "LocalResult", "LocalRun", "ManualClock", "Parameter", "PickleSerializer", "S3Result",
    "SKIP", "Serializer", "SlurmRun", "Task", "TaskRun", "context", "get_logger", "main",
    "shell", "task", "unmapped",
]
