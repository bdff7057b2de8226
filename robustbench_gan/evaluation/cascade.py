"""AutoAttack's evaluation: the cascade's row (its own per-sample decisions) and a row per component, the robust
accuracy after each attack of the cascade as the reference prints it (Croce & Hein 2020)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..attacks.autoattack import AutoAttack, CascadeLog
from ..classifier import Classifier
from .batched import BATCH_SIZE, evaluate_batched
from .dispatch import evaluates
from .outcome import ComponentOutcome, Outcome
from .parts import CascadeParts


@evaluates(AutoAttack, shards=True)
def evaluate_cascade(
    attack: AutoAttack, clf: Classifier, x: Tensor, y: Tensor, eps_list: Sequence[float], *,
    batch_size: int = BATCH_SIZE, seed: int = 0, gallery_size: int = 4, desc: str | None = None,
    progress: bool = True, ids: Tensor | None = None,
) -> list[Outcome]:
    """The cascade's outcomes (one per eps), each with its components' (:attr:`Outcome.components`). The cascade
    gets every sample at once and batches its own passes: before each component it re-batches the samples still
    standing, ``batch_size`` at a time, as the reference's ``run_standard_evaluation`` does. ``ids``: as for
    :func:`~.batched.evaluate_batched`."""
    logs: list[CascadeLog] = []
    outcomes = evaluate_batched(attack, clf, x, y, eps_list, batch_size=batch_size, seed=seed,
                                gallery_size=gallery_size, desc=desc, progress=False, attack_batch=max(len(x), 1),
                                attack_desc=(desc or attack.kind) if progress else None,
                                on_batch=lambda result: logs.append(result.log), ids=ids)
    components = attack.components()
    for i, outcome in enumerate(outcomes):
        parts = [component_parts(logs, i, k) for k in range(len(components))]
        outcome.components = [ComponentOutcome(label, component, Outcome(outcome.eps, p.metrics()), p)
                              for (label, component), p in zip(components, parts)]
    return outcomes


def component_parts(logs: Sequence[CascadeLog], i: int, k: int) -> CascadeParts:
    """The cascade after its component ``k`` at its ``i``-th eps: who was correct, who was fooled by then, and the
    component's own queries, backward passes and seconds."""
    fooled_by = torch.cat([b.fooled_by[i] for b in logs])
    return CascadeParts(torch.cat([b.clean_ok for b in logs]), (fooled_by >= 0) & (fooled_by <= k),
                        sum(b.queries[i][k] for b in logs), sum(b.backward[i][k] for b in logs),
                        sum(b.seconds[i][k] for b in logs))
