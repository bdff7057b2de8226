"""The one iterative-gradient engine: start, step, project, keep the best point per sample.

PGD and BIM run through :func:`descend_to_goal` (each sample stops at its first success and leaves the batch);
the final-iterate examples used for transfer and every adversarial-training method through :func:`descend`. The
norm-specific parts are the hooks of :mod:`~robustbench_gan.attacks.engine.norms`; the loss is any per-sample function of
the logits to *ascend*.

A detector-aware gradient view (:mod:`robustbench_gan.purified`) returns one logit column more than its classes:
how far the input is over the detector's threshold. The loss and the success test see the class logits; the
loss loses :data:`REJECTION_WEIGHT` times that amount and a success needs it to be <= 0 (:func:`goal_reached`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...classifier import Classifier, frozen
from ...purified import split_rejection
from . import precision
from .norms import ascent_direction, project
from .precision import FP16_LOSS_SCALE

LossFn = Callable[[Tensor], Tensor]
"""Per-sample loss of the logits that the attacker ascends."""
SuccessFn = Callable[[Tensor], Tensor]
"""Per-sample success test on the logits."""
REJECTION_WEIGHT = 10.0
"""Weight of a detector-aware view's rejection term (amount over the threshold, relative to the threshold) in
the loss: large enough that the step goes back under the threshold before it goes on fooling the classifier."""


def goal_reached(clf: Classifier, logits: Tensor, success: SuccessFn) -> Tensor:
    """``success`` of the class logits, and (from a detector-aware view) not over the detector's threshold."""
    z, over = split_rejection(clf, logits)
    return success(z) if over is None else success(z) & (over <= 0)


def clip(x: Tensor, clf: Classifier) -> Tensor:
    """Clamp ``x`` to the classifier's pixel bounds."""
    lo, hi = clf.bounds
    return x.clamp(lo, hi)


