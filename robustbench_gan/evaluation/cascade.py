"""AutoAttack's evaluation: the cascade's row (its own per-sample decisions) and a row per component, the robust
accuracy after each attack of the cascade as the reference prints it (Croce & Hein 2020)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..attacks.autoattack import AutoAttack, CascadeLog
from ..classifier import Classifier
from ..core.stats import wilson_interval
from .batched import BATCH_SIZE, evaluate_batched
from .dispatch import evaluates
from .outcome import ComponentOutcome, Outcome


@evaluates(AutoAttack)
def evaluate_cascade(
    attack: AutoAttack, clf: Classifier, x: Tensor, y: Tensor, eps_list: Sequence[float], *,
    batch_size: int = BATCH_SIZE, seed: int = 0, gallery_size: int = 4, desc: str | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """The cascade's outcomes (one per eps), each with its components' (:attr:`Outcome.components`). The cascade
    gets every sample at once and batches its own passes: before each component it re-batches the samples still
    standing, ``batch_size`` at a time, as the reference's ``run_standard_evaluation`` does."""
    logs: list[CascadeLog] = []
    outcomes = evaluate_batched(attack, clf, x, y, eps_list, batch_size=batch_size, seed=seed,
                                gallery_size=gallery_size, desc=desc, progress=False, attack_batch=max(len(x), 1),
                                attack_desc=(desc or attack.kind) if progress else None,
                                on_batch=lambda result: logs.append(result.log))
    components = attack.components()
    for i, outcome in enumerate(outcomes):
        outcome.components = [ComponentOutcome(label, component, component_outcome(logs, i, k, outcome.eps))
                              for k, (label, component) in enumerate(components)]
    return outcomes


def component_outcome(logs: Sequence[CascadeLog], i: int, k: int, eps: float) -> Outcome:
    """The cascade after its component ``k`` at its ``i``-th eps: cumulative robust accuracy, and the
    component's own queries, passes and seconds."""
    clean_ok = torch.cat([b.clean_ok for b in logs])
    n, n_correct = len(clean_ok), int(clean_ok.sum())
    fooled_by = torch.cat([b.fooled_by[i] for b in logs])
    fooled = (fooled_by >= 0) & (fooled_by <= k)
    robust = int((clean_ok & ~fooled).sum())
    lo, hi = wilson_interval(robust, n)
    nan = float("nan")
    return Outcome(eps, {
        "n": n,
        "clean_accuracy": n_correct / n if n else nan,
        "robust_accuracy": robust / n if n else nan,
        "robust_accuracy_low": lo,
        "robust_accuracy_high": hi,
        "attack_success_rate": int((clean_ok & fooled).sum()) / n_correct if n_correct else nan,
        "mean_linf": nan,
        "mean_l2": nan,
        "queries": sum(b.queries[i][k] for b in logs),
        "forward_passes": sum(b.queries[i][k] for b in logs),
        "backward_passes": sum(b.backward[i][k] for b in logs),
        "seconds": sum(b.seconds[i][k] for b in logs),
    })
