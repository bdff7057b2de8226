"""Cells as Ray tasks: the only module that imports Ray (lazily, when a run asks for ``executor = "ray"``).

The evaluation data and each classifier's weights go through Ray's object store once (``ray.put``); a task gets
references to them and the cell, runs :func:`~robustbench_gan.run.cells.run_cell` with torch limited to its CPUs,
and *returns* its output: the driver alone writes the cache, results and report, so workers need no shared file
system. A worker that dies mid-task is retried by Ray (``max_retries``); a user error (a
:class:`~robustbench_gan.errors.RobustBenchError`) comes back as a value and is raised on the driver as itself,
after the cells already running have finished and been handed over (so they are cached).
"""
from __future__ import annotations

import copy
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Iterator


from ..core.progress import progress_bar
from ..defenses.base import FitContext
from ..errors import ConfigError, RobustBenchError
from .cells import EvalData, run_cell
from .classifiers import Classifiers, TrainJob
from .plan import Cell, ClassifierId, Pair, Task
from .records import CellOutput


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


def _cell_task(cell: Cell, refs: dict[str, Any], search_path: list[str], threads: int | None,
               device: str) -> tuple[str, Any, dict[str, Any]]:
    """Body of the remote task: ``("ok", CellOutput, where)`` or ``("error", RobustBenchError, where)``.

    ``refs`` holds the object refs of the data and classifiers nested in a dict, so Ray leaves them unresolved
    until the folders of user model factories are on ``sys.path`` (unpickling a user's model imports its module).
    """
    import ray

    where = _worker_setup(search_path, threads)
    try:
        data = ray.get(refs["data"]).to(device)
        classifiers = {ident: clf.to(device).eval() for ident, clf in zip(refs["ids"], ray.get(refs["classifiers"]))}
        return "ok", run_cell(cell, classifiers, data, progress=False), where
    except RobustBenchError as exc:  # the user's to fix: no retry, the driver raises it as it is
        return "error", exc, where


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


def _prerequisite_task(job: TrainJob, index: int, refs: dict[str, Any], search_path: list[str],
                       threads: int | None, device: str) -> tuple[dict[str, Any], Any]:
    """Build prerequisite ``index`` of ``job`` (a shared GAN, a teacher). Two returns: a small marker (status,
    where, what was built) that the fits needing it take as a plain argument, so Ray starts them only after this
    task, and the artefact itself, which they fetch once their user modules are importable."""
    import ray

    where = _worker_setup(search_path, threads)
    try:
        data = ray.get(refs["data"])
        context = FitContext(numerics=job.numerics)
        need = job.prerequisites(data, context)[index]
        artefact = _to_host(need.build(device=device, progress=False))
        return {"status": "ok", "where": where, "built": [(need.label, need.key)]}, artefact
    except RobustBenchError as exc:
        return {"status": "error", "error": exc, "where": where, "built": []}, None


def _train_task(job: TrainJob, refs: dict[str, Any], search_path: list[str], threads: int | None, device: str,
                *markers: dict[str, Any]) -> tuple[str, Any, dict[str, Any], list[tuple[str, str]]]:
    """Train ``job``'s classifier with the prerequisites built by other tasks (``refs["needs"]``: index -> artefact
    ref); ``("ok", classifier, where, built)`` or ``("error", RobustBenchError, where, [])``."""
    import ray

    where = _worker_setup(search_path, threads)
    for marker in markers:  # a prerequisite failed with a user error: so does this fit
        if marker["status"] == "error":
            return "error", marker["error"], where, []
    try:
        data = ray.get(refs["data"])
        context = FitContext(numerics=job.numerics)
        needs = job.prerequisites(data, context)
        for index, ref in refs["needs"].items():
            context.for_recipe(job.key).put(needs[index], ray.get(ref), save=False)
        clf = job.fit(data, device=device, progress=False, context=context)
        return "ok", _to_host(clf.eval()), where, [*context.built, ("classifier", job.key)]
    except RobustBenchError as exc:
        return "error", exc, where, []


def _to_host(obj: Any) -> Any:
    """``obj`` (a module, or a tuple holding modules) with its tensors on the CPU, for the object store."""
    if isinstance(obj, tuple):
        return tuple(_to_host(o) for o in obj)
    return obj.to("cpu") if hasattr(obj, "parameters") else obj


