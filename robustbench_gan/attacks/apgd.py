"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML): APGD with cross-entropy or DLR loss, and APGD-T (targeted DLR over the top
classes). Linf and L2; per-sample step sizes, momentum and checkpoints; the norm-specific pieces are the hooks in
:mod:`~robustbench_gan.attacks.norms`.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier, frozen
from ..purified import check_adaptive, split_rejection
from ..errors import ConfigError
from .base import ATTACKS, Attack, Goal, attack_loss, check_positive, check_seed, is_success, parse_norm
from .loop import clip, goal_reached, loss_gradient
from .norms import ascent_direction, project

LossFn = Callable[[Tensor], Tensor]


def dlr_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020, eq. 5), to ascend: ``-(z_y - max_{i != y} z_i) / (z_pi1 -
    z_pi3)``. Invariant to shifting and scaling the logits, so a saturated softmax does not hide the gradient."""
    if logits.shape[1] < 3:
        raise ConfigError("the DLR loss needs at least 3 classes; use loss = 'ce'")
    top, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return -(z_y - other) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """Targeted DLR (Croce & Hein 2020, eq. 6), to ascend: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``."""
    if logits.shape[1] < 4:
        raise ConfigError("the targeted DLR loss needs at least 4 classes")
    top, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    z_t = logits.gather(1, targets[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def _per_sample(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def apgd_run(
    clf: Classifier, x: Tensor, goal: Goal, loss_for: Callable[[Tensor], LossFn], *, eps: float, norm: str,
    steps: int, rho: float, gen: torch.Generator, eot_samples: int = 1, stop_at_success: bool = True,
    active_set: bool = True, rows: Tensor | None = None, batch: int = 0,
) -> tuple[Tensor, Tensor]:
    """One APGD run (Croce & Hein 2020, Algorithm 1) from a random start; returns each sample's first successful
    iterate (or, where none succeeded, its highest-loss point) and the success mask. ``loss_for(idx)`` is the
    per-sample loss of the samples ``x[idx]``.

    Step size ``2 eps`` per sample; momentum 0.75; checkpoints after ``0.22 N`` steps, then every ``max(last -
    0.03 N, 0.06 N)``. At a checkpoint a sample's step is halved, and it restarts from its best point, when its loss
    rose in at most ``rho`` of the steps since the last checkpoint, or when the step was not halved last time and
    the best loss has not improved since. ``stop_at_success=False`` runs every step and returns each sample's
    highest-loss point (full-strength examples for transfer).

    ``active_set``: a sample leaves the batch as soon as it succeeds (its first successful iterate is kept), so
    fooled samples cost no more passes. Every sample's trajectory depends only on itself and the random start is
    drawn for the whole batch first, so the result is the same either way (tested). ``rows``: the positions of
    ``x``'s samples in a larger batch of ``batch`` samples (a later run on the samples still standing); the random
    start is drawn for that whole batch and these rows taken, so it never depends on which samples are left.
    """
    n = len(x)
    shape = x.shape if rows is None else (batch, *x.shape[1:])
    if norm == "inf":
        t = 2 * torch.rand(shape, generator=gen, dtype=x.dtype) - 1
        t = t / _per_sample(t.flatten(1).abs().amax(1).clamp_min(1e-12), t)
    else:
        t = torch.randn(shape, generator=gen, dtype=x.dtype)
        t = t / _per_sample(t.flatten(1).norm(dim=1).clamp_min(1e-12), t)
    if rows is not None:
        t = t[rows.cpu()]
    x_k = clip(x + eps * t.to(x.device), clf)
    out, succeeded = x_k.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    idx = torch.arange(n, device=x.device)  # positions in x of the samples still iterating
    x0, g, loss = x, goal, loss_for(idx)
    step = torch.full((n,), 2.0 * eps, dtype=x.dtype, device=x.device)
    loss_k, logits, grad = loss_gradient(clf, x_k, loss, eot_samples)
    found = goal_reached(clf, logits, lambda z: is_success(z, g))
    best_loss, x_best, grad_best = loss_k.clone(), x_k.clone(), grad.clone()
    x_prev = x_k.clone()
    interval = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    since, rises = 0, torch.zeros(n, device=x.device)
    reduced_last = torch.ones(n, dtype=torch.bool, device=x.device)
    best_at_check = best_loss.clone()

    def record(new: Tensor) -> None:
        out[idx[new]] = x_k[new]
        succeeded[idx[new]] = True

    if stop_at_success:
        record(found)
    for i in range(steps):
        if stop_at_success and active_set and bool(found.any()):  # the fooled samples leave the batch
            keep = ~found
            idx, x0, x_k, x_prev, step, loss_k, grad = (v[keep] for v in (idx, x0, x_k, x_prev, step, loss_k, grad))
            best_loss, x_best, grad_best, rises = (v[keep] for v in (best_loss, x_best, grad_best, rises))
            reduced_last, best_at_check, found = reduced_last[keep], best_at_check[keep], found[keep]
            g, loss = Goal(goal.labels[idx], goal.targeted), loss_for(idx)
        if len(idx) == 0 or (stop_at_success and bool(found.all())):
            break
        a = 0.75 if i > 0 else 1.0
        s = _per_sample(step, x0)
        z = clip(x0 + project(x_k + s * ascent_direction(grad, norm) - x0, eps, norm), clf)
        moved = x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev)
        x_prev, x_k = x_k, clip(x0 + project(moved - x0, eps, norm), clf)
        previous = loss_k
        loss_k, logits, grad = loss_gradient(clf, x_k, loss, eot_samples)
        new = goal_reached(clf, logits, lambda z, g=g: is_success(z, g)) & ~found
        if stop_at_success:
            record(new)
        found |= new
        rises += (loss_k > previous).to(rises.dtype)
        better = loss_k > best_loss
        x_best[better], grad_best[better], best_loss[better] = x_k[better], grad[better], loss_k[better]
        since += 1
        if since == interval:
            oscillating = rises <= interval * rho
            stalled = ~reduced_last & (best_at_check >= best_loss)
            reduce = oscillating | stalled
            step[reduce] /= 2.0
            x_k[reduce], grad[reduce] = x_best[reduce], grad_best[reduce]
            reduced_last, best_at_check = reduce, best_loss.clone()
            since, rises = 0, torch.zeros_like(rises)
            interval = max(interval - shrink, shortest)
    if not stop_at_success:
        return x_best.detach(), found
    rest = ~found
    out[idx[rest]] = x_best[rest]
    return out.detach(), succeeded


@ATTACKS.register("apgd")
class APGD(Attack):
    """APGD-CE / APGD-DLR (Croce & Hein 2020): ``loss = "ce"`` or ``"dlr"``, ``steps`` 100 and ``rho`` 0.75 as in the
    paper, ``restarts`` from new random starts on the samples still standing, ``eot_samples`` gradients averaged per
    step for randomized models, ``adaptive`` what is differentiated of a purifying defense (see
    :mod:`robustbench_gan.purified`). Untargeted; each sample keeps its first successful iterate."""

    name = "apgd"
    role = "iterative"

    def __init__(self, *, norm: str = "inf", steps: int = 100, restarts: int = 1, loss: str = "ce", rho: float = 0.75,
                 eot_samples: int = 1, seed: int = 0, adaptive: str = "none") -> None:
        super().__init__()
        self.adaptive = check_adaptive(adaptive)
        for key, value in (("steps", steps), ("restarts", restarts), ("eot_samples", eot_samples)):
            check_positive(key, value, integer=True)
        if loss not in ("ce", "dlr"):
            raise ConfigError(f"loss must be 'ce' or 'dlr', got {loss!r}")
        if not isinstance(rho, (int, float)) or isinstance(rho, bool) or not 0 < rho < 1:
            raise ConfigError(f"rho must be in (0, 1), got {rho!r}")
        check_seed(seed)
        self.norm, self.steps, self.restarts, self.loss = parse_norm(norm), int(steps), int(restarts), loss
        self.rho, self.eot_samples, self.seed = float(rho), int(eot_samples), seed
        self.active_set = True  # fooled samples leave the batch (same results; tests turn it off to compare)

    def loss_fn(self, goal: Goal) -> LossFn:
        if self.loss == "dlr":
            return lambda logits: dlr_loss(logits, goal.labels)
        return lambda logits: attack_loss(logits, goal, "ce")

    def runs(self, clf: Classifier, x: Tensor, goal: Goal) -> Iterable[Callable[[Tensor, Goal], LossFn]]:
        """The loss of each APGD run, given the indices of the samples still standing: one per restart here."""
        return [lambda active, ga: self.loss_fn(ga)] * self.restarts

    def transfer_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        """Full-strength examples for other models: every step of the first run, each sample's highest-loss point
        (barely-adversarial first successes rarely transfer)."""
        out = []
        for e in eps_list:
            if e == 0:
                out.append(x.clone())
                continue
            make_loss = next(iter(self.runs(clf, x, goal)))
            with frozen(clf):
                adv, _ = apgd_run(clf, x, goal, lambda idx: make_loss(idx, Goal(goal.labels[idx])), eps=float(e),
                                  norm=self.norm, steps=self.steps, rho=self.rho,
                                  gen=torch.Generator().manual_seed(self.seed), eot_samples=self.eot_samples,
                                  stop_at_success=False)
            out.append(adv)
        return out

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        """Every run on the samples still standing; a sample keeps its first success, else the highest-loss point
        of the last run that had it (a valid point of the ball)."""
        if eps == 0:
            return x.clone()
        gen = torch.Generator().manual_seed(self.seed)
        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with frozen(clf):
            for make_loss in self.runs(clf, x, goal):
                active = (~done).nonzero().squeeze(1)
                if len(active) == 0:
                    break
                ga = Goal(goal.labels[active], goal.targeted)

                def loss_for(idx: Tensor, active: Tensor = active, make_loss=make_loss) -> LossFn:
                    return make_loss(active[idx], Goal(goal.labels[active[idx]], goal.targeted))

                adv, found = apgd_run(clf, x[active], ga, loss_for, eps=eps, norm=self.norm, steps=self.steps,
                                      rho=self.rho, gen=gen, eot_samples=self.eot_samples,
                                      active_set=self.active_set, rows=active, batch=len(x))
                best[active] = adv
                done[active[found]] = True
        return best


@ATTACKS.register("apgd-t")
class APGDT(APGD):
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss toward each of the ``targets`` most likely other
    classes in turn (9 in the paper, all classes but the true one on 10-class data), each run on the samples no
    earlier target has fooled. Success is misclassification, as for every untargeted attack."""

    name = "apgd-t"

    def __init__(self, *, norm: str = "inf", steps: int = 100, targets: int = 9, restarts: int = 1,
                 rho: float = 0.75, eot_samples: int = 1, seed: int = 0, adaptive: str = "none") -> None:
        super().__init__(norm=norm, steps=steps, restarts=restarts, loss="dlr", rho=rho, eot_samples=eot_samples,
                         seed=seed, adaptive=adaptive)
        check_positive("targets", targets, integer=True)
        self.targets = int(targets)

    def runs(self, clf: Classifier, x: Tensor, goal: Goal) -> Iterable[Callable[[Tensor, Goal], LossFn]]:
        """Targeted DLR toward the rank-th most likely class other than the true one, rank 1..targets."""
        order = split_rejection(clf, clf.predict(x))[0].argsort(dim=1, descending=True)
        others = order[order != goal.labels[:, None]].view(len(x), -1)  # classes by clean logit, true one removed

        def toward(rank: int) -> Callable[[Tensor, Goal], LossFn]:
            return lambda active, ga: (lambda z: targeted_dlr_loss(z, ga.labels, others[active, rank]))

        ranks = range(min(self.targets, clf.num_classes - 1))
        return [toward(rank) for rank in ranks for _ in range(self.restarts)]
