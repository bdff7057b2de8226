"""The one iterative-gradient engine: start, step, project, keep the best point per sample.

PGD, BIM, the final-iterate examples used for transfer, and every adversarial-training method run through
:func:`descend`; the norm-specific parts are the hooks of :mod:`~robustbench_gan.attacks.norms` and the loss is
any per-sample function of the logits to *ascend*.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..classifier import Classifier, frozen
from .norms import ascent_direction, project

LossFn = Callable[[Tensor], Tensor]
"""Per-sample loss of the logits that the attacker ascends."""
SuccessFn = Callable[[Tensor], Tensor]
"""Per-sample success test on the logits."""


def clip(x: Tensor, clf: Classifier) -> Tensor:
    """Clamp ``x`` to the classifier's pixel bounds."""
    lo, hi = clf.bounds
    return x.clamp(lo, hi)


def loss_gradient(clf: Classifier, x: Tensor, loss: LossFn, eot_samples: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample ``loss``, logits and the input gradient of the summed loss at ``x`` (one forward + backward).

    ``eot_samples > 1`` averages all three over that many passes: Expectation over Transformation (Athalye,
    Carlini & Wagner 2018), for models whose outputs are random."""
    if eot_samples > 1:
        values, logits, grads = zip(*(loss_gradient(clf, x, loss) for _ in range(eot_samples)))
        return torch.stack(values).mean(0), torch.stack(logits).mean(0), torch.stack(grads).mean(0)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = clf(x)
        values = loss(logits)
        (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), logits.detach(), grad


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
    success: SuccessFn | None = None,
    eot_samples: int = 1,
) -> tuple[Tensor, Tensor]:
    """``steps`` projected steepest-ascent steps of ``loss`` in the eps-ball of ``norm`` around ``x``.

    ``start`` is the first iterate (default ``x``; it is clipped to the bounds). Without ``success`` every sample
    runs all steps and the final iterate is returned (what adversarial training and transfer use). With
    ``success`` each sample keeps its *first* successful iterate, so a later step cannot undo a success, and the
    loop stops once every sample has succeeded; samples that never succeed get the final iterate. Returns the
    points and the per-sample success mask (all False without ``success``). ``eot_samples`` averages each step's
    gradient over that many passes (see :func:`gradient`).
    """
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with frozen(clf):
        xk = clip(x if start is None else start, clf).detach()
        best = xk.clone() if success is not None else xk
        for _ in range(steps):
            grad, logits = gradient(clf, xk, loss, eot_samples)
            if success is not None:
                new = success(logits) & ~found
                if new.any():
                    best[new] = xk[new]
                    found |= new
                    if found.all():
                        return best, found
            xk = clip(x + project(xk + step_size * ascent_direction(grad, norm) - x, eps, norm), clf)
        if success is None:
            return xk.detach(), found
        with torch.no_grad():
            new = success(clf(xk)) & ~found
        found |= new
        best[~found | new] = xk[~found | new]
    return best.detach(), found
