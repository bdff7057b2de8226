"""Native minimum-norm attacks: FMN (Pintor et al. 2021) and DDN (Rony et al. 2019), and FAB without a budget.

A minimum-norm attack looks for each sample's smallest adversarial perturbation once; the evaluation thresholds it
at every eps of the run (a sample is robust at eps when the smallest perturbation found is larger), keeps the
distance per sample (``samples.csv.gz``, column ``perturbation``) and so yields the whole curve of robust accuracy
against eps from one run (:mod:`robustbench_gan.curves`).

- **FMN**, Fast Minimum-Norm (Pintor, Roli, Brendel & Biggio 2021, "Fast Minimum-norm Adversarial Attacks through
  Adaptive Norm Constraints", NeurIPS), Linf, L2, L1 and L0: a normalised gradient step on the logit difference, then a
  projection onto a ball whose radius ``epsilon`` adapts per sample: it shrinks by ``gamma`` (toward the best
  norm found) while the iterate is adversarial, grows by ``gamma`` once an adversarial point has been found and
  the iterate is not, and before that jumps to the iterate's norm plus its linearised distance to the boundary.
  The step size ``alpha`` and ``gamma`` follow cosine schedules (``alpha`` from ``alpha_init`` to a hundredth of
  it, ``gamma`` from 0.05 to 0.001, as in the paper and its reference code).
- **DDN**, Decoupled Direction and Norm (Rony, Hafemann, Oliveira, Ben Ayed, Sabourin & Granger 2019, "Decoupling
  Direction and Norm for Efficient Gradient-Based L2 Adversarial Attacks and Defenses", CVPR), L2: a normalised
  cross-entropy gradient step sets the direction; the norm ``epsilon`` shrinks by ``gamma`` (0.05) while the
  iterate is adversarial and grows otherwise; the step size follows a cosine schedule from 1 to 0.01; iterates
  are quantised to ``levels`` (256, as for 8-bit images) within the bounds.
- **FAB** (``fab-min``): :class:`~.fab.FAB` without a budget, every step on every sample: its minimum-norm point.

Every attack here keeps, per sample, the smallest adversarial point it met (decided in fp32 under a low attack
precision), and returns the input where it found none.
"""
from __future__ import annotations

import math
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier, frozen
from ..errors import ConfigError
from .base import (ATTACKS, Attack, AttackResult, Goal, RunContext, check_bool, check_positive, check_seed,
                   check_target, is_success, parse_norm)
from .engine.descent import clip, confirmed, goal_reached, loss_gradient
from .engine.norms import flat_norm
from .fab import FAB


def _rows(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def distance(delta: Tensor, norm: str) -> Tensor:
    """Per-sample size of ``delta`` as the evaluation measures it (the L2 norm summed in float64, then float32), so
    that the examples kept at an eps are exactly the samples whose reported distance is at most that eps."""
    flat = delta.detach().flatten(1)
    if norm == "inf":
        return flat.abs().amax(1).float()
    if norm in ("1", "0"):
        return flat_norm(flat.double(), norm).float()
    return flat.double().square().sum(1).sqrt().float()


def logit_difference(logits: Tensor, goal: Goal) -> Tensor:
    """Per sample, what a minimum-norm step drives below zero: untargeted ``z_y - max_{j != y} z_j``, targeted
    ``max_{j != t} z_j - z_t`` (negative exactly when the goal is reached)."""
    own = logits.gather(1, goal.labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(goal.labels, logits.shape[1]).bool(), -math.inf).amax(1)
    return own - others if not goal.targeted else others - own


class MinimumNormSearch:
    """What the native minimum-norm attacks share (mixed in before :class:`Attack`): :meth:`search` finds each
    sample's smallest adversarial point once, and :meth:`run` thresholds it at every eps (the point within eps, else
    the input)."""

    norm: str

    role = "minimum-norm"
    transfers_by_default: ClassVar[bool] = False  # boundary points: barely adversarial, rarely transfer

    def search(self, clf: Classifier, x: Tensor, goal: Goal) -> Tensor:
        """Per sample, the smallest adversarial point found (the input where none was)."""
        raise NotImplementedError

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        return self.run(clf, x, goal, [eps]).examples[0]

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """One search for every eps: each eps keeps the points within it (the input elsewhere)."""
        with frozen(clf):
            found = clip(self.search(clf, x, goal).detach(), clf)
        dist = distance(found - x, self.norm).double()  # compared in float64, as the curves compare it
        return AttackResult([torch.where(_rows(dist <= float(e), x), found, x) for e in eps_list], found=found)


class _Tracker:
    """The smallest adversarial point met so far per sample (decided in fp32 under a low attack precision)."""

    def __init__(self, clf: Classifier, x: Tensor, goal: Goal, norm: str) -> None:
        self.clf, self.x, self.goal, self.norm = clf, x, goal, norm
        self.best = x.clone()
        self.dist = torch.full((len(x),), math.inf, device=x.device)

    def offer(self, xk: Tensor, logits: Tensor) -> Tensor:
        """Record ``xk`` where it fools its sample with a smaller perturbation; returns which rows fool it."""
        fooled = goal_reached(self.clf, logits, lambda z: is_success(z, self.goal))
        fooled = confirmed(self.clf, xk, fooled, lambda rows: (lambda z, g=self.goal.subset(rows): is_success(z, g)))
        size = distance(xk - self.x, self.norm)
        better = fooled & (size < self.dist)
        self.dist = torch.where(better, size, self.dist)
        self.best = torch.where(_rows(better, xk), xk.detach(), self.best)
        return fooled


def _cosine(i: int, steps: int, start: float, end: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * i / steps)) / 2


