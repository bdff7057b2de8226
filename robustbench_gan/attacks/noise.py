"""Fooling images from noise (Goodfellow, Shlens & Szegedy 2014, sec. 7 "rubbish class" examples).

Start from uniform noise, take one signed-gradient step toward each class, and count how often the model then
assigns that class with more than 50% confidence. A robust model should not be confidently fooled by noise.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..classifier import Classifier, frozen
from ..errors import ConfigError
from .base import ATTACKS, Attack, Goal, check_bool, check_positive, check_seed, clip, input_gradient


@ATTACKS.register("noise")
class NoiseProbe(Attack):
    """Targeted one-step FGSM from uniform noise toward every class.

    ``perturb`` ignores the pixel values of ``x`` (it uses its shape) and returns noise moved toward
    ``goal.labels``; the evaluation reports the fraction of (noise image, class) pairs classified as that class
    with confidence above ``confidence`` (0.5, as in the paper's experiment). ``samples`` caps the number of
    noise images.

    A probe, not a robustness measurement: its rows report the fooling rate in ``attack_success_rate`` and leave
    ``robust_accuracy`` and its interval empty (NaN); it never enters the worst case.
    """

    role = "probe"
    starts_from_input = False

    def __init__(self, *, confidence: float = 0.5, samples: int = 100, seed: int = 0) -> None:
        super().__init__()
        check_positive("confidence", confidence)
        if not confidence < 1:
            raise ConfigError(f"confidence must be a probability in (0, 1), got {confidence!r}")
        check_positive("samples", samples, integer=True)
        check_seed(seed)
        self.confidence = float(confidence)
        self.samples = int(samples)
        self.seed = seed
        self.targeted = True
        self.target_mode = "each-class"

    def make_goal(self, clf: Classifier, x: Tensor, y: Tensor, *, seed: int = 0, ids: Tensor | None = None) -> Goal:
        """Targets cycle through the classes (the evaluation itself tries every class for every image)."""
        return Goal(torch.arange(len(x), device=x.device) % clf.num_classes, True)

    def noise_like(self, clf: Classifier, x: Tensor) -> Tensor:
        lo, hi = clf.bounds
        g = torch.Generator().manual_seed(self.seed)
        return (lo + (hi - lo) * torch.rand(x.shape, generator=g, dtype=x.dtype)).to(x.device)

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        x0 = self.noise_like(clf, x)
        if eps == 0:
            return x0
        with frozen(clf):
            grad, _ = input_gradient(clf, x0, Goal(goal.labels, True))
        return clip(x0 + eps * grad.sign(), clf).detach()

    def fooled(self, clf: Classifier, x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        """Per (image, class) pair: fooled with confidence > threshold, and the perturbations, for ``x[:samples]``."""
        x = x[: self.samples]
        hits, deltas = [], []
        x0 = self.noise_like(clf, x)
        for c in range(clf.num_classes):
            target = torch.full((len(x),), c, dtype=torch.long, device=x.device)
            xa = self.perturb(clf, x, Goal(target, True), eps=eps)
            with torch.no_grad():
                p = torch.softmax(clf.predict(xa), 1)
            hits.append((p.argmax(1) == c) & (p[:, c] > self.confidence))
            deltas.append(xa - x0)
        return torch.cat(hits), torch.cat(deltas)


@ATTACKS.register("uniform-noise")
class UniformNoise(Attack):
    """Baseline: add noise drawn uniformly from the eps-ball's bounding box (``sign=True``: random signs, the
    Linf ball's corners). Uses no model information at all, so any attack worth its name must beat it."""

    threat = "black-box"
    role = "baseline"

    def __init__(self, *, sign: bool = True, seed: int = 0) -> None:
        super().__init__()
        check_bool("sign", sign)
        check_seed(seed)
        self.sign = bool(sign)
        self.seed = seed

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        u = 2 * goal.draws(self.seed, len(x)).rand(x.shape[1:], device=x.device, dtype=x.dtype) - 1  # per sample
        d = u.sign() if self.sign else u
        return clip(x + eps * d, clf).detach()
