"""What evaluating one attack at one eps produces: the numbers of one results row plus per-sample predictions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..core.stats import wilson_interval
from .norms import flat_norm


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


def accuracy_metrics(
    y: Tensor, clean_pred: Tensor, adv_pred: Tensor, delta: Tensor, *, success: Tensor
) -> dict[str, Any]:
    """Clean/robust accuracy with Wilson interval, success rate over initially correct samples, mean norms."""
    n = len(y)
    correct = clean_pred == y
    robust = correct & (adv_pred == y)
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
    }