@ATTACKS.register("fmn")
class FMN(MinimumNormSearch, Attack):
    """FMN (Pintor et al. 2021), untargeted or targeted, ``norm`` ``"inf"``, ``"2"``, ``"1"`` or ``"0"`` (eps then
    counts the pixels changed, per channel). ``steps`` 100 (the paper's
    experiments run 1,000; AttackBench's configurations 1,000 too: raise it for a final evaluation),
    ``alpha_init`` 1.0 (in units of the pixel range; the reference code's default for every norm),
    ``alpha_final`` ``alpha_init / 100``, ``gamma_init`` 0.05, ``gamma_final`` 0.001 (the paper's).

    ``box_aware`` (our one departure, on by default): the step ignores the coordinates the pixel box blocks (at a
    bound, pushed outward), so that its L2 length is spent inside the box. Without it (``box_aware = false``, the
    reference's step, identical to adv-lib's FMN at ``alpha_init`` 1) a sample whose gradient mostly pushes
    saturated pixels stalls before its first adversarial point: on the digits CNN of the tests, 100 L2 steps fool
    48% of 100 test images without it and 100% with it (median distance 0.549; DDN 0.535, FAB 0.540)."""

    def __init__(self, *, norm: str = "2", steps: int = 100, alpha_init: float = 1.0,
                 alpha_final: float | None = None, gamma_init: float = 0.05, gamma_final: float = 0.001,
                 box_aware: bool = True, targeted: bool = False, target_mode: str = "random", target: int = 0,
                 seed: int = 0) -> None:
        super().__init__()
        check_positive("steps", steps, integer=True)
        check_bool("box_aware", box_aware)
        check_target(targeted, target_mode, target)
        self.targeted, self.target_mode, self.target = targeted, target_mode if targeted else "", target
        self.norm, self.box_aware = parse_norm(norm, sparse=True), box_aware
        for key, value in (("alpha_init", alpha_init), ("gamma_init", gamma_init), ("gamma_final", gamma_final)):
            check_positive(key, value)
        if alpha_final is not None:
            check_positive("alpha_final", alpha_final)
        if not gamma_final <= gamma_init < 1:
            raise ConfigError(f"FMN needs gamma_final <= gamma_init < 1, got {gamma_final!r} and {gamma_init!r}")
        check_seed(seed)
        self.steps, self.seed = int(steps), seed
        self.alpha_init = float(alpha_init)
        self.alpha_final = None if alpha_final is None else float(alpha_final)
        self.gamma_init, self.gamma_final = float(gamma_init), float(gamma_final)

    def search(self, clf: Classifier, x: Tensor, goal: Goal) -> Tensor:
        lo, hi = clf.bounds
        dual = {"inf": 1, "2": 2, "1": math.inf}.get(self.norm)  # L0 has no dual: its radius moves by whole pixels
        alpha_init = self.alpha_init * (hi - lo)
        alpha_final = alpha_init / 100 if self.alpha_final is None else self.alpha_final * (hi - lo)
        worst = flat_norm(torch.maximum(x - lo, hi - x).double(), self.norm).float()  # the box's farthest point
        if self.norm == "0":
            worst = torch.full((len(x),), float(x[0].numel()), device=x.device)
        radius = torch.full((len(x),), 1.0 if self.norm == "0" else math.inf, device=x.device)
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        track = _Tracker(clf, x, goal, self.norm)
        delta = torch.zeros_like(x)
        for i in range(self.steps):
            alpha = _cosine(i, self.steps, alpha_init, alpha_final)
            gamma = _cosine(i, self.steps, self.gamma_init, self.gamma_final)
            xk = x + delta
            size = flat_norm(delta, self.norm)
            margin, logits, grad = loss_gradient(clf, xk, lambda z: logit_difference(z.float(), goal))
            fooled = track.offer(xk, logits)
            found |= fooled
            if self.norm == "0":  # whole pixels: at least one fewer (more) than before, as the reference
                radius = torch.where(fooled, torch.minimum(torch.minimum(radius - 1, (radius * (1 - gamma)).floor()),
                                                           track.dist),
                                     torch.maximum(radius + 1, (radius * (1 + gamma)).floor())).clamp_min(0)
            else:
                to_boundary = margin.abs() / grad.flatten(1).norm(p=dual, dim=1).clamp_min(1e-12)
                radius = torch.where(fooled, torch.minimum(radius * (1 - gamma), track.dist),
                                     torch.where(found, radius * (1 + gamma), size + to_boundary))
            radius = torch.minimum(radius, worst)
            # descend the margin: a unit-L2 step, then into the ball of the current radius and the box
            if self.box_aware:
                grad = torch.where(((xk <= lo) & (grad > 0)) | ((xk >= hi) & (grad < 0)), 0.0, grad)
            step = grad / _rows(grad.flatten(1).norm(p=2, dim=1).clamp_min(1e-12), grad)
            delta = delta - alpha * step
            delta = _project_each(delta, radius, self.norm)
            delta = (x + delta).clamp(lo, hi) - x
        final = x + delta
        with torch.no_grad():
            track.offer(final, clf(final).float())
        return track.best


