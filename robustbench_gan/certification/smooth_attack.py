"""SmoothAdv's PGD on the soft smoothed classifier (Salman, Li, Razenshteyn, Zhang, Zhang, Bubeck & Yang 2019,
"Provably Robust Deep Learning via Adversarially Trained Smoothed Classifiers", NeurIPS), for the empirical curve
next to the certified one.

Each step ascends ``-log mean_j softmax(f(x' + e_j))_y`` over ``m`` fresh noise draws ``e_j ~ N(0, sigma^2 I)``
(their SmoothAdv objective, an expectation over transformation), along the L2-normalised gradient, and projects
onto the L2 ball of radius eps and the pixel bounds. Following their code (``PGD_L2`` in
github.com/Hadisalman/smoothing-adversarial, ``code/attacks.py``) it starts at ``x``, steps ``2 * eps / steps`` and
takes a random direction where the gradient vanishes. ``m = 8`` is the largest m of their training grid
{1, 2, 4, 8}.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks.engine.descent import projected_step
from ..attacks.engine.draws import SampleDraws
from ..classifier import Classifier, frozen
from ..core.validation import check_positive
from ..errors import ConfigError
from .smoothing import soft_smoothed_log_probs


def smooth_adv_pgd(
    clf: Classifier, x: Tensor, y: Tensor, *, sigma: float, eps: float, steps: int = 20, m: int = 8,
    draws: SampleDraws, step_size: float | None = None,
) -> Tensor:
    """SmoothAdv PGD examples for the base classifier ``clf`` smoothed at ``sigma``: within the L2 ball of radius
    ``eps`` around ``x`` and within ``clf.bounds``. Noise and random directions come from ``draws`` (one id per
    sample), so a sample's example does not depend on its batch."""
    check_positive("sigma", sigma)
    check_positive("eps", eps, allow_zero=True)
    check_positive("steps", steps, integer=True)
    check_positive("m", m, integer=True)
    if step_size is not None:
        check_positive("step_size", step_size)
    if len(draws.ids) != len(x):
        raise ConfigError(f"draws has {len(draws.ids)} sample ids for {len(x)} samples; give one id per sample")
    if eps == 0:
        return x.clone()
    step = 2.0 * eps / steps if step_size is None else float(step_size)
    y = y.to(x.device)
    shape = x.shape[1:]
    with frozen(clf):
        xk = x.detach().clone()
        for _ in range(steps):
            noise = sigma * draws.randn((m, *shape), device=x.device, dtype=x.dtype)
            xk.requires_grad_(True)
            with torch.enable_grad():
                loss = F.nll_loss(soft_smoothed_log_probs(clf, xk, noise), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xk)
            flat = grad.flatten(1).norm(dim=1)
            random = draws.randn(shape, device=x.device, dtype=x.dtype)  # drawn every step: the sequence stays fixed
            grad = torch.where((flat == 0).view(-1, *([1] * len(shape))), random, grad)
            xk = projected_step(clf, x, xk.detach(), grad, eps=eps, norm="2", step_size=step)
    return xk.detach()
