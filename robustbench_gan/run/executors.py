"""Executors run cells. Each task is ``(cell, classifiers, data)``, all picklable; the executor yields
``(index, CellOutput)`` as cells finish, and the driver alone writes caches and results."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol

from ..core.progress import progress_bar
from ..errors import ConfigError
from ..registry import Registry
from .cells import EvalData, run_cell
from .classifiers import Classifiers
from .plan import Pair, Task
from .records import CellOutput


class Executor(Protocol):
    """Runs tasks and yields ``(index, CellOutput)`` as they finish. An executor may set ``threads``: torch's CPU
    threads its cells run with (the run's numerics, part of the cache keys, must match them)."""

    def run(self, tasks: Iterable[Task], data: EvalData, *, total: int, desc: str,
            classifiers: Classifiers | None = None, pairs: list[Pair] = ()) -> Iterator[tuple[int, CellOutput]]:
        """``classifiers`` and ``pairs``: the run's classifiers and those its cells need, in order, for an
        executor that trains them elsewhere (the cells' classifiers are obtained from ``classifiers`` either way)."""
        ...


class LocalExecutor:
    """Runs cells one after the other in this process (the default), training each classifier here when its first
    cell needs it."""

    def __init__(self, *, progress: bool = True) -> None:
        self.progress = progress

    def run(self, tasks: Iterable[Task], data: EvalData, *, total: int, desc: str,
            classifiers: Classifiers | None = None, pairs: list[Pair] = ()) -> Iterator[tuple[int, CellOutput]]:
        # the suite's bar; without a terminal the run logs a line per finished cell instead (run.pipeline)
        for index, cell, classifiers in progress_bar(tasks, total=total, desc=desc, enabled=self.progress,
                                                     leave=True, log_lines=False):
            yield index, run_cell(cell, classifiers, data, progress=self.progress)


EXECUTORS: Registry[Any] = Registry("executor")
"""Executor classes by the name a suite's ``[execution] executor`` gives; Ray's is a lazy entry (its module, the
only one that imports Ray, loads when a run asks for it)."""
EXECUTORS.register("local")(LocalExecutor)
EXECUTORS.register_lazy("ray", "robustbench_gan.run.ray_executor:RayExecutor")


def make_executor(kind: str = "local", *, address: str | None = None, num_cpus: float | None = None,
                  num_gpus: float | None = None, progress: bool = True) -> Executor:
    """The executor registered as ``kind`` (``local`` or ``ray``); ``local`` never imports Ray."""
    if kind not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS.names())}, got {kind!r}")
    if kind == "local":
        return LocalExecutor(progress=progress)
    return EXECUTORS.get(kind)(address=address, num_cpus=1.0 if num_cpus is None else num_cpus, num_gpus=num_gpus,
                               progress=progress)