def _project_each(delta: Tensor, radius: Tensor, norm: str) -> Tensor:
    """``delta`` projected onto the ball of a per-sample ``radius`` (L0: its ``floor(radius)`` largest entries
    kept; L1: the Euclidean projection of Duchi et al. 2008)."""
    if norm == "0":
        flat = delta.flatten(1)
        k = radius.nan_to_num(posinf=flat.shape[1]).floor().clamp(0, flat.shape[1]).long()
        rank = torch.empty_like(flat, dtype=torch.long).scatter_(
            1, flat.abs().argsort(dim=1, descending=True, stable=True),
            torch.arange(flat.shape[1], device=flat.device).expand_as(flat).contiguous())
        return torch.where(rank < k[:, None], flat, torch.zeros_like(flat)).view_as(delta)
    if norm == "1":
        flat = delta.flatten(1)
        size = flat.abs()
        r = radius.to(flat.dtype)
        inside = size.sum(1) <= r
        mu = size.sort(1, descending=True).values
        csum = mu.cumsum(1)
        k = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=flat.dtype)
        rho = ((mu * k > csum - r.nan_to_num(posinf=0.0)[:, None]) * k).amax(1).clamp_min(1)
        theta = (csum.gather(1, rho.long()[:, None] - 1).squeeze(1) - r.nan_to_num(posinf=0.0)) / rho
        proj = (size - theta[:, None]).clamp_min(0) * flat.sign()
        return torch.where(inside[:, None], flat, proj).view_as(delta)
    r = _rows(radius, delta)
    if norm == "inf":
        return torch.maximum(torch.minimum(delta, r), -r)
    n = _rows(delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12), delta)
    return delta * (r / n).clamp(max=1.0)