_REMOTES: dict[str, Any] = {}


def _remote(ray: Any, name: str = "cell") -> Any:
    if name not in _REMOTES:
        body = {"cell": _cell_task, "prerequisite": _prerequisite_task, "train": _train_task}[name]
        _REMOTES[name] = ray.remote(num_returns=2)(body) if name == "prerequisite" else ray.remote(body)
    return _REMOTES[name]


@dataclass(frozen=True)
class Built:
    """Something a task trained: ``what`` ("classifier", "GAN generator", "distillation teacher"), its cache key,
    and where (Ray node id, worker pid)."""

    what: str
    key: str
    node: str
    pid: int


def _host_copy(obj: Any) -> Any:
    """A CPU copy of a tensor holder for the object store (workers may have no GPU); CPU objects as they are."""
    device = getattr(obj, "x", None) if isinstance(obj, EvalData) else next(obj.parameters(), None)
    if device is None or not device.is_cuda:
        return obj
    return copy.deepcopy(obj).to("cpu")


class RayExecutor:
    """Runs cells as Ray tasks on a running cluster (``address``: ``"auto"``, ``ray://host:port``, ...; default
    ``RAY_ADDRESS``) or on a local one sized to this machine, started for the run and shut down after it.

    ``num_cpus`` / ``num_gpus`` are each task's resources (fractions allowed); torch in a task uses
    ``max(1, int(num_cpus))`` threads, which is also the thread count of the run's numerics (cache keys). At most
    ``window`` cells are in flight (default: twice the tasks the cluster fits), so the driver trains the classifiers
    the next cells need while earlier cells run. ``placements`` records where each cell ran.
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
        self.trainings: list[Built] = []  # what training tasks built, and where
        self._seen_markers: set[int] = set()
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

    def run(self, tasks: Iterable[Task], data: EvalData, *, total: int, desc: str,
            classifiers: Classifiers | None = None, pairs: list[Pair] = ()) -> Iterator[tuple[int, CellOutput]]:
        """Run the cells of ``tasks``. With ``classifiers``, the ones of ``pairs`` that need training are trained
        by tasks too (each prerequisite, such as a shared GAN, by one task the fits wait on), submitted first;
        the driver receives, checks and caches each classifier when the first cell asks for it."""
        ray = require_ray()
        started = self._connect(ray)
        try:
            yield from self._run(ray, tasks, data, total=total, desc=desc, classifiers=classifiers, pairs=pairs)
        finally:
            if started:
                ray.shutdown()

    def _options(self, remote: Any, name: str, num_gpus: float, **extra: Any) -> Any:
        """Task options. ``SPREAD``: cells and trainings are independent and compute-bound, and the driver often
        submits them one at a time (as the classifiers they need arrive); Ray's default policy then keeps every
        task on the driver's node while it has a free CPU, leaving the rest of the cluster idle."""
        return remote.options(num_cpus=self.num_cpus, num_gpus=num_gpus, max_retries=self.max_retries,
                              retry_exceptions=False, name=f"robustbench_gan.{name}", scheduling_strategy="SPREAD",
                              **extra)

    def _submit_training(self, ray: Any, classifiers: Classifiers, pairs: list[Pair], device: str, num_gpus: float,
                         bar: Any) -> list[Any]:
        """Submit a task per classifier to train and per distinct prerequisite to build; register a waiter for
        each classifier in ``classifiers.remote``. Returns the refs submitted (to cancel on failure)."""
        jobs = classifiers.to_train(pairs)
        if not jobs:
            return []
        data_ref = ray.put(classifiers.data)
        prerequisite = self._options(_remote(ray, "prerequisite"), "prerequisite", num_gpus)
        train = self._options(_remote(ray, "train"), "train", num_gpus)
        shared: dict[str, tuple[Any, Any]] = {}  # prerequisite key -> (marker, artefact ref)
        submitted: list[Any] = []
        for job in jobs:
            folders = list(job.model.search_path)
            needs: dict[int, Any] = {}
            markers: list[Any] = []
            for index, need in enumerate(job.prerequisites(classifiers.data, classifiers.fit_context)):
                if not need.key:
                    continue  # not shared: the fit builds it
                if need.key not in shared:
                    artefact = classifiers.fit_context.cached(need)  # from an earlier run's cache
                    if artefact is not None:
                        shared[need.key] = ({"status": "ok", "built": []}, ray.put(_to_host(artefact)))
                    else:
                        shared[need.key] = tuple(prerequisite.remote(job, index, {"data": data_ref}, folders,
                                                                     self.threads, device))
                        submitted.append(shared[need.key][0])
                        bar.total += 1
                marker, ref = shared[need.key]
                markers.append(marker)
                needs[index] = ref
            out = train.remote(job, {"data": data_ref, "needs": needs}, folders, self.threads, device, *markers)
            submitted.append(out)
            bar.total += 1
            classifiers.remote[job.ident] = self._waiter(ray, out, needs, markers, bar)
        log.info("ray: %d classifier(s) and %d prerequisite(s) to train", len(jobs),
                 sum(1 for m, _ in shared.values() if not isinstance(m, dict)))
        return submitted

    def _waiter(self, ray: Any, out: Any, needs: dict[int, Any], markers: list[Any], bar: Any) -> Any:
        seen = self._seen_markers

        def wait() -> tuple[Any, dict[int, Any]]:
            status, value, where, built = ray.get(out)
            for marker in markers:
                if isinstance(marker, dict) or id(marker) in seen:
                    continue
                seen.add(id(marker))
                info = ray.get(marker)
                self._record(info["built"], info["where"])
                bar.update(1)
            if status == "error":
                raise value
            self._record(built, where)
            bar.update(1)
            return value, {index: ray.get(ref) for index, ref in needs.items()}

        return wait

    def _record(self, built: list[tuple[str, str]], where: dict[str, Any]) -> None:
        self.trainings += [Built(what, key, where["node"], where["pid"]) for what, key in built]

    def _run(self, ray: Any, tasks: Iterable[Task], data: EvalData, *, total: int, desc: str,
             classifiers: Classifiers | None, pairs: list[Pair]) -> Iterator[tuple[int, CellOutput]]:
        device = str(data.x.device)
        num_gpus = self.num_gpus if self.num_gpus is not None else (1.0 if data.x.is_cuda else 0.0)
        remote = self._options(_remote(ray), "cell", num_gpus)
        window = self.window or max(2, 2 * int(ray.cluster_resources().get("CPU", 1) // self.num_cpus))
        data_ref = ray.put(_host_copy(data))
        weights: dict[ClassifierId, Any] = {}
        pending: dict[Any, int] = {}
        source = iter(tasks)
        error: RobustBenchError | None = None
        bar = progress_bar(total=total, desc=desc, enabled=self.progress, leave=True, log_lines=False)
        training: list[Any] = []
        try:
            if classifiers is not None:
                training = self._submit_training(ray, classifiers, list(pairs), device, num_gpus, bar)
            while True:
                while error is None and len(pending) < window:
                    try:  # waits for the classifiers of this cell, trained by tasks (or here, if not submitted)
                        item = next(source, None)
                    except RobustBenchError as exc:  # a training task failed: finish the running cells first
                        error = exc
                        break
                    if item is None:
                        break
                    index, cell, cell_classifiers = item
                    ids = list(cell_classifiers)
                    for ident in ids:
                        if ident not in weights:
                            weights[ident] = ray.put(_host_copy(cell_classifiers[ident]))
                    folders = list(dict.fromkeys(p for m, _ in (*(cell.source or ()), *cell.targets)
                                                 for p in m.search_path))
                    refs = {"data": data_ref, "ids": ids, "classifiers": [weights[i] for i in ids]}
                    pending[remote.remote(cell, refs, folders, self.threads, device)] = index
                    bar.set_postfix_str(f"{len(pending)} submitted")
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index = pending.pop(ref)
                    status, value, where = ray.get(ref)
                    self.placements.append(Placement(index, where["node"], where["pid"]))
                    if status == "error":
                        error = error or value
                        continue
                    nodes = len({p.node for p in self.placements})
                    bar.update(1)
                    bar.set_postfix_str(f"{len(pending)} running/queued, {nodes} node(s)")
                    yield index, value
        except BaseException:
            for ref in (*pending, *training):  # Ctrl-C or a failure of the driver: nothing more to wait for
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
            if classifiers is not None:
                classifiers.remote.clear()
        if error is not None:
            for ref in training:
                ray.cancel(ref, force=True)
            raise error
