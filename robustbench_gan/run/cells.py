"""Run one cell: a pure function of the cell, its classifiers and the evaluation data (no runner object), so
that an executor can run it in another process or on another machine."""
from __future__ import annotations

import zlib
from typing import Mapping

import torch
from torch import Tensor, nn

from ..evaluation import craft, evaluate_attack, evaluate_transfer
from ..classifier import Classifier
from ..purified import PurifiedClassifier
from .plan import Cell, ClassifierId, EvalData
from .records import CellOutput, component_records, gallery_entry, make_record, sample_blocks
from .tuning import batch_size_for, compiled, micro_batched, precision_for


class MeanLogits(nn.Module):
    """Average of the logits of several classifiers (each applies its own normalization)."""

    def __init__(self, members: list[Classifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def ensemble(members: list[Classifier]) -> Classifier:
    """A classifier averaging the logits of ``members`` (an ensemble transfer source, Tramer et al. 2018)."""
    first = members[0]
    return Classifier(MeanLogits(members), num_classes=first.num_classes, bounds=first.bounds).eval()


def cell_seed(cell: Cell) -> int:
    """The seed of torch's global generators while a cell runs: the run's seed and the cell's identity, so a model
    that draws random numbers (dropout left on, noise layers) gives the same numbers whatever ran before."""
    ident = "|".join([cell.attack.name, cell.source_name, *(f"{m.name}/{d.name}" for m, d in cell.targets)])
    return (cell.settings.seed * 1_000_003 + zlib.crc32(ident.encode())) % 2**63


def run_cell(cell: Cell, classifiers: Mapping[ClassifierId, Classifier], data: EvalData, *,
             progress: bool = False) -> CellOutput:
    """Records (one per target and eps), gallery entries, substitute histories and per-sample blocks of a cell."""
    devices = [data.x.device] if data.x.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cell_seed(cell))
        return _run_cell(cell, classifiers, data, progress=progress)


def _run_cell(cell: Cell, classifiers: Mapping[ClassifierId, Classifier], data: EvalData, *,
              progress: bool) -> CellOutput:
    s = cell.settings
    attack = cell.attack.build()
    if s.micro_batch:
        classifiers = {ident: micro_batched(clf, s.micro_batch) for ident, clf in classifiers.items()}
    if s.compile:
        classifiers = {ident: compiled(clf) for ident, clf in classifiers.items()}
    attack.provide(data.prepared.get(cell.attack.name, []))
    if cell.source is not None:
        members = [classifiers[(m.name, d.name)] for m, d in cell.source]
        source = members[0] if len(members) == 1 else ensemble(members)
        attack.precision = precision_for(source, data.x, data.y, s.precision)
        crafted = craft(source, data.x, data.y, attack, cell.attack.eps, seed=s.seed,
                        batch_size=batch_size_for(source, data.x, s.batch_size))
        out = CellOutput([])
        for m, d in cell.targets:
            target = classifiers[(m.name, d.name)]
            outcomes = evaluate_transfer(target, data.x, data.y, crafted, seed=s.seed,
                                         batch_size=batch_size_for(target, data.x, s.batch_size))
            out.records += [make_record(s, m.name, d, cell.attack, attack, o, source=cell.source_name,
                                        purified=isinstance(target, PurifiedClassifier)) for o in outcomes]
            out.samples += sample_blocks(m.name, d.name, cell.attack, attack, outcomes, source=cell.source_name)
        return out
    ((m, d),) = cell.targets
    clf = classifiers[(m.name, d.name)]
    attack.precision = precision_for(clf, data.x, data.y, s.precision)
    outcomes = evaluate_attack(
        clf, data.x, data.y, attack, cell.attack.eps, batch_size=batch_size_for(clf, data.x, s.batch_size),
        seed=s.seed, gallery_size=s.gallery, desc=f"{m.name}/{d.name}/{cell.attack.name}", progress=progress,
    )
    history = outcomes[0].rounds if outcomes else []
    rounds = [{"model": m.name, "defense": d.name, "attack": cell.attack.name, "rounds": history}] if history else []
    purified = isinstance(classifiers[(m.name, d.name)], PurifiedClassifier)
    records = [make_record(s, m.name, d, cell.attack, attack, o, purified=purified) for o in outcomes]
    return CellOutput(records + component_records(s, m.name, d, cell.attack, outcomes, purified=purified),
                      gallery_entry(m.name, d.name, cell.attack.name, outcomes, data.class_names), rounds,
                      sample_blocks(m.name, d.name, cell.attack, attack, outcomes))
