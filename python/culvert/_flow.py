"""Tasks, parameters and flows: the graph a flow file builds, and what runs it.

A Flow records the task calls made inside its `with` block; the first run, describe
or graph turns the record into an engine flow (culvert._culvert.Flow) in which each
Python task is an engine task whose body calls the Python function.
"""

import datetime
import hashlib
import inspect
import io
import json
import logging
import os
import pickle
import sys
import threading
import typing

from culvert import _culvert
from culvert._results import PickleSerializer, _Result

_PARAM_TYPES = {bool: "bool", int: "int", float: "float", str: "string"}
_NO_DEFAULT = object()
_TRIGGERS = ("all_successful", "all_finished", "any_failed", "all_failed", "any_successful")


class SKIP(Exception):
    """Raised by a task to end its task run Skipped (downstream tasks are skipped too)."""


_culvert.set_skip_type(SKIP)


def _millis(value, what):
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}")
    return int(round(value * 1000))


# ---- the flow being built (the `with Flow(...)` block) ----

_building = threading.local()


def _active_flow():
    stack = getattr(_building, "stack", None)
    return stack[-1] if stack else None


class _Node:
    """A node of the graph: a task call, a mapped call, a command task or a parameter."""

    def __init__(self, flow, name):
        self.flow = flow
        self.name = name
        self.index = None  # in the engine flow, once built
        self.after_nodes = []

    def after(self, *others):
        """Ordering: this task starts after `others` have finished."""
        for o in others:
            if not isinstance(o, _Node) or isinstance(o, Parameter):
                raise TypeError(f"task '{self.name}': after() takes task calls, not {type(o).__name__}")
            self.after_nodes.append(o)
        self.flow._changed()
        return self

    set_upstream = after

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


class Parameter(_Node):
    """A flow parameter: Parameter("rows", default=1000). Its type (int, float, bool or
    str) comes from `type=`, else the default, else the type hint of the task argument
    it is passed to, else str. Without a default it is required."""

    def __init__(self, name, default=_NO_DEFAULT, type=None, required=None):
        flow = _active_flow()
        super().__init__(flow, name)
        if default is None:
            raise ValueError(f"Parameter '{name}': the default must be an int, float, bool or str, not None "
                             "(leave it out for a required parameter)")
        self.default = default
        self.required = default is _NO_DEFAULT if required is None else required
        if type is not None and type not in _PARAM_TYPES:
            raise TypeError(f"Parameter '{name}': type must be int, float, bool or str, not {type!r}")
        if type is None and default is not _NO_DEFAULT:
            type = next((t for t in (bool, int, float, str) if isinstance(default, t)), None)
            if type is None:
                raise TypeError(f"Parameter '{name}': the default must be an int, float, bool or str, "
                                f"not {default.__class__.__name__}")
        self.type = type
        if flow is not None:
            flow._add_param(self)

    def _type_name(self):
        return _PARAM_TYPES.get(self.type or str)


class unmapped:
    """Marks an argument of map() that every mapped run gets whole."""

    def __init__(self, value):
        self.value = value


class _Call(_Node):
    """A call of a task inside a flow: its inputs (nodes) and constants."""

    def __init__(self, flow, task, name, inputs, layout, mapped=None):
        super().__init__(flow, name)
        self.task = task
        self.inputs = inputs    # nodes whose values the function gets
        self.layout = layout    # how to rebuild the call: [(kwarg name or None, input pos or -1, constant)]
        self.mapped = mapped    # for map(): (position in layout of the mapped argument)
        self.distributed = None  # for map(workers=...): the engine's options


class _Shell(_Node):
    def __init__(self, flow, name, command, options):
        super().__init__(flow, name)
        self.command = command
        self.options = options


