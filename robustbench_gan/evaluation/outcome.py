"""What evaluating one attack at one eps produces: the numbers of one results row plus per-sample predictions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..core.stats import wilson_interval
from ..attacks.engine.norms import flat_norm


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


@dataclass
class ComponentOutcome:
    """One component of an ensemble at one eps: its label in the ensemble, the attack and its outcome."""

    label: str
    attack: "Attack"
    outcome: Outcome


def accuracy_metrics(
    y: Tensor, clean_pred: Tensor, adv_pred: Tensor, delta: Tensor, *, success: Tensor,
    detected: Tensor | None = None, detected_clean: Tensor | None = None,
) -> dict[str, Any]:
    """Clean/robust accuracy with Wilson interval, success rate over initially correct samples, mean norms.

    With a detector (``detected``: its rejections of the adversarial inputs, ``detected_clean``: of the clean
    ones), a rejected adversarial input counts as defended: robust = correct on clean input and (rejected or
    still correct), and a success needs the input not rejected. ``detected`` and ``detected_clean`` (the
    false-positive rate on the evaluated clean data) are added as fractions of all samples; clean accuracy stays
    the classifier's, whatever the detector says."""
    n = len(y)
    correct = clean_pred == y
    robust = correct & (adv_pred == y)
    if detected is not None:
        robust = robust | (correct & detected)
        success = success & ~detected
    lo, hi = wilson_interval(int(robust.sum()), n)
    n_correct = int(correct.sum())
    return {
        "n": n,
        "clean_accuracy": n_correct / n if n else float("nan"),
        "robust_accuracy": int(robust.sum()) / n if n else float("nan"),
        "robust_accuracy_low": lo,
        "robust_accuracy_high": hi,
        "attack_success_rate": int((success & correct).sum()) / n_correct if n_correct else float("nan"),
        "mean_linf": float(flat_norm(delta, "inf").mean()) if n else 0.0,
        "mean_l2": float(flat_norm(delta, "2").mean()) if n else 0.0,
        **detection_metrics(detected, detected_clean),
    }


def detection_metrics(detected: Tensor | None, detected_clean: Tensor | None) -> dict[str, float]:
    """``detected_clean`` and ``detected``: the fractions of clean and of adversarial inputs a detector rejected
    (nothing without a detector, so results of models without one keep their columns)."""
    out = {}
    for key, mask in (("detected_clean", detected_clean), ("detected", detected)):
        if mask is not None:
            out[key] = int(mask.sum()) / len(mask) if len(mask) else float("nan")  # an exact fraction
    return out
