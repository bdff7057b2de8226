"""The plan of a run: the cells it evaluates (attack x classifier(s) x eps list) and the job graph that holds every
job the run needs (prerequisites such as a shared GAN or a distillation teacher, classifier fits, cells) with
their dependencies, and the executor protocol that runs such a graph.

A :class:`Cell` is a plain, picklable description of work: it names its classifiers by ``(model, defense)`` and
carries the settings its result depends on, so an executor can ship it to another process or machine. A
:class:`Job` is the same for any unit of work: picklable, a pure function of its dependencies' outputs and the
run's :class:`JobEnv`, and run the same way by every executor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol

import torch
from torch import Tensor, nn

from ..suite import AttackConfig, DefenseConfig, ModelConfig, SuiteConfig

if TYPE_CHECKING:
    from ..data import Data

NO_DEFENSE = DefenseConfig("none", "none", {})

ClassifierId = tuple[str, str]
"""``(model name, defense name)``: how cells name classifiers."""
Pair = tuple[ModelConfig, DefenseConfig]


@dataclass(frozen=True)
class CellSettings:
    """The run settings a cell's result depends on."""

    suite: str
    dataset: str
    seed: int = 0
    batch_size: int | None = None  # None: automatic (run.tuning.batch_size_for)
    gallery: int = 4
    eval_n: int | None = None
    precision: str = "auto"
    compile: bool = False
    eval_subset: str = "first"
    micro_batch: int = 0  # > 0: classifiers run on chunks of exactly this many samples (run.tuning.micro_batched)
    shard_size: int = 0  # samples per shard (0: one); not part of any cache key: results do not depend on it


