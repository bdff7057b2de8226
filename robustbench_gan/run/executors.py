"""Executors run cells. Each task is ``(cell, classifiers, data)``, all picklable; the executor yields
``(index, CellOutput)`` as cells finish, and the driver alone writes caches and results."""
from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Protocol


from ..classifier import Classifier
from ..core.progress import progress_bar
from ..errors import ConfigError
from .cells import EvalData, run_cell
from .classifiers import Classifiers
from .plan import Cell, ClassifierId, Pair
from .records import CellOutput

Task = tuple[int, Cell, Mapping[ClassifierId, Classifier]]


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


def make_executor(kind: str = "local", *, address: str | None = None, num_cpus: float | None = None,
                  num_gpus: float | None = None, progress: bool = True) -> Executor:
    """The executor named by ``kind`` (``local`` or ``ray``); ``local`` never imports Ray."""
    if kind == "local":
        return LocalExecutor(progress=progress)
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, num_cpus=1.0 if num_cpus is None else num_cpus, num_gpus=num_gpus,
                           progress=progress)
    raise ConfigError(f"executor must be local or ray, got {kind!r}")
