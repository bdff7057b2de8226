"""Transfer attacks: examples crafted on a source classifier, evaluated on a target (Papernot et al. 2016,
"Transferability in Machine Learning"; Tramer et al. 2017, "The Space of Transferable Adversarial Examples")."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..attacks.base import Attack
from ..attacks.engine.precision import attack_precision
from ..classifier import Classifier, frozen
from ..purified import detections
from .batched import BATCH_SIZE, sample_norms, success_of
from .guard import check_examples
from .outcome import Outcome, clean_predictions, outcome_from_parts
from .parts import SampleParts


@dataclass
class Crafted:
    """Adversarial examples of one attack on one source, for every eps, with the goal labels used."""

    eps: list[float]
    x_adv: list[Tensor]
    labels: Tensor
    targeted: bool
    seconds: float


def craft(
    source: Classifier, x: Tensor, y: Tensor, attack: Attack, eps_list: Sequence[float], *, batch_size: int = BATCH_SIZE,
    seed: int = 0, ids: Tensor | None = None,
) -> Crafted:
    """Run ``attack`` on ``source`` over ``(x, y)`` in batches; keeps the examples for every eps. ``ids`` (default:
    the positions) and the run's ``seed`` key each sample's random draws, as in every evaluation."""
    eps_list = [float(e) for e in eps_list]
    ids = torch.arange(len(x)) if ids is None else ids.cpu()
    per_eps: list[list[Tensor]] = [[] for _ in eps_list]
    labels = []
    t0 = time.perf_counter()
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        goal = attack.make_goal(source, xb, yb, seed=seed, ids=ids[start : start + batch_size])
        labels.append(goal.labels)
        with frozen(source), attack_precision(xb.device, attack.precision):
            crafted = attack.transfer_many(source, xb, goal, eps_list)
        for xa, eps in zip(crafted, eps_list):  # nothing is transferred that breaks the threat model
            check_examples(attack, xb, xa, eps, source.bounds)
        for i, xa in enumerate(crafted):
            per_eps[i].append(xa.detach().float())
    seconds = time.perf_counter() - t0
    return Crafted(eps_list, [torch.cat(p) for p in per_eps], torch.cat(labels), attack.targeted, seconds)


def evaluate_transfer(target: Classifier, x: Tensor, y: Tensor, crafted: Crafted, *, batch_size: int = BATCH_SIZE,
                      seed: int = 0) -> list[Outcome]:
    """Accuracy of ``target`` on examples crafted elsewhere; one Outcome per eps (the clean pass as in every row of
    the run: :func:`~.outcome.clean_predictions` with the run's ``seed``). No pass here is the attack's: queries
    and passes are 0; the seconds are the crafting's share and the scoring."""
    clean_pred = clean_predictions(target, x, batch_size=batch_size, seed=seed).cpu()
    clean_detected = detections(target, x, batch_size=batch_size)
    outcomes = []
    for i, (eps, xa) in enumerate(zip(crafted.eps, crafted.x_adv)):
        t0 = time.perf_counter()
        adv_pred = target.predict(xa, batch_size=batch_size).argmax(1).cpu()
        success = success_of(adv_pred, crafted.labels.cpu(), crafted.targeted)
        detected = detections(target, xa, batch_size=batch_size)
        linf, l2 = sample_norms(xa - x)
        parts = SampleParts(y.cpu(), clean_pred, adv_pred, success, linf, l2, norm=linf,
                            detected=None if detected is None else detected.cpu(),
                            detected_clean=None if clean_detected is None else clean_detected.cpu(), queries=0,
                            seconds=crafted.seconds / len(crafted.eps) + time.perf_counter() - t0,
                            index=i, count=len(crafted.eps))
        outcomes.append(outcome_from_parts(eps, parts))
    return outcomes
