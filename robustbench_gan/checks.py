"""Sanity checks that catch evaluations overstating robustness (gradient masking and broken attacks).

Two kinds: *table checks* read the result records of a suite; *classifier checks* probe a trained classifier.
Each returns flags ``{"check", "model", "defense", "attack", "message", "explanation", "reference"}``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from .attacks.base import Goal, input_gradient
from .attacks.pgd import PGD
from .classifier import Classifier, frozen

log = logging.getLogger(__name__)

Flag = dict[str, Any]

EXPLANATIONS: dict[str, tuple[str, str]] = {
    "accuracy-rises-with-eps": (
        "A larger perturbation budget can only help the attacker, so accuracy must not rise with eps. If it does, "
        "the attack is failing to optimise (often gradient masking) and the numbers at small eps are suspect too.",
        "Carlini et al. 2019, On Evaluating Adversarial Robustness, sec. 5",
    ),
    "single-step-beats-iterative": (
        "An iterative attack includes the single-step attack as its first step, so it should be at least as strong. "
        "A weaker iterative attack points to obfuscated gradients or a mis-configured attack.",
        "Athalye, Carlini & Wagner 2018, Obfuscated Gradients Give a False Sense of Security, sec. 3",
    ),
    "single-step-far-above-iterative": (
        "The model resists the single-step attack far better than an iterative one: its loss surface is locally "
        "curved so one gradient step is misleading (typical of FGSM adversarial training). Robustness measured "
        "with the single-step attack is overstated; trust the iterative number.",
        "Tramer et al. 2018, Ensemble Adversarial Training, sec. 3; Wong et al. 2020 (catastrophic overfitting)",
    ),
    "robust-at-huge-eps": (
        "With a budget as large as the whole pixel range any input can be turned into any other, so an attack that "
        "follows real gradients reaches (near) 0% accuracy. High accuracy there means the gradient does not "
        "lead the attack anywhere.",
        "Carlini et al. 2019, sec. 5; ART's security-curve check (Nicolae et al. 2018)",
    ),
    "white-box-above-transfer": (
        "Examples crafted on another model (transfer, a weaker black-box threat) fool this model more than "
        "examples crafted on the model itself with full gradient access: the white-box gradients are masked.",
        "Carlini & Wagner 2017; Tramer et al. 2018; Athalye et al. 2018",
    ),
    "zero-gradients": (
        "Many inputs have an all-zero or non-finite loss gradient, so gradient attacks cannot move them. Typical of "
        "a saturated softmax (defensive distillation): use a margin (logit) loss or transfer attacks.",
        "Carlini & Wagner 2016, Defensive Distillation is Not Robust to Adversarial Examples",
    ),
    "outputs-are-probabilities": (
        "The model returns probabilities (rows in [0, 1] summing to 1), not logits. Cross-entropy on probabilities "
        "has tiny gradients, weakening every gradient attack; return logits instead.",
        "Carlini & Wagner 2017, Towards Evaluating the Robustness of Neural Networks, sec. 4",
    ),
    "nondeterministic-outputs": (
        "Two forward passes in eval mode on the same input disagree: the model is randomized (or dropout was left "
        "on). Attacks must then average gradients over the randomness (Expectation over Transformation).",
        "Athalye, Carlini & Wagner 2018, sec. 4.2 (EOT)",
    ),
}

SINGLE_STEP = ("fgsm",)
ITERATIVE = ("pgd", "bim")


def make_flag(check: str, model: str, defense: str, attack: str, message: str) -> Flag:
    explanation, reference = EXPLANATIONS[check]
    return {"check": check, "model": model, "defense": defense, "attack": attack, "message": message,
            "explanation": explanation, "reference": reference}


# ---------------------------------------------------------------- table checks


def _white_box_untargeted(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("threat") == "white-box" and not r.get("targeted")
            and r.get("robust_accuracy") is not None and r.get("attack_kind") != "noise"]


def check_accuracy_rises_with_eps(records: list[dict[str, Any]], *, samples: int = 2) -> list[Flag]:
    """Robust accuracy at a larger eps exceeds that at a smaller eps by more than ``samples`` samples."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("robust_accuracy") is not None and r.get("attack_kind") != "noise":
            key = (r["model"], r["defense"], r["attack"], r.get("threat"), r.get("source"), r.get("norm"))
            groups[key].append(r)
    flags = []
    for (model, defense, attack, threat, source, _), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["eps"])
        for lo, hi in zip(rows, rows[1:]):
            n = max(1, int(lo.get("n") or 1))
            if hi["robust_accuracy"] - lo["robust_accuracy"] > samples / n:
                where = f" ({threat} from {source})" if source else ""
                flags.append(make_flag("accuracy-rises-with-eps", model, defense, attack,
                                       f"{attack}{where}: accuracy {lo['robust_accuracy']:.1%} at eps {lo['eps']:g} "
                                       f"rises to {hi['robust_accuracy']:.1%} at eps {hi['eps']:g}"))
                break
    return flags


