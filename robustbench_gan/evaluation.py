"""Evaluate one classifier against one attack over a list of eps: the numbers of one results row per eps."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .attacks.base import Attack, flat_norm
from .attacks.noise import NoiseAttack
from .classifier import Classifier

log = logging.getLogger(__name__)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (Wilson 1927)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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


def evaluate_attack(
    clf: Classifier,
    x: Tensor,
    y: Tensor,
    attack: Attack,
    eps_list: Sequence[float],
    *,
    batch_size: int = 256,
    seed: int = 0,
    gallery_size: int = 4,
    desc: str | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """Run ``attack`` on ``(x, y)`` for every eps; one :class:`Outcome` per eps, in the order given."""
    if isinstance(attack, NoiseAttack):
        return evaluate_noise(clf, x, y, attack, eps_list)
    own = getattr(attack, "evaluate", None)
    if callable(own):  # attacks with their own protocol (the substitute attack holds out its seed set)
        return own(clf, x, y, eps_list, seed=seed, progress=progress)
    eps_list = [float(e) for e in eps_list]
    clean_pred = clf.predict(x, batch_size=batch_size).argmax(1)
    adv_preds: list[list[Tensor]] = [[] for _ in eps_list]
    adv_conf: list[list[Tensor]] = [[] for _ in eps_list]
    success: list[list[Tensor]] = [[] for _ in eps_list]
    deltas: list[list[Tensor]] = [[] for _ in eps_list]
    gallery_x: list[Tensor | None] = [None for _ in eps_list]
    seconds = 0.0
    queries = [0 for _ in eps_list]
    batches = range(0, len(x), batch_size)
    for bi, start in enumerate(tqdm(batches, desc=desc or attack.name, disable=not progress, leave=False)):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        goal = attack.make_goal(clf, xb, yb, seed=seed + bi)
        attack.queries = 0
        t0 = time.perf_counter()
        advs = attack.perturb_many(clf, xb, goal, eps_list)
        if xb.is_cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        per_eps = getattr(attack, "queries_per_eps", None)
        for i in range(len(eps_list)):
            queries[i] += per_eps[i] if per_eps and len(per_eps) == len(eps_list) else attack.queries // len(eps_list)
        for i, xa in enumerate(advs):
            probs = torch.softmax(clf.predict(xa, batch_size=batch_size), 1)
            conf, pred = probs.max(1)
            adv_preds[i].append(pred)
            adv_conf[i].append(conf)
            success[i].append(pred == goal.labels if goal.targeted else pred != goal.labels)
            deltas[i].append((xa - xb).cpu())
            if bi == 0:
                gallery_x[i] = xa[:gallery_size].detach().cpu()
    outcomes = []
    for i, eps in enumerate(eps_list):
        adv_pred = torch.cat(adv_preds[i])
        delta = torch.cat(deltas[i])
        m = accuracy_metrics(y.cpu(), clean_pred.cpu(), adv_pred.cpu(), delta, success=torch.cat(success[i]).cpu())
        m["queries"] = queries[i] if attack.threat != "white-box" else 0
        m["seconds"] = seconds / len(eps_list)
        gallery = gallery_items(clf, x[:gallery_size], y[:gallery_size], gallery_x[i]) if gallery_x[i] is not None else []
        outcomes.append(
            Outcome(eps, m, clean_pred.cpu(), adv_pred.cpu(), flat_norm(delta, attack.norm), gallery)
        )
    return outcomes


def gallery_items(clf: Classifier, x: Tensor, y: Tensor, x_adv: Tensor) -> list[dict[str, Any]]:
    """A few (original, adversarial) pairs with predicted labels and confidences, as nested lists."""
    p_clean = torch.softmax(clf.predict(x), 1).cpu()
    p_adv = torch.softmax(clf.predict(x_adv.to(x.device)), 1).cpu()
    items = []
    for i in range(len(x)):
        items.append({
            "label": int(y[i]),
            "clean_pred": int(p_clean[i].argmax()),
            "clean_conf": round(float(p_clean[i].max()), 4),
            "adv_pred": int(p_adv[i].argmax()),
            "adv_conf": round(float(p_adv[i].max()), 4),
            "x": x[i].cpu().numpy().round(4).tolist(),
            "x_adv": x_adv[i].numpy().round(4).tolist(),
        })
    return items


def evaluate_noise(clf: Classifier, x: Tensor, y: Tensor, attack: NoiseAttack, eps_list: Sequence[float]) -> list[Outcome]:
    """Rows of the noise probe: success = fraction of (noise, class) pairs confidently assigned that class."""
    clean_pred = clf.predict(x).argmax(1)
    clean_acc = float((clean_pred == y).float().mean())
    outcomes = []
    for eps in eps_list:
        t0 = time.perf_counter()
        fooled, delta = attack.fooled(clf, x, float(eps))
        n = len(fooled)
        not_fooled = int((~fooled).sum())
        lo, hi = wilson_interval(not_fooled, n)
        metrics = {
            "n": n,
            "clean_accuracy": clean_acc,
            "robust_accuracy": not_fooled / n,
            "robust_accuracy_low": lo,
            "robust_accuracy_high": hi,
            "attack_success_rate": 1 - not_fooled / n,
            "mean_linf": float(flat_norm(delta, "inf").mean()),
            "mean_l2": float(flat_norm(delta, "2").mean()),
            "queries": 0,
            "seconds": time.perf_counter() - t0,
        }
        outcomes.append(Outcome(float(eps), metrics))
    return outcomes