class Task:
    """A Python function as a task: made by @task. Calling it inside a `with Flow()`
    block adds a task run to the flow and returns its node (pass it to other tasks)."""

    def __init__(self, fn, name=None, retries=0, retry_delay=0, retry_backoff=None, max_retry_delay=None,
                 retry_jitter=None, retry_on=None, timeout=None, grace=None, trigger=None, cache_for=None,
                 cache_key=None, result=None, target=None, serializer=None, tags=None, reference=False,
                 on_state_change=None, on_failure=None, state_handlers=None):
        if not callable(fn):
            raise TypeError("@task decorates a function")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "task")
        if trigger is not None and trigger not in _TRIGGERS:
            raise ValueError(f"task '{self.name}': unknown trigger {trigger!r} (one of {', '.join(_TRIGGERS)})")
        if isinstance(result, _Result):
            serializer = serializer or result.serializer
            result = result.uri
        if isinstance(target, _Result):
            serializer = serializer or target.serializer
            target = target.uri
        self.serializer = serializer or PickleSerializer()
        if not (hasattr(self.serializer, "dumps") and hasattr(self.serializer, "loads")):
            raise TypeError(f"task '{self.name}': a serializer needs dumps(value) and loads(bytes)")
        self.options = {}
        if retries:
            self.options["retries"] = int(retries)
            self.options["retry_delay_ms"] = _millis(retry_delay, "retry_delay") or 0
        if retry_backoff is not None or max_retry_delay is not None:
            self.options["backoff"] = float(retry_backoff or 1.0)
            self.options["max_delay_ms"] = _millis(max_retry_delay, "max_retry_delay") or 0
        if retry_jitter is not None:
            self.options["jitter"] = float(retry_jitter)
        if retry_on is not None:
            self.options["retry_on"] = _retry_predicate(retry_on)
        if timeout is not None:
            self.options["timeout_ms"] = _millis(timeout, "timeout")
        if grace is not None:
            self.options["grace_ms"] = _millis(grace, "grace")
        if trigger is not None:
            self.options["trigger"] = trigger
        if cache_for is not None:
            self.options["cache_for_ms"] = _millis(cache_for, "cache_for")
        if cache_key is not None:
            self.options["cache_key"] = _cache_key_function(cache_key)
        if result is not None:
            self.options["result"] = str(result)
        if target is not None:
            self.options["target"] = str(target)
        if tags:
            self.options["tags"] = [str(t) for t in tags]
        if reference:
            self.options["reference"] = True
        hooks = list(on_state_change or []) if isinstance(on_state_change, (list, tuple)) else (
            [on_state_change] if on_state_change else [])
        hooks += list(state_handlers or [])
        if hooks:
            self.options["on_state_change"] = [_task_hook(h) for h in hooks]
        fails = list(on_failure) if isinstance(on_failure, (list, tuple)) else ([on_failure] if on_failure else [])
        if fails:
            self.options["on_failure"] = [_task_hook(h) for h in fails]
        try:
            self.signature = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def run(self, *args, **kwargs):
        """Calls the function itself, outside any flow (for tests of the function)."""
        return self.fn(*args, **kwargs)

    def _flow(self, what):
        flow = _active_flow()
        if flow is None:
            raise RuntimeError(f"task '{self.name}' was {what} outside a `with Flow(...)` block "
                               "(use task.run(...) to call the function itself)")
        return flow

    def _bind(self, args, kwargs):
        if self.signature is None:
            return [(None, a) for a in args] + list(kwargs.items())
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"task '{self.name}': {e}") from None
        out = []
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind == inspect.Parameter.VAR_POSITIONAL:
                out += [(None, v) for v in value]
            elif kind == inspect.Parameter.VAR_KEYWORD:
                out += list(value.items())
            elif kind == inspect.Parameter.KEYWORD_ONLY:
                out.append((name, value))
            else:
                out.append((None, value))
        return out

    def __call__(self, *args, upstream_tasks=None, task_name=None, **kwargs):
        flow = self._flow("called")
        inputs, layout = [], []
        for key, value in self._bind(args, kwargs):
            if isinstance(value, unmapped):
                value = value.value
            if isinstance(value, _Node):
                flow._check_owner(self.name, value)
                if isinstance(value, _Shell):
                    raise TypeError(f"task '{self.name}': command task '{value.name}' has no value to pass; "
                                    "use .after() for ordering")
                layout.append((key, len(inputs), None))
                inputs.append(value)
            else:
                layout.append((key, -1, value))
        call = _Call(flow, self, flow._unique_name(task_name or self.name), inputs, layout)
        flow._add_node(call)
        if upstream_tasks:
            call.after(*upstream_tasks)
        return call

    def map(self, *args, upstream_tasks=None, task_name=None, workers=None, chunk_size=None, storage=None,
            run_config=None, **kwargs):
        """One task run per element of the mapped argument (a task's list, or a list);
        the other arguments must be constants or unmapped(constant). The node's value
        is the list of results: a task that takes it reduces them.

        workers=N distributes the map: under an agent its elements run in chunks of
        chunk_size (default: the elements divided by N) as child flow runs, at most N at
        once, each launched by an agent like any run (with run_config, default the
        flow's); elements and results cross through `storage` (default: the flow's
        result_storage) by the serializers. A local run maps in this process."""
        flow = self._flow("mapped")
        distributed = _distributed_options(self.name, workers, chunk_size, storage, run_config)
        mapped_at, layout, source = None, [], None
        for key, value in self._bind(args, kwargs):
            if isinstance(value, unmapped):
                if isinstance(value.value, _Node):
                    raise TypeError(f"task '{self.name}': map() takes one mapped argument; an unmapped "
                                    "argument must be a constant, not a task or parameter")
                layout.append((key, -1, value.value))
            elif mapped_at is None:
                mapped_at = len(layout)
                source = value
                layout.append((key, 0, None))
            elif isinstance(value, _Node):
                raise TypeError(f"task '{self.name}': map() maps over one argument; pass the others as "
                                "constants or unmapped(...)")
            else:
                layout.append((key, -1, value))
        if mapped_at is None:
            raise TypeError(f"task '{self.name}': map() needs an argument to map over")
        name = flow._unique_name(task_name or self.name)
        if not isinstance(source, _Node):
            items = list(source)
            source = _Call(flow, Task(lambda: items, name=name + "-items"), flow._unique_name(name + "-items"), [], [])
            flow._add_node(source)
        if isinstance(source, _Shell):
            raise TypeError(f"task '{self.name}': command task '{source.name}' has no value to map over")
        flow._check_owner(self.name, source)
        call = _Call(flow, self, name, [source], layout, mapped=mapped_at)
        call.distributed = distributed
        flow._add_node(call)
        if upstream_tasks:
            call.after(*upstream_tasks)
        return call