def shard_bounds(n: int, shard_size: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` ranges of the shards of ``n`` samples (one range when ``shard_size`` is 0)."""
    if shard_size <= 0 or n <= shard_size:
        return [(0, n)]
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


@dataclass(frozen=True)
class Cell:
    """One unit of work.

    White-box (``source is None``): evaluate ``attack`` on the single classifier in ``targets`` at all its eps.
    Transfer: craft the examples of ``attack`` once on ``source`` (several classifiers form an ensemble that
    averages their logits, Tramer et al. 2018) and evaluate them on every classifier in ``targets``.
    """

    attack: AttackConfig
    targets: tuple[Pair, ...]
    settings: CellSettings
    source: tuple[Pair, ...] | None = None

    @property
    def source_name(self) -> str:
        return "" if self.source is None else source_name(self.source)

    def classifier_ids(self) -> list[ClassifierId]:
        """Every classifier the cell needs: sources first, then targets."""
        pairs = (*(self.source or ()), *self.targets)
        return list(dict.fromkeys((m.name, d.name) for m, d in pairs))


def source_label(model: str, defense: str) -> str:
    """How a source classifier is named in the ``source`` column."""
    return model if defense == "none" else f"{model}/{defense}"


def source_name(source: tuple[Pair, ...]) -> str:
    if len(source) == 1:
        return source_label(source[0][0].name, source[0][1].name)
    return "ensemble(" + "+".join(source_label(m.name, d.name) for m, d in source) + ")"


def transferable(cfg: AttackConfig) -> bool:
    """Untargeted white-box perturbation attacks transfer by default; ``transfer = true/false`` overrides."""
    attack = cfg.build()
    if attack.threat != "white-box" or not attack.starts_from_input:
        return False
    return cfg.transfer if cfg.transfer is not None else not attack.targeted and attack.transfers_by_default


def settings_of(suite: SuiteConfig, dataset: str) -> CellSettings:
    ev = suite.evaluation
    return CellSettings(suite.name, dataset, suite.seed, ev.batch_size, ev.gallery, ev.n, ev.precision, ev.compile,
                        ev.subset, ev.micro_batch, ev.shard_size)


def classifier_pairs(suite: SuiteConfig) -> list[Pair]:
    """Every (model, defense) of the suite, the undefended one first for each model."""
    return [(m, d) for m in suite.models for d in (NO_DEFENSE, *suite.defenses)]


def plan_cells(suite: SuiteConfig, dataset: str = "") -> list[Cell]:
    """White-box cells for every (model, defense, attack), then one transfer cell per (source, transferable
    attack): the examples crafted on each source (every classifier, or the undefended ones, per ``[transfer]
    sources``, plus an ensemble of the undefended models when asked) evaluated on every other classifier."""
    settings = settings_of(suite, dataset)
    classifiers = classifier_pairs(suite)
    cells = [Cell(a, ((m, d),), settings) for m, d in classifiers for a in suite.attacks]
    transfer_attacks = [a for a in suite.attacks if transferable(a)]
    if suite.transfer.sources == "none" or not transfer_attacks:
        return cells
    sources = [(c,) for c in classifiers if suite.transfer.sources == "all" or c[1].kind == "none"]
    undefended = tuple(c for c in classifiers if c[1].name == "none")
    if suite.transfer.ensemble and len(undefended) > 1:
        sources.append(undefended)
    for src in sources:
        targets = tuple(c for c in classifiers if not (len(src) == 1 and src[0] == c))  # the diagonal is white-box
        if targets:
            cells += [Cell(a, targets, settings, source=src) for a in transfer_attacks]
    return cells


@dataclass
class EvalData:
    """The evaluated samples (pixel space, on the run's device), their class names, and ``prepared``: per attack
    name, the artefacts of its :meth:`~robustbench_gan.attacks.Attack.prerequisites` (a generator and inverter,
    built once per run by the driver from the training data), handed to the attack in each of its cells."""

    x: Tensor
    y: Tensor
    class_names: tuple[str, ...]
    prepared: dict[str, list[Any]] = field(default_factory=dict)

    def to(self, device: str | torch.device) -> "EvalData":
        prepared = {name: [a.to(device) if isinstance(a, nn.Module) else a for a in artefacts]
                    for name, artefacts in self.prepared.items()}
        return EvalData(self.x.to(device), self.y.to(device), self.class_names, prepared)


@dataclass
class JobEnv:
    """What every job of a run may read besides its dependencies' outputs: the training data (fits and
    prerequisites), the evaluated samples (cells), the device and whether to show progress bars. An executor
    ships it to its workers once."""

    data: "Data"
    eval: EvalData
    device: str = "cpu"
    progress: bool = False


class Job(Protocol):
    """One unit of work of a run. ``id`` is unique in its graph; ``deps`` are the ids whose outputs :meth:`run`
    receives (``inputs[dep]``); ``what`` says what it makes ("classifier", "GAN generator", "cell", ...) and
    ``key`` its cache key (or its place in the plan); ``search_path``: folders a worker must put on ``sys.path``
    before unpickling the inputs (user model modules)."""

    id: str
    deps: tuple[str, ...]
    what: str
    key: str
    search_path: tuple[str, ...]

    def run(self, inputs: Mapping[str, Any], env: JobEnv) -> Any:
        """The job's output: a pure function of ``inputs`` and ``env`` (picklable)."""
        ...


@dataclass
class JobGraph:
    """Every job of a run, in a topological order (a job is added after all its dependencies), and ``done``: the
    outputs known before anything runs (cached classifiers and prerequisites, a prebuilt model), by job id."""

    jobs: dict[str, Job] = field(default_factory=dict)
    done: dict[str, Any] = field(default_factory=dict)

    def add(self, job: Job) -> None:
        """Add ``job`` (once; a second add of the same id is ignored). Its dependencies must be in the graph."""
        if job.id in self:
            return
        missing = [d for d in job.deps if d not in self]
        if missing:
            raise ValueError(f"job {job.id!r} depends on {missing}, which the graph does not hold yet")
        self.jobs[job.id] = job

    def resolve(self, job_id: str, output: Any) -> None:
        """Record an output known before the run (a cache hit): no executor runs that job."""
        self.done[job_id] = output

    def pending(self) -> list[Job]:
        """The jobs an executor must run, in topological order."""
        return [job for job in self.jobs.values() if job.id not in self.done]

    def needed(self) -> set[str]:
        """Ids whose output some pending job takes as input (an executor keeps only those)."""
        return {d for job in self.pending() for d in job.deps}

    def __contains__(self, job_id: object) -> bool:
        """Whether the graph holds ``job_id``, as a job to run or as an output known before the run."""
        return job_id in self.jobs or job_id in self.done


class Executor(Protocol):
    """Runs a :class:`JobGraph`: every pending job, each once and after its dependencies, yielding ``(job id,
    output)`` as each finishes; the driver alone writes caches and results. A user error
    (:class:`~robustbench_gan.errors.RobustBenchError`) in a job is raised after the jobs already running have
    been yielded. An executor may set ``threads``: torch's CPU threads its jobs run with (the run's numerics, part
    of the cache keys, must match them)."""

    def run(self, graph: JobGraph, env: JobEnv, *, desc: str) -> Iterator[tuple[str, Any]]:
        ...
