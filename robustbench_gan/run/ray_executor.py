"""A run's job graph as Ray tasks: the only module that imports Ray (lazily, when a run asks for
``executor = "ray"``).

Every job (a prerequisite, a classifier fit, a cell) becomes one task, submitted once all its dependencies have
finished; it receives references to their outputs and to the run's data, which go through Ray's object store once
(``ray.put``), runs the job with torch limited to its CPUs, and *returns* its output: the driver alone writes the
caches, results and report, so workers need no shared file system. A worker that dies mid-task is retried by Ray
(``max_retries``); a user error (a :class:`~robustbench_gan.errors.RobustBenchError`) comes back as a value and is
raised on the driver as itself, after the jobs already running have finished and been handed over (so they are
cached).
"""
from __future__ import annotations

import copy
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator


from ..errors import ConfigError, RobustBenchError
from .cells import EvalData
from .executors import run_bar
from .jobs import OfCell
from .plan import Job, JobEnv, JobGraph


log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'robustbench_gan[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or a one-line ConfigError naming the command that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"the ray executor needs Ray, which is not installed; install it with: {INSTALL_HINT}") \
            from None
    return ray


@dataclass(frozen=True)
class Placement:
    """Where a cell ran: its index in the plan, the Ray node id and the worker's process id."""

    index: int
    node: str
    pid: int


@dataclass(frozen=True)
class Built:
    """Something a task trained: ``what`` ("classifier", "GAN generator", "distillation teacher"), its cache key,
    and where (Ray node id, worker pid)."""

    what: str
    key: str
    node: str
    pid: int


def _job_task(job: Job, refs: dict[str, Any], search_path: list[str], threads: int | None,
              device: str) -> tuple[dict[str, Any], Any]:
    """Body of every remote task. Two returns: a small status (``ok`` or ``error`` with the user error, and where
    it ran) that the driver waits on, and the job's output (its tensors on the CPU), which the driver and the
    dependent jobs fetch.

    ``refs`` holds the object refs of the run's data and of the job's inputs nested in a dict, so Ray leaves them
    unresolved until the folders of user model factories are on ``sys.path`` (unpickling a user's model imports
    its module)."""
    import ray

    where = _worker_setup(search_path, threads)
    try:
        data = ray.get(refs["data"]) if refs["data"] is not None else None
        evaluated = ray.get(refs["eval"]).to(device) if refs["eval"] is not None else None
        inputs = dict(zip(refs["ids"], ray.get(refs["inputs"])))
        output = job.run(inputs, JobEnv(data, evaluated, device, progress=False))  # type: ignore[arg-type]
        return {"status": "ok", "where": where}, _to_host(output)
    except RobustBenchError as exc:  # the user's to fix: no retry, the driver raises it as it is
        return {"status": "error", "error": exc, "where": where}, None


def _worker_setup(search_path: list[str], threads: int | None) -> dict[str, Any]:
    """Make user model modules importable and limit torch's threads; where this task runs."""
    import ray
    import torch

    for folder in search_path:
        if folder not in sys.path:
            sys.path.append(folder)
    if threads is not None:
        torch.set_num_threads(threads)
    return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


def _to_host(obj: Any) -> Any:
    """``obj`` (a module, or a tuple holding modules) with its tensors on the CPU, for the object store."""
    if isinstance(obj, tuple):
        return tuple(_to_host(o) for o in obj)
    return obj.to("cpu") if hasattr(obj, "parameters") else obj


def _host_copy(obj: Any) -> Any:
    """A CPU copy of a tensor holder for the object store (workers may have no GPU); CPU objects as they are."""
    if isinstance(obj, tuple):
        return tuple(_host_copy(o) for o in obj)
    if isinstance(obj, EvalData):
        return obj if not obj.x.is_cuda else obj.to("cpu")
    if not hasattr(obj, "parameters"):
        return obj
    first = next(obj.parameters(), None)
    return obj if first is None or not first.is_cuda else copy.deepcopy(obj).to("cpu")


_REMOTES: dict[str, Any] = {}


def _remote(ray: Any) -> Any:
    if "job" not in _REMOTES:
        _REMOTES["job"] = ray.remote(num_returns=2)(_job_task)
    return _REMOTES["job"]