def _distributed_options(name, workers, chunk_size, storage, run_config):
    """map()'s distribution arguments as the engine's options, or None for a local map."""
    if workers is None:
        given = [k for k, v in (("chunk_size", chunk_size), ("storage", storage), ("run_config", run_config))
                 if v is not None]
        if given:
            raise TypeError(f"task '{name}': map({given[0]}=...) distributes the map, which needs workers=N "
                            "(the most chunks running at once)")
        return None
    for what, v in (("workers", workers), ("chunk_size", chunk_size)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise TypeError(f"task '{name}': map({what}=...) must be an int, not {type(v).__name__}")
    d = {"max_workers": workers, "chunk_size": 0 if chunk_size is None else chunk_size}
    if storage is not None:
        d["storage"] = str(storage)
    if run_config is not None:
        if not hasattr(run_config, "_to_dict"):
            raise TypeError(f"task '{name}': map(run_config=...) takes a run config (LocalRun, DockerRun, "
                            f"ECSRun, SlurmRun), not {type(run_config).__name__}")
        d["run_config"] = run_config._to_dict()
    return d


def task(fn=None, **options):
    """Makes a function a task: @task, or @task(retries=3, retry_delay=10, timeout=300, ...)."""
    if fn is None:
        return lambda f: Task(f, **options)
    return Task(fn, **options)


def shell(name, command, env=None, working_dir=None, retries=0, retry_delay=0, timeout=None, kill_grace=None,
          trigger=None, tags=None, upstream_tasks=None):
    """A command task: `/bin/sh -c command`; stdout lines are logged at INFO, stderr at WARNING."""
    flow = _active_flow()
    if flow is None:
        raise RuntimeError(f"command task '{name}' was created outside a `with Flow(...)` block")
    opts = {}
    if retries:
        opts["retries"] = int(retries)
        opts["retry_delay_ms"] = _millis(retry_delay, "retry_delay") or 0
    if timeout is not None:
        opts["timeout_ms"] = _millis(timeout, "timeout")
    if kill_grace is not None:
        opts["grace_ms"] = _millis(kill_grace, "kill_grace")
    if trigger is not None:
        if trigger not in _TRIGGERS:
            raise ValueError(f"command task '{name}': unknown trigger {trigger!r}")
        opts["trigger"] = trigger
    if tags:
        opts["tags"] = [str(t) for t in tags]
    if env:
        opts["env"] = {str(k): str(v) for k, v in env.items()}
    if working_dir:
        opts["working_dir"] = str(working_dir)
    node = _Shell(flow, flow._unique_name(name, exact=True), command, opts)
    flow._add_node(node)
    if upstream_tasks:
        node.after(*upstream_tasks)
    return node


# ---- adapters of user functions for the engine ----

def _retry_predicate(retry_on):
    if isinstance(retry_on, type) and issubclass(retry_on, BaseException):
        retry_on = (retry_on,)
    if isinstance(retry_on, tuple):
        classes = retry_on

        def names(c):
            out = {c.__qualname__, f"{c.__module__}.{c.__qualname__}"}
            for sub in c.__subclasses__():
                out |= names(sub)
            return out

        def by_class(failure):
            kind = failure["message"].split(":", 1)[0]
            return any(kind in names(c) for c in classes)

        return by_class
    if not callable(retry_on):
        raise TypeError("retry_on takes an exception class, a tuple of them, or a function of the failure")
    return lambda failure: bool(retry_on(TaskFailure(**failure)))


class TaskFailure:
    """What a retry_on function sees: state (Failed or TimedOut), message, exit_code, attempt."""

    def __init__(self, state, message, exit_code, attempt):
        self.state, self.message, self.exit_code, self.attempt = state, message, exit_code, attempt


class TaskRunEvent:
    """What a task hook sees: task, map_index, state, attempt, message."""

    def __init__(self, task, map_index, state, attempt, message):
        self.task, self.map_index, self.state, self.attempt, self.message = task, map_index, state, attempt, message

    def __repr__(self):
        return f"TaskRunEvent({self.task!r}, {self.map_index}, {self.state!r}, {self.message!r})"


class FlowRunEvent:
    """What a flow hook sees: flow, flow_run_id, state, message."""

    def __init__(self, flow, flow_run_id, state, message):
        self.flow, self.flow_run_id, self.state, self.message = flow, flow_run_id, state, message


def _task_hook(fn):
    return lambda d: fn(TaskRunEvent(**d))


def _flow_hook(fn):
    return lambda d: fn(FlowRunEvent(**d))


def _cache_key_function(fn):
    class KeyContext:
        def __init__(self, d):
            self.__dict__.update(d)

    return lambda d: str(fn(KeyContext(d)))


def _call_adapter(fn, layout, n_inputs):
    """The function the engine calls with the input values in order."""
    if all(key is None and pos == i for i, (key, pos, _) in enumerate(layout)) and len(layout) == n_inputs:
        return fn  # every argument is an input, positionally: call the function itself

    def call(*values):
        args, kwargs = [], {}
        for key, pos, const in layout:
            v = values[pos] if pos >= 0 else const
            if key is None:
                args.append(v)
            else:
                kwargs[key] = v
        return fn(*args, **kwargs)

    return call


def _map_adapter(fn, layout, mapped_at):
    if len(layout) == 1:
        return fn

    def call(element):
        args, kwargs = [], {}
        for i, (key, pos, const) in enumerate(layout):
            v = element if i == mapped_at else const
            if key is None:
                args.append(v)
            else:
                kwargs[key] = v
        return fn(*args, **kwargs)

    return call


def _constants_digest(layout):
    consts = [(key, const) for key, pos, const in layout if pos < 0]
    if not consts:
        return None
    try:
        data = pickle.dumps(consts, protocol=4)
    except Exception:
        data = repr(consts).encode()
    return hashlib.sha256(data).hexdigest()


# ---- print and logging inside tasks ----

class _TaskStream(io.TextIOBase):
    """sys.stdout / sys.stderr while a flow runs: inside a task, lines become the task
    run's log lines; elsewhere text goes to the original stream."""

    def __init__(self, original, stream):
        self._original = original
        self._stream = stream

    def write(self, text):
        if _culvert.in_task():
            # A logging handler writing to this stream: the record already reached the
            # task run's log through _TaskLogHandler.
            f = sys._getframe(1)
            for _ in range(4):
                if f is None:
                    break
                if f.f_code.co_filename == logging.__file__:
                    return len(text)
                f = f.f_back
        if _culvert.write(self._stream, text):
            return len(text)
        return self._original.write(text)

    def flush(self):
        if not _culvert.in_task():
            self._original.flush()

    def isatty(self):
        return False

    @property
    def encoding(self):
        return getattr(self._original, "encoding", "utf-8")

    def fileno(self):
        return self._original.fileno()


class _TaskLogHandler(logging.Handler):
    """Records logged inside a task become that task run's log lines."""

    def emit(self, record):
        if _culvert.in_task():
            try:
                _culvert.log(record.levelno, self.format(record))
            except Exception:
                self.handleError(record)


_handler = _TaskLogHandler()
_handler.setFormatter(logging.Formatter("%(message)s"))
logging.getLogger().addHandler(_handler)
_task_logger = logging.getLogger("culvert.task")
_task_logger.setLevel(logging.INFO)
_capture_lock = threading.Lock()
_capture_depth = 0
_saved_streams = None
_saved_level = None


class _Capture:
    """While a flow runs: print() and logging inside tasks go to the task run's log."""

    def __enter__(self):
        global _capture_depth, _saved_streams, _saved_level
        with _capture_lock:
            if _capture_depth == 0:
                _saved_streams = (sys.stdout, sys.stderr)
                sys.stdout.flush()
                sys.stdout = _TaskStream(_saved_streams[0], 0)
                sys.stderr = _TaskStream(_saved_streams[1], 1)
                root = logging.getLogger()
                _saved_level = None
                if root.level == logging.WARNING:
                    # Python's default level: INFO records of tasks reach their log too.
                    _saved_level = root.level
                    root.setLevel(logging.INFO)
            _capture_depth += 1
        return self

    def __exit__(self, *exc):
        global _capture_depth
        with _capture_lock:
            _capture_depth -= 1
            if _capture_depth == 0:
                sys.stdout, sys.stderr = _saved_streams
                if _saved_level is not None:
                    logging.getLogger().setLevel(_saved_level)
        return False


def get_logger():
    """The logger of the running task (a logging.Logger whose lines are the task run's log)."""
    return _task_logger


class _Context:
    """The running task run: culvert.context() inside a task."""

    @property
    def task_name(self):
        return _culvert.task_info()["task_name"]

    @property
    def map_index(self):
        return _culvert.task_info()["map_index"]

    @property
    def attempt(self):
        return _culvert.task_info()["attempt"]

    @property
    def flow_name(self):
        return _culvert.task_info()["flow_name"]

    @property
    def flow_run_id(self):
        return _culvert.task_info()["flow_run_id"]

    @property
    def logger(self):
        return _task_logger

    def cancelled(self):
        """True once the run is cancelled or this attempt's timeout has passed."""
        return _culvert.cancelled()

    def sleep(self, seconds):
        """Sleeps on the run's clock; returns False early when cancelled or timed out."""
        return _culvert.sleep(float(seconds))

    def parameter(self, name):
        """The run's value of a parameter, as text."""
        return _culvert.parameter(name)


_context = _Context()


def context():
    """The running task run's context (only inside a task)."""
    if not _culvert.in_task():
        raise RuntimeError("culvert.context() is only available inside a running task")
    return _context


# ---- flows ----

class TaskRun:
    """One line of a run's summary."""

    def __init__(self, task, map_index, state, attempts, message):
        self.task, self.map_index, self.state, self.attempts, self.message = task, map_index, state, attempts, message

    def __repr__(self):
        return f"TaskRun({self.task!r}, map_index={self.map_index}, state={self.state!r}, message={self.message!r})"


class FlowRunResult:
    """The outcome of flow.run(): state, message, task_runs, logs and each task's value."""

    def __init__(self, flow, run):
        self._flow = flow
        self._run = run
        self.state = run.state
        self.message = run.message
        self.flow_run_id = run.flow_run_id
        self._task_runs = None

    @property
    def task_runs(self):
        if self._task_runs is None:
            self._task_runs = [TaskRun(**t) for t in self._run.task_runs()]
        return self._task_runs

    @property
    def logs(self):
        """Every log line: (task, map_index, level, message)."""
        return self._run.logs()

    @property
    def events(self):
        """Every task-run state change: (task, map_index, state, attempt, message)."""
        return self._run.events()

    @property
    def json(self):
        """The run summary document (as `run --output json` prints)."""
        return self._run.json()

    def is_successful(self):
        return self.state == "Success"

    def task_run(self, task, map_index=-1):
        name = task.name if isinstance(task, _Node) else task
        for t in self.task_runs:
            if t.task == name and t.map_index == map_index:
                return t
        raise KeyError(f"no task run {name!r} (map_index {map_index})")

    def result(self, node):
        """The value a task call produced in this run (a list for a mapped call)."""
        if not isinstance(node, _Node) or node.index is None or isinstance(node, Parameter):
            raise KeyError(f"{node!r} is not a task of this flow")
        return self._run.value(node.index)

    __getitem__ = result

    def log_lines(self, task=None):
        name = task.name if isinstance(task, _Node) else task
        return [m for (t, _, _, m) in self.logs if name is None or t == name]

    def __repr__(self):
        return f"FlowRunResult(state={self.state!r}, message={self.message!r})"


class Flow:
    """A flow: with Flow("etl", storage=..., run_config=..., schedule=...) as flow: ..."""

    def __init__(self, name, storage=None, run_config=None, schedule=None, description="", max_run_retries=0,
                 concurrency_limits=None, cache_storage=None, on_state_change=None, on_failure=None,
                 state_handlers=None, result_storage=None):
        if not isinstance(name, str) or not name:
            raise ValueError("Flow needs a name")
        self.name = name
        self.storage = storage
        self.run_config = run_config
        self.schedule = schedule
        self.description = description
        self.max_run_retries = max_run_retries
        self.concurrency_limits = dict(concurrency_limits or {})
        self.cache_storage = cache_storage
        self.result_storage = result_storage
        hooks = on_state_change if isinstance(on_state_change, (list, tuple)) else (
            [on_state_change] if on_state_change else [])
        self.on_state_change = list(hooks) + list(state_handlers or [])
        self.on_failure = list(on_failure) if isinstance(on_failure, (list, tuple)) else (
            [on_failure] if on_failure else [])
        self.nodes = []
        self.params = []
        self._names = {}
        self._engine = None
        filename = sys._getframe(1).f_code.co_filename
        self.file = os.path.abspath(filename) if filename and os.path.exists(filename) else None

    # building
    def __enter__(self):
        stack = getattr(_building, "stack", None)
        if stack is None:
            stack = _building.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _building.stack.pop()
        return False

    def _changed(self):
        self._engine = None

    def _unique_name(self, name, exact=False):
        n = self._names.get(name, 0) + 1
        self._names[name] = n
        if n == 1:
            return name
        if exact:
            raise ValueError(f"flow '{self.name}': a task named '{name}' already exists")
        candidate = f"{name}-{n}"
        while candidate in self._names:
            n += 1
            candidate = f"{name}-{n}"
        self._names[name] = n
        self._names[candidate] = 1
        return candidate

    def _add_node(self, node):
        self.nodes.append(node)
        self._changed()

    def _add_param(self, p):
        if any(q.name == p.name for q in self.params):
            raise ValueError(f"flow '{self.name}': parameter '{p.name}' is defined twice")
        p.flow = self
        self.params.append(p)
        self._changed()

    def _check_owner(self, task_name, node):
        if isinstance(node, Parameter) and node.flow is None:
            self._add_param(node)
        elif node.flow is not self:
            raise ValueError(f"task '{task_name}' takes {node!r} of another flow")

    def concurrency_limit(self, tag, limit):
        """At most `limit` task runs with `tag` run at once."""
        self.concurrency_limits[str(tag)] = int(limit)
        self._changed()
        return self

    def add_task(self, node):
        return node

    def _param_types(self):
        """Parameters without a type take the hint of the task argument they are passed to."""
        for p in self.params:
            if p.type is not None:
                continue
            for node in self.nodes:
                if not isinstance(node, _Call) or p not in node.inputs or node.task.signature is None:
                    continue
                try:
                    hints = typing.get_type_hints(node.task.fn)
                except Exception:
                    hints = {}
                names = list(node.task.signature.parameters)
                for i, (key, pos, _) in enumerate(node.layout):
                    if pos >= 0 and node.inputs[pos] is p:
                        arg = key if key is not None else (names[i] if i < len(names) else None)
                        if hints.get(arg) in _PARAM_TYPES:
                            p.type = hints[arg]
                if p.type is not None:
                    break

    def _build(self):
        if self._engine is not None:
            return self._engine
        self._param_types()
        f = _culvert.Flow(self.name)
        for i, p in enumerate(self.params):
            default = None if p.default is _NO_DEFAULT or p.required else p.type(p.default) if p.type else str(p.default)
            f.add_param(p.name, p._type_name(), default)
            p.index = i
        for node in self.nodes:
            if isinstance(node, _Shell):
                node.index = f.add_shell(node.name, node.command)
                continue
            refs = [(n.index, isinstance(n, Parameter)) for n in node.inputs]
            if node.mapped is not None:
                fn = _map_adapter(node.task.fn, node.layout, node.mapped)
                node.index = f.add_map(node.name, fn, refs[0][0], refs[0][1], node.task.serializer)
            else:
                fn = _call_adapter(node.task.fn, node.layout, len(node.inputs))
                node.index = f.add_task(node.name, fn, refs, node.task.serializer)
        for node in self.nodes:
            opts = dict(node.options) if isinstance(node, _Shell) else dict(node.task.options)
            if node.after_nodes:
                opts["after"] = [n.index for n in node.after_nodes]
            if isinstance(node, _Call) and node.distributed is not None:
                opts["distributed"] = node.distributed
            if isinstance(node, _Call) and "cache_for_ms" in opts and "cache_key" not in opts:
                digest = _constants_digest(node.layout)
                if digest is not None:  # constants are part of the call: they key the cache too
                    flow_name, name = self.name, node.name
                    opts["cache_key"] = lambda c, d=digest: "\n".join(
                        [flow_name, name, str(c["map_index"]), c["inputs_digest"], d])
            if opts:
                f.set_task_options(node.index, opts)
        fo = {"description": self.description or "", "max_run_retries": int(self.max_run_retries)}
        if self.storage:
            fo["storage"] = str(self.storage)
        if self.run_config is not None:
            fo["run_config"] = self.run_config._to_dict()
        if self.schedule is not None:
            fo["schedule"] = self.schedule._to_dict()
        if self.concurrency_limits:
            fo["concurrency_limits"] = self.concurrency_limits
        if self.cache_storage:
            fo["cache_storage"] = str(self.cache_storage)
        if self.result_storage:
            fo["result_storage"] = str(self.result_storage)
        if self.on_state_change:
            fo["on_state_change"] = [_flow_hook(h) for h in self.on_state_change]
        if self.on_failure:
            fo["on_failure"] = [_flow_hook(h) for h in self.on_failure]
        f.set_flow_options(fo)
        self._engine = f
        return f

    def validate(self):
        """Raises ValueError listing every definition error."""
        err = self._build().validate()
        if err:
            raise ValueError(err)

    def describe(self, artifact_kind="python"):
        """The flow description (tasks, edges, parameters, run config, schedule) as a dict."""
        d = json.loads(self._build().describe_json())
        d["artifact_kind"] = artifact_kind
        return d

    def describe_json(self, artifact_kind="python"):
        return json.dumps(self.describe(artifact_kind), indent=2)

    def graph(self):
        """The task graph in Graphviz DOT."""
        return self._build().graph_dot()

    def run(self, parameters=None, workers=1, clock=None, flow_run_id="", cache_storage="", chunked=False):
        """Runs the flow here, in this process, and returns a FlowRunResult.

        chunked=True runs each distributed map as its workers would, still in this
        process: chunk by chunk, each chunk's elements and results through the
        serializers (a check that they survive the trip)."""
        f = self._build()
        params = {}
        for k, v in (parameters or {}).items():
            params[str(k)] = ("true" if v else "false") if isinstance(v, bool) else str(v)
        with _Capture():
            r = f.run(params, int(workers), str(flow_run_id), clock, str(cache_storage), bool(chunked))
        return FlowRunResult(self, r)


# ---- the flow file's command line ----

_MAIN_HELP = """usage: {prog} <command> [options]   ({prog} <command> --help for its options)

commands:
  run [--param NAME=VALUE]... [--workers N] [--output table|json] [--flow-run-id ID]
                      run the flow here and print a summary
  describe            print the flow's description as JSON
  graph --dot         print the task graph in Graphviz DOT
  execute             run as flow run $CULVERT_FLOW_RUN_ID for an agent (reports to the server)
  register            upload this flow file to its storage and register it: --project P [--storage URI]
                      [--label L]... [--package DIR]
"""


def _flow_file(flow):
    main_mod = sys.modules.get("__main__")
    path = getattr(main_mod, "__file__", None) or flow.file
    if not path:
        raise RuntimeError("cannot find the flow's file")
    return os.path.abspath(path)


def main(flow, argv=None):
    """The flow file's command line: run, describe, graph, register, execute (as a C++
    flow binary's). Exits with the status: 0 Success, 1 failure, 2 bad usage."""
    argv = list(sys.argv if argv is None else argv)
    prog = os.path.basename(argv[0]) if argv else flow.name
    args = argv[1:]
    try:
        rc = _main(flow, prog, args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`describe | head`): no traceback for that.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        rc = 1
    sys.stderr.flush()
    _culvert.flush_cout()
    if _culvert.running_tasks() > 0:
        # A task left behind by a timeout still runs Python code: the interpreter
        # cannot shut down under it, so the process ends here.
        os._exit(rc)
    sys.exit(rc)


def _main(flow, prog, args):
    cmd = args[0] if args else None
    try:
        f = flow._build()
    except (TypeError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if cmd in (None, "-h", "--help", "help"):
        print(_MAIN_HELP.format(prog=prog), end="", file=sys.stdout if cmd else sys.stderr)
        return 0 if cmd else 2
    rest = args[1:]
    if cmd == "describe":
        if "--help" in rest or "-h" in rest:
            print(f"usage: {prog} describe [--output json]\nPrints the flow's description as JSON.")
            return 0
        if rest not in ([], ["--output", "json"], ["-o", "json"]):
            print(f"{prog} describe: unknown option '{rest[0]}' (usage: describe [--output json])", file=sys.stderr)
            return 2
        err = f.validate()
        if err:
            print(f"{prog}: {err}", file=sys.stderr)
            return 2
        print(flow.describe_json())
        return 0
    if cmd == "register":
        return _register(flow, prog, rest)
    with _Capture():
        return f.main([prog] + args)


def _register(flow, prog, args):
    from culvert import _package

    if "--help" in args or "-h" in args:
        print(f"usage: {prog} register --project P [--storage URI] [--label L]... [--package DIR]\n"
              "           [--idempotency-key K] [--s3-endpoint URL] [--api-url URL] [--api-token T]\n"
              "           [--profile NAME] [--output table|json]\n"
              "Uploads this flow file (or, with --package DIR, an archive of DIR) to its storage,\n"
              "content-addressed, and registers it as a new version.")
        return 0
    package = None
    rest = []
    i = 0
    while i < len(args):
        if args[i] == "--package":
            if i + 1 >= len(args):
                print(f"{prog} register: --package needs a folder", file=sys.stderr)
                return 2
            package = args[i + 1]
            i += 2
        else:
            rest.append(args[i])
            i += 1
    err = flow._build().validate()
    if err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    path = _flow_file(flow)
    kind = "python"
    tmp = None
    if package is not None:
        try:
            tmp = _package.build_archive(package, path)
        except ValueError as e:
            print(f"{prog} register: {e}", file=sys.stderr)
            return 2
        path, kind = tmp, "python-package"
    try:
        return flow._build().register_main(json.dumps(flow.describe(kind)), path, rest)
    finally:
        if tmp:
            os.unlink(tmp)
