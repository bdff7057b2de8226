"""What evaluating one attack at one eps produces: the numbers of one results row plus per-sample predictions, and
the merge of the outcomes of consecutive shards of samples into the outcome of the whole."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import Tensor

from .parts import CascadeParts, SampleParts, accuracy_metrics, detection_metrics  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from ..attacks.base import Attack
    from ..classifier import Classifier

CLEAN_STREAM = 0xC1EA9
"""Offset of the clean pass's random stream from the run's seed (apart from every attack's draws)."""


def clean_predictions(clf: "Classifier", x: Tensor, *, batch_size: int = 256, seed: int = 0) -> Tensor:
    """The classifier's labels for the clean ``x`` (fp32), drawn from a random stream of their own seeded by the
    run's ``seed``: a randomized classifier gets the same clean draw in every row of a run (one clean accuracy per
    classifier), and the draws of whatever runs next are untouched."""
    with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
        torch.manual_seed(seed + CLEAN_STREAM)
        return clf.predict(x, batch_size=batch_size).argmax(1)


@dataclass
class Outcome:
    """Metrics of one (attack, eps) cell plus per-sample predictions for galleries and per-sample data."""

    eps: float
    metrics: dict[str, Any]
    clean_pred: Tensor | None = None
    adv_pred: Tensor | None = None
    adv_norm: Tensor | None = None
    gallery: list[dict[str, Any]] = field(default_factory=list)
    ids: Tensor | None = None
    """Positions in the evaluated set of the samples above (``None``: all of them, in order)."""
    detected: Tensor | None = None
    """Per sample: the defended model's detector rejected the adversarial input (``None``: no detector)."""
    components: list["ComponentOutcome"] = field(default_factory=list)
    """An ensemble's components at this eps, in order (AutoAttack: the robust accuracy after each attack)."""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """The substitute attack's training rounds (queries, agreement, substitute accuracy per round)."""
    parts: "SampleParts | None" = None
    """What :attr:`metrics` are computed from (:meth:`SampleParts.metrics`), kept so that outcomes of one cell evaluated in
    shards merge into the outcome of the whole (:func:`merge_outcomes`). None: an evaluator that does not shard."""


@dataclass
class ComponentOutcome:
    """One component of an ensemble at one eps: its label in the ensemble, the attack and its outcome."""

    label: str
    attack: "Attack"
    outcome: Outcome
    parts: "CascadeParts | None" = None


def outcome_from_parts(eps: float, parts: SampleParts, *, gallery: list[dict[str, Any]] | None = None,
                       components: Sequence[tuple[str, "Attack", CascadeParts]] = (),
                       rounds: list[dict[str, Any]] | None = None) -> Outcome:
    """The outcome whose numbers and per-sample data are those of ``parts``."""
    outcome = Outcome(eps, parts.metrics(), parts.clean_pred, parts.adv_pred, parts.norm, list(gallery or []),
                      detected=parts.detected, rounds=list(rounds or []), parts=parts)
    outcome.components = [ComponentOutcome(label, attack, Outcome(eps, cp.metrics()), cp)
                          for label, attack, cp in components]
    return outcome


def merge_outcomes(shards: Sequence[Sequence[Outcome]], *, gallery_size: int) -> list[Outcome]:
    """The outcomes of consecutive shards of one evaluation (each a list over the same eps) as those of the whole:
    per-sample data concatenated, counters added, metrics computed once over all samples, the gallery's first
    ``gallery_size`` examples."""
    if len(shards) == 1:
        return list(shards[0])
    merged = []
    for i, first in enumerate(shards[0]):
        pieces = [shard[i] for shard in shards]
        if any(o.parts is None for o in pieces):
            raise ValueError("outcomes without per-sample parts cannot be merged")
        parts = SampleParts.concat([o.parts for o in pieces])  # type: ignore[misc]
        gallery = [item for o in pieces for item in o.gallery][:gallery_size]
        components = [(c.label, c.attack, CascadeParts.concat([o.components[k].parts for o in pieces]))  # type: ignore[misc]
                      for k, c in enumerate(first.components)]
        merged.append(outcome_from_parts(first.eps, parts, gallery=gallery, components=components,
                                         rounds=first.rounds))
    return merged


def outcome_to_json(o: Outcome) -> dict[str, Any]:
    """A sharded evaluation's outcome as JSON (for the shard cache): its eps, parts, gallery and components'
    parts (their attacks are rebuilt from the cell's config)."""
    if o.parts is None:
        raise ValueError("only outcomes with per-sample parts are stored per shard")
    return {"eps": o.eps, "parts": o.parts.to_json(), "gallery": o.gallery,
            "components": [{"label": c.label, "parts": c.parts.to_json()} for c in o.components
                           if c.parts is not None]}


def outcome_from_json(doc: dict[str, Any], components: Sequence[tuple[str, "Attack"]] = ()) -> Outcome:
    """The inverse of :func:`outcome_to_json`; ``components``: the ensemble's (label, attack) pairs, in order."""
    attacks = dict(components)
    parts = [(c["label"], attacks[c["label"]], CascadeParts.from_json(c["parts"])) for c in doc["components"]]
    return outcome_from_parts(float(doc["eps"]), SampleParts.from_json(doc["parts"]), gallery=doc["gallery"],
                              components=parts)