def gradient_of(total: Tensor, x: Tensor, *, retain_graph: bool = False) -> Tensor:
    """``d total / d x``. A model whose output does not depend on ``x`` through autograd (a detached input
    purification) has a zero gradient: the naive attack then fails honestly instead of crashing (the checks flag
    such defenses)."""
    if not total.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(total, x, retain_graph=retain_graph, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def loss_gradient(clf: Classifier, x: Tensor, loss: LossFn, eot_samples: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample ``loss``, logits and the input gradient of the summed loss at ``x`` (one forward + backward).

    ``eot_samples > 1`` averages all three over that many passes: Expectation over Transformation (Athalye,
    Carlini & Wagner 2018), for models whose outputs are random."""
    if eot_samples > 1:
        values, logits, grads = zip(*(loss_gradient(clf, x, loss) for _ in range(eot_samples)))
        return torch.stack(values).mean(0), torch.stack(logits).mean(0), torch.stack(grads).mean(0)
    x = x.detach().requires_grad_(True)
    scale = FP16_LOSS_SCALE if precision.current() == "fp16" else 1.0
    with torch.enable_grad():
        logits = clf(x)
        z, over = split_rejection(clf, logits)
        values = loss(z).float() if over is None else loss(z).float() - REJECTION_WEIGHT * over.float().clamp_min(0)
        total = values.sum() if scale == 1.0 else values.sum() * scale
        grad = gradient_of(total, x)
    if scale != 1.0:
        if not bool(torch.isfinite(grad).all()):  # the scaled fp16 gradient overflowed: this step in fp32
            with precision.full_precision(x.device):
                return loss_gradient(clf, x, loss)
        grad = grad / scale
    return values.detach(), logits.detach().float(), grad


def gradient(clf: Classifier, x: Tensor, loss: LossFn, eot_samples: int = 1) -> tuple[Tensor, Tensor]:
    """The input gradient of the summed per-sample ``loss`` and the logits at ``x`` (see :func:`loss_gradient`)."""
    _, logits, grad = loss_gradient(clf, x, loss, eot_samples)
    return grad, logits


def descend(
    clf: Classifier,
    x: Tensor,
    *,
    eps: float,
    norm: str,
    steps: int,
    step_size: float,
    loss: LossFn,
    start: Tensor | None = None,
    eot_samples: int = 1,
) -> Tensor:
    """``steps`` projected steepest-ascent steps of ``loss`` in the eps-ball of ``norm`` around ``x``; the final
    iterate of every sample (what adversarial training and transfer use).

    ``start`` is the first iterate (default ``x``; it is clipped to the bounds). ``eot_samples`` averages each
    step's gradient over that many passes (see :func:`gradient`).
    """
    with frozen(clf):
        xk = clip(x if start is None else start, clf).detach()
        for _ in range(steps):
            grad, _ = gradient(clf, xk, loss, eot_samples)
            xk = projected_step(clf, x, xk, grad, eps=eps, norm=norm, step_size=step_size)
    return xk.detach()


def projected_step(clf: Classifier, x: Tensor, xk: Tensor, grad: Tensor, *, eps: float, norm: str,
                   step_size: float) -> Tensor:
    """One steepest-ascent step from ``xk`` along ``grad``, projected onto the eps-ball around ``x`` and the bounds."""
    return clip(x + project(xk + step_size * ascent_direction(grad, norm) - x, eps, norm), clf)


def descend_to_goal(
    clf: Classifier,
    x: Tensor,
    *,
    eps: float,
    norm: str,
    steps: int,
    step_size: float,
    loss: Callable[[Tensor], LossFn],
    success: Callable[[Tensor], SuccessFn],
    start: Tensor | None = None,
    eot_samples: int = 1,
    active_set: bool = True,
) -> tuple[Tensor, Tensor]:
    """:func:`descend` until each sample succeeds: a sample keeps its *first* successful iterate (a later step
    cannot undo a success); samples that never succeed get the final iterate. Returns the points and the
    per-sample success mask.

    ``loss(index)`` and ``success(index)`` give the loss and the success test of the samples ``index`` (a long
    tensor into ``x``). Under a low :mod:`~robustbench_gan.attacks.engine.precision`, a success counts (and the sample
    stops) only once an fp32 pass confirms it; the final check is in fp32. With ``active_set`` a sample leaves the
    batch as soon as it succeeds, so it costs no further passes; without it every sample runs until all have
    succeeded. The points are the same either way.
    """
    n = len(x)
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    every = torch.arange(n, device=x.device)
    with frozen(clf):
        xk = clip(x if start is None else start, clf).detach()
        best = xk.clone()
        idx, xa = every, x  # the samples still iterating, and their clean inputs
        step_loss, step_success = loss(idx), success(idx)
        for _ in range(steps):
            grad, logits = gradient(clf, xk, step_loss, eot_samples)
            new = goal_reached(clf, logits, step_success) & ~found[idx]
            if new.any() and precision.current() != "fp32":  # a low-precision success counts once fp32 agrees
                new[new.clone()] = _confirmed(clf, xk[new], success(idx[new]))
            if new.any():
                best[idx[new]] = xk[new]
                found[idx[new]] = True
                if bool(found.all()):
                    return best.detach(), found
                if active_set:
                    stay = ~new
                    idx, xa, xk, grad = idx[stay], xa[stay], xk[stay], grad[stay]
                    step_loss, step_success = loss(idx), success(idx)
            xk = projected_step(clf, xa, xk, grad, eps=eps, norm=norm, step_size=step_size)
        with torch.no_grad(), precision.full_precision(x.device):  # the final decision, in fp32
            new = goal_reached(clf, clf(xk), step_success) & ~found[idx]
        last = ~found[idx] | new  # never fooled before: the final iterate, whether it succeeds or not
        best[idx[last]] = xk[last]
        found[idx[new]] = True
    return best.detach(), found


def _confirmed(clf: Classifier, x: Tensor, success: SuccessFn) -> Tensor:
    """``success`` of ``x`` decided in fp32 (a re-check of successes found in low precision)."""
    with torch.no_grad(), precision.full_precision(x.device):
        return goal_reached(clf, clf(x), success)


def confirmed(clf: Classifier, x: Tensor, candidates: Tensor, success: Callable[[Tensor], SuccessFn]) -> Tensor:
    """``candidates`` (a mask over ``x``'s rows that look successful in the attack's own passes) kept only where an
    fp32 pass agrees, under a low :mod:`~robustbench_gan.attacks.engine.precision` (in fp32 they are returned as they
    are). ``success(rows)`` is the success test of those rows. Every attack stops a sample on this, never on a
    low-precision success alone."""
    if precision.current() == "fp32" or not bool(candidates.any()):
        return candidates
    rows = candidates.nonzero().squeeze(1)
    out = candidates.clone()
    out[rows] = _confirmed(clf, x[rows], success(rows))
    return out


def fp32_logits(clf: Classifier, x: Tensor) -> Tensor:
    """``clf``'s logits for ``x`` in fp32, without gradients, whatever the attack precision (for the decisions
    that count: which samples are already fooled, target rankings)."""
    with torch.no_grad(), precision.full_precision(x.device):
        return clf(x)
