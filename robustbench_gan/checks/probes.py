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


def _accuracy(clf: Classifier, x: Tensor, y: Tensor) -> float:
    return float((clf.predict(x).argmax(1) == y).float().mean())


def input_scale_problem(clf: Classifier, x: Tensor, y: Tensor, *, gain: float = 0.15) -> str | None:
    """Try the inputs mapped to another pixel range ([0, 1] for data in 0..255, 0..255 for data in [0, 1]) and
    without the declared normalization: a message saying what fixes it when one of them labels at least ``gain``
    more of the samples correctly and halves the errors (far beyond sampling noise at 100 samples), else None."""
    if len(x) == 0 or type(clf) is not Classifier:  # defended wrappers judge their own inputs
        return None
    acc = _accuracy(clf, x, y)
    lo, hi = clf.bounds
    given = clf.input_bounds or clf.bounds
    tries: list[tuple[str, dict]] = []
    if given[1] - given[0] > 2:  # 0..255-like: the model may want [0, 1]
        tries.append((f"mapped to [0, 1]: the model takes inputs in [0, 1]; pass the images as x / {hi - lo:g} with "
                      "bounds=(0, 1) (a suite: drop bounds/input_bounds)", {"input_bounds": (0.0, 1.0)}))
    else:
        tries.append(("mapped to 0..255: the model was trained on 0..255 pixel values; keep the images in [0, 1] "
                      "and declare input_bounds = [0, 255] for the model in the suite (benchmark(): pass x * 255 "
                      "with bounds=(0, 255) and eps in 0..255 units)", {"input_bounds": (0.0, 255.0)}))
    if clf.normalized:
        tries.append(("without the mean/std normalization: the model normalizes its inputs itself; drop mean and "
                      "std", {"normalized": False}))
    best: tuple[float, str] | None = None
    for advice, change in tries:
        before = {k: getattr(clf, k) for k in change}
        try:
            for k, v in change.items():
                setattr(clf, k, v)
            alt = _accuracy(clf, x, y)
        finally:
            for k, v in before.items():
                setattr(clf, k, v)
        if alt >= acc + gain and 1 - alt <= (1 - acc) / 2 and (best is None or alt > best[0]):
            best = (alt, advice)
    if best is None:
        return None
    given_range = f"[{given[0]:g}, {given[1]:g}]"
    return (f"clean accuracy {acc:.0%} on inputs in {given_range}{' after normalization' if clf.normalized else ''}"
            f", but {best[0]:.0%} with the images {best[1]}")


def classifier_flags(
    clf: Classifier, x: Tensor, y: Tensor, *, model: str, defense: str, samples: int = 100,
    zero_share: float = 0.05, huge_eps_accuracy: float = 0.1,
) -> list[Flag]:
    """Probe a classifier on up to ``samples`` evaluation inputs."""
    x, y = x[:samples], y[:samples]
    scale = input_scale_problem(clf, x, y)
    flags = [make_flag("input-scale", model, defense, "", scale)] if scale else []
    flags += [make_flag(p, model, defense, "", {
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
