"""Run one cell: a pure function of the cell, its classifiers and the evaluation data (no runner object), so
that an executor can run it in another process or on another machine."""
from __future__ import annotations

import contextlib
import zlib
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..attacks import Attack
from ..attacks.autoattack import AutoAttack
from ..evaluation import (Outcome, craft, evaluate_attack, evaluate_transfer, merge_outcomes, outcome_from_json,
                          outcome_to_json, shardable)
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
    """Records (one per target and eps), gallery entries, substitute histories and per-sample blocks of a cell: a
    cell that shards is run as one shard and merged, exactly as a run cut into shards merges its shards."""
    if cell_shards(cell):
        return merge_shards(cell, [run_shard(cell, classifiers, data, 0, len(data.y), progress=progress)],
                            data.class_names)
    with _cell_random(cell, data):
        return _whole_cell(cell, classifiers, data, progress=progress)


def cell_shards(cell: Cell) -> bool:
    """Whether the cell's samples can be cut into shards: a transfer cell, or an attack whose evaluation shards
    (:func:`~robustbench_gan.evaluation.shardable`)."""
    return cell.source is not None or shardable(cell.attack.build())


@contextlib.contextmanager
def _cell_random(cell: Cell, data: EvalData) -> Iterator[None]:
    """torch's global generators forked and seeded by the cell (a randomized model's own draws)."""
    with torch.random.fork_rng(devices=[data.x.device] if data.x.is_cuda else []):
        torch.manual_seed(cell_seed(cell))
        yield


def _tuned(cell: Cell, classifiers: Mapping[ClassifierId, Classifier], data: EvalData) -> tuple[
        Attack, dict[ClassifierId, Classifier]]:
    """The cell's attack (given its prerequisites) and its classifiers as the settings run them (micro-batched,
    compiled)."""
    s = cell.settings
    attack = cell.attack.build()
    clfs = dict(classifiers)
    if s.micro_batch:
        clfs = {ident: micro_batched(clf, s.micro_batch) for ident, clf in clfs.items()}
    if s.compile:
        clfs = {ident: compiled(clf) for ident, clf in clfs.items()}
    attack.provide(data.prepared.get(cell.attack.name, []))
    return attack, clfs


def run_shard(cell: Cell, classifiers: Mapping[ClassifierId, Classifier], data: EvalData, start: int, stop: int, *,
              progress: bool = False) -> dict[str, Any]:
    """The samples ``[start, stop)`` of a cell that shards: per target, its outcomes at every eps with their
    per-sample parts, as JSON (what the shard cache stores and :func:`merge_shards` takes). Every setting that is
    decided from the data (the precision check, the automatic batch size) is decided on the whole set, so that a
    shard computes exactly what the whole cell computes for its samples."""
    s = cell.settings
    with _cell_random(cell, data):
        attack, clfs = _tuned(cell, classifiers, data)
        x, y = data.x[start:stop], data.y[start:stop]
        ids = torch.arange(start, stop)
        if cell.source is not None:
            members = [clfs[(m.name, d.name)] for m, d in cell.source]
            source = members[0] if len(members) == 1 else ensemble(members)
            attack.precision = precision_for(source, data.x, data.y, s.precision)
            crafted = craft(source, x, y, attack, cell.attack.eps, seed=s.seed, ids=ids,
                            batch_size=batch_size_for(source, data.x, s.batch_size))
            per_target = [evaluate_transfer(clfs[(m.name, d.name)], x, y, crafted, seed=s.seed,
                                            batch_size=batch_size_for(clfs[(m.name, d.name)], data.x, s.batch_size))
                          for m, d in cell.targets]
        else:
            ((m, d),) = cell.targets
            clf = clfs[(m.name, d.name)]
            attack.precision = precision_for(clf, data.x, data.y, s.precision)
            per_target = [evaluate_attack(
                clf, x, y, attack, cell.attack.eps, batch_size=batch_size_for(clf, data.x, s.batch_size),
                seed=s.seed, gallery_size=s.gallery, desc=f"{m.name}/{d.name}/{cell.attack.name}", progress=progress,
                ids=ids)]
    return {"start": start, "stop": stop, "targets": [[outcome_to_json(o) for o in outs] for outs in per_target],
            "purified": purifies(cell, classifiers)}