@ATTACKS.register("ddn")
class DDN(MinimumNormSearch, Attack):
    """DDN (Rony et al. 2019), L2, untargeted or targeted: ``steps`` 100, ``gamma`` 0.05, ``init_norm`` 1.0 (in
    pixel units of a [0, 1] range, scaled to the classifier's), ``levels`` 256 (None: no quantisation), as in the
    paper. A sample whose gradient vanishes steps in a random direction from its own draws."""

    def __init__(self, *, steps: int = 100, gamma: float = 0.05, init_norm: float = 1.0, levels: int | None = 256,
                 targeted: bool = False, target_mode: str = "random", target: int = 0, seed: int = 0) -> None:
        super().__init__()
        check_target(targeted, target_mode, target)
        self.targeted, self.target_mode, self.target = targeted, target_mode if targeted else "", target
        check_positive("steps", steps, integer=True)
        check_positive("init_norm", init_norm)
        check_positive("gamma", gamma)
        if gamma >= 1:
            raise ConfigError(f"gamma must be below 1, got {gamma!r}")
        if levels is not None:
            check_positive("levels", levels, integer=True)
            if levels < 2:
                raise ConfigError(f"levels must be at least 2 (or none), got {levels!r}")
        check_seed(seed)
        self.norm = "2"
        self.steps, self.gamma, self.init_norm, self.levels, self.seed = \
            int(steps), float(gamma), float(init_norm), levels, seed

    def search(self, clf: Classifier, x: Tensor, goal: Goal) -> Tensor:
        lo, hi = clf.bounds
        span = hi - lo
        sign = -1.0 if goal.targeted else 1.0  # ascend the cross-entropy of the true label, descend the target's
        worst = flat_norm(torch.maximum(x - lo, hi - x), "2")
        radius = torch.full((len(x),), self.init_norm * span, device=x.device)
        track = _Tracker(clf, x, goal, "2")
        draws = goal.draws(self.seed, len(x))
        delta = torch.zeros_like(x)
        for i in range(self.steps):
            xk = x + delta
            _, logits, grad = loss_gradient(
                clf, xk, lambda z: sign * F.cross_entropy(z.float(), goal.labels, reduction="none"))
            fooled = track.offer(xk, logits)
            norms = grad.flatten(1).norm(p=2, dim=1)
            vanished = norms < 1e-12
            noise = draws.randn(x.shape[1:], device=x.device, dtype=x.dtype)  # drawn every step: each sample's
            if bool(vanished.any()):  # sequence of draws is its own, whatever its neighbours' gradients do
                grad = torch.where(_rows(vanished, grad), noise, grad)
                norms = grad.flatten(1).norm(p=2, dim=1)
            alpha = _cosine(i, self.steps, 1.0, 0.01) * span
            delta = delta + alpha * grad / _rows(norms.clamp_min(1e-12), grad)
            radius = torch.minimum(torch.where(fooled, (1 - self.gamma) * radius, (1 + self.gamma) * radius), worst)
            delta = delta * _rows(radius / delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12), delta)
            xk = (x + delta).clamp(lo, hi)
            if self.levels is not None:
                xk = lo + torch.round((xk - lo) / span * (self.levels - 1)) / (self.levels - 1) * span
            delta = xk - x
        final = x + delta
        with torch.no_grad():
            track.offer(final, clf(final).float())
        return track.best


@ATTACKS.register("fab-min")
class FABMinimumNorm(MinimumNormSearch, Attack):
    """FAB (Croce & Hein 2020) as a minimum-norm attack: no budget, every step on every sample, each sample's
    smallest adversarial point over ``restarts`` runs (the first from the input, the others from random points
    at half the box's diameter); ``steps`` 100, ``alpha_max`` 0.1, ``eta`` 1.05, ``beta`` 0.9 as in the paper.
    Untargeted only (one backward pass per class and step)."""

    def __init__(self, *, norm: str = "2", steps: int = 100, restarts: int = 1, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, seed: int = 0) -> None:
        super().__init__()
        self._fab = FAB(norm=norm, steps=steps, restarts=restarts, alpha_max=alpha_max, eta=eta, beta=beta,
                        seed=seed)
        self.norm, self.steps, self.restarts = self._fab.norm, self._fab.steps, self._fab.restarts
        self.alpha_max, self.eta, self.beta, self.seed = alpha_max, eta, beta, seed

    def search(self, clf: Classifier, x: Tensor, goal: Goal) -> Tensor:
        if goal.targeted:
            raise ConfigError("fab-min is untargeted; use fmn or ddn with targeted = true for a targeted minimum norm")
        with torch.no_grad():
            best = x.clone()
            dist = torch.full((len(x),), math.inf, device=x.device, dtype=x.dtype)
            for restart in range(self.restarts):
                adv, d = self._fab._run(clf, x, goal, None, math.inf, (0, restart))
                better = d < dist
                best[better], dist[better] = adv[better], d[better]
        return best
