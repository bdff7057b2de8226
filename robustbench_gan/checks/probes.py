"""Sanity checks that probe a trained classifier: logits vs probabilities, determinism, zero gradients, accuracy
at an eps as large as the pixel range."""
from __future__ import annotations

import torch
from torch import Tensor

from ..attacks.base import Goal, input_gradient
from ..attacks.pgd import PGD
from ..classifier import Classifier, frozen
from .explanations import Flag, make_flag


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
