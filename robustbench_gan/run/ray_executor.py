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
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from tqdm.auto import tqdm

from ..errors import ConfigError, RobustBenchError
from .cells import EvalData, run_cell
from .plan import Cell, ClassifierId
from .records import CellOutput

if TYPE_CHECKING:  # executors.make_executor imports this module
    from .executors import Task

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
    import torch

    for folder in search_path:
        if folder not in sys.path:
            sys.path.append(folder)
    if threads is not None:
        torch.set_num_threads(threads)
    where = {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
    try:
        data = ray.get(refs["data"]).to(device)
        classifiers = {ident: clf.to(device).eval() for ident, clf in zip(refs["ids"], ray.get(refs["classifiers"]))}
        return "ok", run_cell(cell, classifiers, data, progress=False), where
    except RobustBenchError as exc:  # the user's to fix: no retry, the driver raises it as it is
        return "error", exc, where


_REMOTE: Any = None


def _remote(ray: Any) -> Any:
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(_cell_task)
    return _REMOTE


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

    def run(self, tasks: Iterable[Task], data: EvalData, *, total: int, desc: str) -> Iterator[tuple[int, CellOutput]]:
        ray = require_ray()
        started = self._connect(ray)
        try:
            yield from self._run(ray, tasks, data, total=total, desc=desc)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray: Any, tasks: Iterable[Task], data: EvalData, *, total: int,
             desc: str) -> Iterator[tuple[int, CellOutput]]:
        device = str(data.x.device)
        num_gpus = self.num_gpus if self.num_gpus is not None else (1.0 if data.x.is_cuda else 0.0)
        remote = _remote(ray).options(num_cpus=self.num_cpus, num_gpus=num_gpus, max_retries=self.max_retries,
                                      retry_exceptions=False, name="robustbench_gan.cell")
        window = self.window or max(2, 2 * int(ray.cluster_resources().get("CPU", 1) // self.num_cpus))
        data_ref = ray.put(_host_copy(data))
        weights: dict[ClassifierId, Any] = {}
        pending: dict[Any, int] = {}
        source = iter(tasks)
        error: RobustBenchError | None = None
        bar = tqdm(total=total, desc=desc, disable=not self.progress)
        try:
            while True:
                while error is None and len(pending) < window:
                    item = next(source, None)  # trains the classifiers of this cell on the driver, if needed
                    if item is None:
                        break
                    index, cell, classifiers = item
                    ids = list(classifiers)
                    for ident in ids:
                        if ident not in weights:
                            weights[ident] = ray.put(_host_copy(classifiers[ident]))
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
            for ref in pending:  # Ctrl-C or a failure of the driver: nothing more to wait for
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
        if error is not None:
            raise error