def purifies(cell: Cell, classifiers: Mapping[ClassifierId, Classifier]) -> list[bool]:
    """Per target: whether the classifier purifies its input (its rows say so)."""
    return [isinstance(classifiers[(m.name, d.name)], PurifiedClassifier) for m, d in cell.targets]


def merge_shards(cell: Cell, shards: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> CellOutput:
    """The cell's output from its shards' (:func:`run_shard`, consecutive and covering every sample): each
    target's outcomes merged (:func:`~robustbench_gan.evaluation.merge_outcomes`), then the records, gallery and
    per-sample blocks of the whole."""
    shards = sorted(shards, key=lambda sh: int(sh["start"]))
    for before, after in zip(shards, shards[1:]):
        if int(before["stop"]) != int(after["start"]):
            raise ValueError(f"shards of cell {cell.attack.name!r} are not consecutive: "
                             f"{before['stop']} then {after['start']}")
    attack = cell.attack.build()
    components = attack.components() if isinstance(attack, AutoAttack) else []
    per_target = [merge_outcomes([[outcome_from_json(doc, components) for doc in sh["targets"][t]]
                                  for sh in shards], gallery_size=cell.settings.gallery)
                  for t in range(len(cell.targets))]
    return cell_output(cell, attack, per_target, class_names, shards[0]["purified"])


def cell_output(cell: Cell, attack: Attack, per_target: Sequence[Sequence[Outcome]], class_names: Sequence[str],
                purified_targets: Sequence[bool]) -> CellOutput:
    """Records, gallery entries, substitute histories and per-sample blocks from each target's outcomes
    (``purified_targets``: per target, whether it purifies its input)."""
    s = cell.settings
    if cell.source is not None:
        out = CellOutput([])
        for (m, d), outcomes, purified in zip(cell.targets, per_target, purified_targets):
            out.records += [make_record(s, m.name, d, cell.attack, attack, o, source=cell.source_name,
                                        purified=purified) for o in outcomes]
            out.samples += sample_blocks(m.name, d.name, cell.attack, attack, outcomes, source=cell.source_name)
        return out
    ((m, d),) = cell.targets
    (outcomes,) = per_target
    (purified,) = purified_targets
    history = outcomes[0].rounds if outcomes else []
    rounds = [{"model": m.name, "defense": d.name, "attack": cell.attack.name, "rounds": history}] if history else []
    records = [make_record(s, m.name, d, cell.attack, attack, o, purified=purified) for o in outcomes]
    return CellOutput(records + component_records(s, m.name, d, cell.attack, outcomes, purified=purified),
                      gallery_entry(m.name, d.name, cell.attack.name, outcomes, class_names,
                                    strip=attack.role == "corruption"), rounds,
                      sample_blocks(m.name, d.name, cell.attack, attack, outcomes))


def _whole_cell(cell: Cell, classifiers: Mapping[ClassifierId, Classifier], data: EvalData, *,
                progress: bool) -> CellOutput:
    """A white-box cell whose evaluation sees every sample at once (the substitute attack, the probes)."""
    s = cell.settings
    attack, clfs = _tuned(cell, classifiers, data)
    ((m, d),) = cell.targets
    clf = clfs[(m.name, d.name)]
    attack.precision = precision_for(clf, data.x, data.y, s.precision)
    outcomes = evaluate_attack(
        clf, data.x, data.y, attack, cell.attack.eps, batch_size=batch_size_for(clf, data.x, s.batch_size),
        seed=s.seed, gallery_size=s.gallery, desc=f"{m.name}/{d.name}/{cell.attack.name}", progress=progress,
    )
    return cell_output(cell, attack, [outcomes], data.class_names, purifies(cell, classifiers))
