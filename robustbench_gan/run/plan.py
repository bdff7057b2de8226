"""The plan of a run: which classifiers it needs and which cells (attack x classifier(s) x eps list) it evaluates.

A :class:`Cell` is a plain, picklable description of work: it names its classifiers by ``(model, defense)`` and
carries the settings its result depends on, so an executor can ship it to another process or machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from ..suite import AttackConfig, DefenseConfig, ModelConfig, SuiteConfig

if TYPE_CHECKING:
    from ..classifier import Classifier

NO_DEFENSE = DefenseConfig("none", "none", {})

ClassifierId = tuple[str, str]
"""``(model name, defense name)``: how cells name classifiers."""
Pair = tuple[ModelConfig, DefenseConfig]
Task = tuple[int, "Cell", Mapping[ClassifierId, "Classifier"]]
"""What an executor runs: a cell's index in the plan, the cell, and the classifiers it names."""


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
                        ev.subset)


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