class RayExecutor:
    """Runs a run's job graph as Ray tasks on a running cluster (``address``: ``"auto"``, ``ray://host:port``,
    ...; default ``RAY_ADDRESS``) or on a local one sized to this machine, started for the run and shut down after
    it.

    ``num_cpus`` / ``num_gpus`` are each task's resources (fractions allowed); torch in a task uses
    ``max(1, int(num_cpus))`` threads, which is also the thread count of the run's numerics (cache keys). A job is
    submitted once its dependencies have finished, at most ``window`` at a time (default: twice the tasks the
    cluster fits), in the graph's order. ``placements`` records where each cell ran, ``trainings`` what each other
    job built and where.
    """

    def __init__(self, *, address: str | None = None, num_cpus: float = 1.0, num_gpus: float | None = None,
                 max_retries: int = 3, progress: bool = True, window: int | None = None) -> None:
        if num_cpus <= 0 or (num_gpus is not None and num_gpus < 0) or max_retries < 0:
            raise ConfigError(f"ray executor: num_cpus must be > 0, num_gpus >= 0 and max_retries >= 0; got "
                              f"num_cpus={num_cpus!r}, num_gpus={num_gpus!r}, max_retries={max_retries!r}")
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
        self.num_cpus, self.num_gpus, self.max_retries = num_cpus, num_gpus, max_retries
        self.progress, self.window = progress, window
        self.placements: list[Placement] = []
        self.trainings: list[Built] = []  # what non-cell jobs built, and where
        require_ray()  # fail before any training when Ray is missing

    @property
    def threads(self) -> int:
        """torch CPU threads of every task (and of the driver during the run: the numerics must agree)."""
        return max(1, int(self.num_cpus))

    def _connect(self, ray: Any) -> bool:
        """Connect (or reuse this process's connection); True when this call started a local cluster."""
        if ray.is_initialized():
            return False
        if self.address:
            log.info("ray: connecting to the cluster at %s", self.address)
            ray.init(address=self.address, logging_level=logging.WARNING)
            return False
        log.info("ray: starting a local cluster on this machine (%d CPUs)", os.cpu_count() or 1)
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
        return True

    def run(self, graph: JobGraph, env: JobEnv, *, desc: str) -> Iterator[tuple[str, Any]]:
        """Run the pending jobs of ``graph``; yield ``(job id, output)`` as each finishes."""
        ray = require_ray()
        started = self._connect(ray)
        try:
            yield from self._run(ray, graph, env, desc=desc)
        finally:
            if started:
                ray.shutdown()

    def _options(self, remote: Any, name: str, num_gpus: float) -> Any:
        """Task options. ``SPREAD``: jobs are independent and compute-bound, and the driver often submits them one
        at a time (as their dependencies finish); Ray's default policy then keeps every task on the driver's node
        while it has a free CPU, leaving the rest of the cluster idle."""
        return remote.options(num_cpus=self.num_cpus, num_gpus=num_gpus, max_retries=self.max_retries,
                              retry_exceptions=False, name=f"robustbench_gan.{name}", scheduling_strategy="SPREAD")

    def _run(self, ray: Any, graph: JobGraph, env: JobEnv, *, desc: str) -> Iterator[tuple[str, Any]]:
        device = env.device
        cuda = device.startswith("cuda")
        num_gpus = self.num_gpus if self.num_gpus is not None else (1.0 if cuda else 0.0)
        window = self.window or max(2, 2 * int(ray.cluster_resources().get("CPU", 1) // self.num_cpus))
        waiting = graph.pending()
        shared: dict[str, Any] = {}  # the run's data in the object store, put on first need
        outputs: dict[str, Any] = {}  # job id -> object ref of its output (finished jobs and graph.done)

        def put(name: str, value: Any) -> Any:
            if name not in shared:
                shared[name] = ray.put(_host_copy(value))
            return shared[name]

        def ref(job_id: str) -> Any:
            if job_id not in outputs:
                outputs[job_id] = ray.put(_host_copy(graph.done[job_id]))
            return outputs[job_id]

        running: dict[Any, tuple[Job, Any]] = {}  # status ref -> (job, output ref)
        error: RobustBenchError | None = None
        bar, units = run_bar(waiting, env, desc=desc, enabled=self.progress)  # images attacked: images/s, ETA
        try:
            while True:
                if error is None:
                    for job in list(waiting):
                        if len(running) >= window:
                            break
                        if any(dep not in outputs and dep not in graph.done for dep in job.deps):
                            continue
                        is_cell = isinstance(job, OfCell)  # cells, shards, merges: the eval data
                        refs = {"data": None if is_cell else put("data", env.data),
                                "eval": put("eval", env.eval) if is_cell else None,
                                "ids": list(job.deps), "inputs": [ref(dep) for dep in job.deps]}
                        remote = self._options(_remote(ray), job.what.replace(" ", "-"), num_gpus)
                        status, output = remote.remote(job, refs, list(job.search_path), self.threads, device)
                        running[status] = (job, output)
                        waiting.remove(job)
                    bar.set_postfix_str(f"{len(running)} running/queued")
                if not running:
                    break
                ready, _ = ray.wait(list(running), num_returns=1)
                for status_ref in ready:
                    job, output_ref = running.pop(status_ref)
                    status = ray.get(status_ref)
                    where = status["where"]
                    if isinstance(job, OfCell):
                        self.placements.append(Placement(job.index, where["node"], where["pid"]))
                    if status["status"] == "error":
                        error = error or status["error"]
                        continue
                    if not isinstance(job, OfCell):
                        self.trainings.append(Built(job.what, job.key, where["node"], where["pid"]))
                    outputs[job.id] = output_ref
                    bar.update(units(job))
                    nodes = len({p.node for p in self.placements})
                    bar.set_postfix_str(f"{len(running)} running/queued, {nodes} node(s)")
                    yield job.id, ray.get(output_ref)
        except BaseException:
            for status_ref in running:  # Ctrl-C or a failure of the driver: nothing more to wait for
                ray.cancel(status_ref, force=True)
            raise
        finally:
            bar.close()
        if error is not None:
            raise error
        if waiting:
            raise RuntimeError(f"the job graph cannot run {len(waiting)} job(s) whose dependencies are missing: "
                               f"{', '.join(job.id for job in waiting[:3])}")
