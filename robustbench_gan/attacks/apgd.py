"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML): APGD with cross-entropy or DLR loss, and APGD-T (targeted DLR over the top
classes). Linf and L2; per-sample step sizes, momentum and checkpoints; the norm-specific pieces are the hooks in
:mod:`~robustbench_gan.attacks.engine.norms`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier, frozen
from ..purified import check_adaptive, split_rejection
from ..errors import ConfigError
from .engine.draws import SampleDraws
from .base import ATTACKS, Attack, Goal, attack_loss, check_positive, check_seed, is_success, parse_norm
from .engine.descent import clip, confirmed, fp32_logits, goal_reached, loss_gradient
from .engine.norms import ascent_direction, project

LossFn = Callable[[Tensor], Tensor]
RunLoss = Callable[[Tensor, Tensor], LossFn]  # (rows, runs) -> the loss of those samples in those runs


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


def random_start(like: Tensor, norm: str, draws: SampleDraws) -> Tensor:
    """APGD's random start direction per sample of ``like`` (from each sample's own ``draws``): uniform in the Linf
    cube scaled to touch its surface, or Gaussian scaled to unit L2 norm."""
    shape, opts = like.shape[1:], {"device": like.device, "dtype": like.dtype}
    if norm == "inf":
        t = 2 * draws.rand(shape, **opts) - 1
        return t / _per_sample(t.flatten(1).abs().amax(1).clamp_min(1e-12), t)
    t = draws.randn(shape, **opts)
    return t / _per_sample(t.flatten(1).norm(dim=1).clamp_min(1e-12), t)