def check_single_step_vs_iterative(records: list[dict[str, Any]], *, far: float = 0.3) -> list[Flag]:
    """Compare single-step (FGSM) with iterative (PGD/BIM) attacks at the same model, defense, norm and eps.

    Flags a single-step attack that is stronger beyond the intervals (broken iterative attack), and one whose
    accuracy is above the iterative one by at least ``far`` and beyond the intervals (gradient masking).
    """
    rows = _white_box_untargeted(records)
    by_cell: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_cell[(r["model"], r["defense"], r.get("norm"), r["eps"])].append(r)
    flags: list[Flag] = []
    seen: set[tuple] = set()
    for (model, defense, _, eps), cell in by_cell.items():
        singles = [r for r in cell if r.get("attack_kind") in SINGLE_STEP]
        iters = [r for r in cell if r.get("attack_kind") in ITERATIVE]
        for s in singles:
            for it in iters:
                if s["robust_accuracy_high"] < it["robust_accuracy_low"] and (model, defense, "beats", it["attack"]) not in seen:
                    seen.add((model, defense, "beats", it["attack"]))
                    flags.append(make_flag(
                        "single-step-beats-iterative", model, defense, it["attack"],
                        f"at eps {eps:g}, {s['attack']} leaves {s['robust_accuracy']:.1%} accuracy but the iterative "
                        f"{it['attack']} leaves {it['robust_accuracy']:.1%}"))
                gap = s["robust_accuracy"] - it["robust_accuracy"]
                if gap >= far and s["robust_accuracy_low"] > it["robust_accuracy_high"] and \
                        (model, defense, "far", s["attack"]) not in seen:
                    seen.add((model, defense, "far", s["attack"]))
                    flags.append(make_flag(
                        "single-step-far-above-iterative", model, defense, s["attack"],
                        f"at eps {eps:g}, {s['attack']} leaves {s['robust_accuracy']:.1%} accuracy but "
                        f"{it['attack']} only {it['robust_accuracy']:.1%}"))
    return flags


def check_white_box_above_transfer(records: list[dict[str, Any]]) -> list[Flag]:
    """White-box accuracy above the accuracy under transferred examples of the same attack and eps."""
    wb = {(r["model"], r["defense"], r["attack"], r["eps"]): r for r in records
          if r.get("threat") == "white-box" and r.get("robust_accuracy") is not None}
    flags, seen = [], set()
    for t in records:
        if t.get("threat") != "transfer" or t.get("robust_accuracy") is None:
            continue
        w = wb.get((t["model"], t["defense"], t["attack"], t["eps"]))
        key = (t["model"], t["defense"], t["attack"])
        if w is not None and w["robust_accuracy_low"] > t["robust_accuracy_high"] and key not in seen:
            seen.add(key)
            flags.append(make_flag(
                "white-box-above-transfer", t["model"], t["defense"], t["attack"],
                f"at eps {t['eps']:g}, white-box {t['attack']} leaves {w['robust_accuracy']:.1%} accuracy but "
                f"examples transferred from {t['source']} leave only {t['robust_accuracy']:.1%}"))
    return flags


TABLE_CHECKS: list[Callable[[list[dict[str, Any]]], list[Flag]]] = [
    check_accuracy_rises_with_eps, check_single_step_vs_iterative, check_white_box_above_transfer,
]


def table_flags(records: list[dict[str, Any]]) -> list[Flag]:
    """Every table check over the records of a run."""
    return [f for check in TABLE_CHECKS for f in check(records)]


# ---------------------------------------------------------------- classifier checks


def check_outputs(clf: Classifier, x: Tensor) -> list[str]:
    """Problems with the raw outputs: probabilities instead of logits; nondeterminism in eval mode."""
    problems = []
    with torch.no_grad():
        a, b = clf.predict(x), clf.predict(x)
    if bool(((a >= 0) & (a <= 1)).all()) and torch.allclose(a.sum(1), torch.ones(len(a), device=a.device), atol=1e-3):
        problems.append("outputs-are-probabilities")
    if not torch.equal(a, b):
        problems.append("nondeterministic-outputs")
    return problems


def zero_gradient_fraction(clf: Classifier, x: Tensor, y: Tensor) -> float:
    """Fraction of samples whose cross-entropy input gradient is all zero or not finite."""
    with frozen(clf):
        grad, _ = input_gradient(clf, x, Goal(y))
    flat = grad.flatten(1)
    bad = (flat == 0).all(1) | ~torch.isfinite(flat).all(1)
    return float(bad.float().mean())


def accuracy_at_huge_eps(clf: Classifier, x: Tensor, y: Tensor, *, steps: int = 20) -> float:
    """Accuracy under CE-loss PGD without random start and eps = the whole pixel range."""
    lo, hi = clf.bounds
    adv = PGD(steps=steps, random_start=False, step_size=(hi - lo) / 10).perturb(clf, x, Goal(y), eps=hi - lo)
    with torch.no_grad():
        return float((clf.predict(adv).argmax(1) == y).float().mean())


def classifier_flags(
    clf: Classifier, x: Tensor, y: Tensor, *, model: str, defense: str, samples: int = 100,
    zero_share: float = 0.05, huge_eps_accuracy: float = 0.1,
) -> list[Flag]:
    """Probe a classifier on up to ``samples`` evaluation inputs."""
    x, y = x[:samples], y[:samples]
    flags = [make_flag(p, model, defense, "", {
        "outputs-are-probabilities": "outputs are in [0, 1] and sum to 1 per row",
        "nondeterministic-outputs": "two eval-mode forward passes on the same inputs differ",
    }[p]) for p in check_outputs(clf, x)]
    share = zero_gradient_fraction(clf, x, y)
    if share > zero_share:
        flags.append(make_flag("zero-gradients", model, defense, "",
                               f"{share:.0%} of {len(x)} inputs have an all-zero or non-finite loss gradient"))
    acc = accuracy_at_huge_eps(clf, x, y)
    if acc > huge_eps_accuracy:
        flags.append(make_flag("robust-at-huge-eps", model, defense, "pgd (ce, eps = pixel range)",
                               f"{acc:.0%} accuracy under CE-loss PGD with eps = the whole pixel range"))
    return flags
