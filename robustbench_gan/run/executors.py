"""Executors run cells. Each task is ``(cell, classifiers, data)``, all picklable; the executor yields
``(index, CellOutput)`` as cells finish, and the driver alone writes caches and results."""
from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Protocol

from tqdm.auto import tqdm

from ..classifier import Classifier
from .cells import EvalData, run_cell
from .plan import Cell, ClassifierId
from .records import CellOutput

Task = tuple[int, Cell, Mapping[ClassifierId, Classifier]]


class Executor(Protocol):
    def run(self, tasks: Iterable[Task], data: EvalData, *, total: int, desc: str) -> Iterator[tuple[int, CellOutput]]:
        ...


class LocalExecutor:
    """Runs cells one after the other in this process (the default)."""

    def __init__(self, *, progress: bool = True) -> None:
        self.progress = progress

    def run(self, tasks: Iterable[Task], data: EvalData, *, total: int, desc: str) -> Iterator[tuple[int, CellOutput]]:
        for index, cell, classifiers in tqdm(tasks, total=total, desc=desc, disable=not self.progress):
            yield index, run_cell(cell, classifiers, data, progress=self.progress)