def apgd_run(
    clf: Classifier, x: Tensor, goal: Goal, loss_for: Callable[[Tensor], LossFn], *, eps: float, norm: str,
    steps: int, rho: float, draws: SampleDraws | None = None, start: Tensor | None = None, eot_samples: int = 1,
    stop_at_success: bool = True, active_set: bool = True, groups: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One APGD run (Croce & Hein 2020, Algorithm 1) from a random start; returns each sample's first successful
    iterate (or, where none succeeded, its highest-loss point), the success mask and the step of each first success
    (``steps + 1`` where none). ``loss_for(idx)`` is the per-sample loss of the samples ``x[idx]``. The start is
    ``x + eps * start`` (a :func:`random_start` direction per sample), drawn from ``draws`` when not given (default:
    the goal's draws with seed 0).

    Step size ``2 eps`` per sample; momentum 0.75; checkpoints after ``0.22 N`` steps, then every ``max(last -
    0.03 N, 0.06 N)``. At a checkpoint a sample's step is halved, and it restarts from its best point, when its loss
    rose in at most ``rho`` of the steps since the last checkpoint, or when the step was not halved last time and
    the best loss has not improved since. ``stop_at_success=False`` runs every step and returns each sample's
    highest-loss point (full-strength examples for transfer).

    ``active_set``: a sample leaves the batch as soon as it succeeds (its first successful iterate is kept), so
    fooled samples cost no more passes. Every sample's trajectory depends only on itself and its start, so the
    result is the same either way (tested). ``groups``: rows that are copies of one sample (an id per row, e.g.
    APGD-T's targets side by side); with the active set, all rows of a group leave once one of them succeeds.
    """
    n = len(x)
    if start is None:
        start = random_start(x, norm, draws if draws is not None else goal.draws(0, len(x)))
    x_k = clip(x + eps * start.to(x.device), clf)
    out, succeeded = x_k.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    when = torch.full((n,), steps + 1, dtype=torch.long, device=x.device)
    idx = torch.arange(n, device=x.device)  # positions in x of the samples still iterating
    group = groups.to(x.device) if groups is not None else None
    x0, g, loss = x, goal, loss_for(idx)
    step = torch.full((n,), 2.0 * eps, dtype=x.dtype, device=x.device)
    loss_k, logits, grad = loss_gradient(clf, x_k, loss, eot_samples)

    def success(rows: Tensor, g: Goal = g) -> Callable[[Tensor], Tensor]:
        return lambda z, gs=g.subset(rows): is_success(z, gs)

    # a success in the attack's own (possibly low-precision) pass stops a sample only once fp32 agrees
    found = confirmed(clf, x_k, goal_reached(clf, logits, lambda z: is_success(z, g)), success)
    best_loss, x_best, grad_best = loss_k.clone(), x_k.clone(), grad.clone()
    x_prev = x_k.clone()
    interval = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    since, rises = 0, torch.zeros(n, device=x.device)
    reduced_last = torch.ones(n, dtype=torch.bool, device=x.device)
    best_at_check = best_loss.clone()

    def record(new: Tensor, at: int) -> None:
        out[idx[new]] = x_k[new]
        succeeded[idx[new]] = True
        when[idx[new]] = at

    if stop_at_success:
        record(found, 0)
    for i in range(steps):
        if stop_at_success and active_set and bool(found.any()):  # the fooled samples leave the batch
            keep = ~found if group is None else ~torch.isin(group, group[found])
            if group is not None:
                group = group[keep]
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
        new = confirmed(clf, x_k, new, lambda rows, g=g: (lambda z, gs=g.subset(rows): is_success(z, gs)))
        if stop_at_success:
            record(new, i + 1)
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
        return x_best.detach(), found, when
    rest = ~found
    out[idx[rest]] = x_best[rest]
    return out.detach(), succeeded, when


@ATTACKS.register("apgd")
class APGD(Attack):
    """APGD-CE / APGD-DLR (Croce & Hein 2020): ``loss = "ce"`` or ``"dlr"``, ``steps`` 100 and ``rho`` 0.75 as in the
    paper, ``restarts`` from new random starts on the samples still standing, ``eot_samples`` gradients averaged per
    step for randomized models, ``adaptive`` what is differentiated of a purifying defense (see
    :mod:`robustbench_gan.purified`). Untargeted; each sample keeps its first successful iterate."""

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

    def class_count_problem(self, num_classes: int) -> str | None:
        if self.loss == "dlr" and num_classes < 3:
            return (f"the DLR loss needs at least 3 classes, the data has {num_classes}; use loss = \"ce\" "
                    "(APGD-CE)")
        return None

    def loss_fn(self, goal: Goal) -> LossFn:
        if self.loss == "dlr":
            return lambda logits: dlr_loss(logits, goal.labels)
        return lambda logits: attack_loss(logits, goal, "ce")

    def plan(self, clf: Classifier, x: Tensor, goal: Goal) -> tuple[RunLoss, list[list[int]]]:
        """The runs of this attack: ``loss(rows, runs)``, the per-sample loss of the samples ``x[rows]`` in the runs
        numbered ``runs`` (one per row), and the waves (run numbers side by side) in order. Here one run per
        restart, one at a time."""
        return (lambda rows, runs: self.loss_fn(Goal(goal.labels[rows], goal.targeted))), \
            [[r] for r in range(self.restarts)]

    def transfer_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        """Full-strength examples for other models: every step of the first run, each sample's highest-loss point
        (barely-adversarial first successes rarely transfer)."""
        out = []
        for e in eps_list:
            if e == 0:
                out.append(x.clone())
                continue
            loss, _ = self.plan(clf, x, goal)
            first = torch.zeros(len(x), dtype=torch.long, device=x.device)
            with frozen(clf):
                adv, _, _ = apgd_run(clf, x, goal, lambda idx: loss(idx, first[idx]), eps=float(e), norm=self.norm,
                                     steps=self.steps, rho=self.rho, draws=goal.draws(self.seed, len(x)),
                                     eot_samples=self.eot_samples, stop_at_success=False)
            out.append(adv)
        return out

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        """Every wave of runs on the samples still standing. A sample keeps its first success (within a wave: the
        earliest step, then the lowest run), else the highest-loss point of the last run that had it (a valid point
        of the ball). Each run's start is drawn for the whole batch, in run order, so it never depends on which
        samples are left or on how runs are grouped into waves; and each sample's draws are its own (keyed by its id),
        so they never depend on the batch or shard either."""
        if eps == 0:
            return x.clone()
        draws = goal.draws(self.seed, len(x))
        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with frozen(clf):
            loss, waves = self.plan(clf, x, goal)
            for wave in waves:
                active = (~done).nonzero().squeeze(1)
                k, m = len(active), len(wave)
                if k == 0:
                    break
                rows = active.repeat(m)  # copy j of the standing samples runs wave[j]
                runs = torch.tensor(wave, device=x.device).repeat_interleave(k)
                start = torch.cat([random_start(x, self.norm, draws)[active] for _ in wave])
                adv, found, when = apgd_run(
                    clf, x[rows], Goal(goal.labels[rows], goal.targeted), lambda idx: loss(rows[idx], runs[idx]),
                    eps=eps, norm=self.norm, steps=self.steps, rho=self.rho, start=start,
                    eot_samples=self.eot_samples, active_set=self.active_set, groups=rows if m > 1 else None)
                order = torch.where(found, when * m + torch.arange(m, device=x.device).repeat_interleave(k),
                                    torch.iinfo(torch.long).max).view(m, k)
                hit = found.view(m, k).any(0)
                choice = torch.where(hit, order.argmin(0), m - 1)  # its earliest success, else the last run's point
                best[active] = adv.view(m, k, *x.shape[1:])[choice, torch.arange(k, device=x.device)]
                done[active[hit]] = True
        return best


@ATTACKS.register("apgd-t")
class APGDT(APGD):
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss toward each of the ``targets`` most likely other
    classes (9 in the paper, all classes but the true one on 10-class data), each run on the samples no earlier
    target has fooled. Success is misclassification, as for every untargeted attack.

    As in FAB-T here, the likeliest target runs first on its own (most samples that fall, fall to it), then the
    other targets side by side, ``batch_targets`` at a time (None: all at once; 1: AutoAttack's order, one target
    after another). A sample leaves every run once one of them fools it. Which samples fall does not depend on the
    grouping (each run's trajectory depends only on its sample and its start); only which success a sample keeps
    may. The batch then holds up to ``batch_targets`` times the samples; lower it for large models.
    """

    def class_count_problem(self, num_classes: int) -> str | None:
        if num_classes < 4:
            return (f"APGD-T's targeted DLR loss needs at least 4 classes, the data has {num_classes}; use "
                    "apgd (APGD-CE) or pgd with loss = \"margin\" instead")
        return None

    def __init__(self, *, norm: str = "inf", steps: int = 100, targets: int = 9, restarts: int = 1,
                 rho: float = 0.75, eot_samples: int = 1, seed: int = 0, adaptive: str = "none",
                 batch_targets: int | None = None) -> None:
        super().__init__(norm=norm, steps=steps, restarts=restarts, loss="dlr", rho=rho, eot_samples=eot_samples,
                         seed=seed, adaptive=adaptive)
        check_positive("targets", targets, integer=True)
        if batch_targets is not None:
            check_positive("batch_targets", batch_targets, integer=True)
        self.targets = int(targets)
        self.batch_targets = None if batch_targets is None else int(batch_targets)

    def plan(self, clf: Classifier, x: Tensor, goal: Goal) -> tuple[RunLoss, list[list[int]]]:
        """Run ``rank * restarts + r`` is restart ``r`` of the targeted DLR loss toward the rank-th most likely
        class other than the true one (by the clean logits), rank 0..targets-1. Waves: the first rank's restarts
        one at a time, then the other ranks ``batch_targets`` at a time (a rank's restarts side by side)."""
        order = split_rejection(clf, fp32_logits(clf, x))[0].argsort(dim=1, descending=True)  # ranked in fp32
        others = order[order != goal.labels[:, None]].view(len(x), -1)  # classes by clean logit, true one removed
        restarts, count = self.restarts, min(self.targets, clf.num_classes - 1)

        def loss(rows: Tensor, runs: Tensor) -> LossFn:
            labels, targets = goal.labels[rows], others[rows, runs // restarts]
            return lambda z: targeted_dlr_loss(z, labels, targets)

        width = (self.batch_targets or count) * restarts
        later = list(range(restarts, count * restarts))
        return loss, [[r] for r in range(restarts)] + [later[i:i + width] for i in range(0, len(later), width)]
