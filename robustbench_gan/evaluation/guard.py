"""The guard between every attack and its score: the examples an attack returns (native, ``art:``, a user's own
Attack) must lie in its eps ball, in its norm, and in the pixel bounds, up to a few float32 ulps; anything else
stops the run with a one-line :class:`~robustbench_gan.errors.AttackContractError` rather than being scored."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import AttackContractError
from ..attacks.engine.norms import flat_norm, tolerance  # noqa: F401  (tolerance re-exported)

if TYPE_CHECKING:
    from ..attacks.base import Attack

NORM_NAMES = {"inf": "Linf", "2": "L2", "1": "L1", "0": "L0"}


def check_examples(attack: "Attack", x: Tensor, x_adv: Tensor, eps: float, bounds: tuple[float, float], *,
                   where: str = "") -> None:
    """Raise :class:`AttackContractError` unless every row of ``x_adv`` is finite, has ``x``'s shape, lies within
    the pixel ``bounds`` and (for attacks that start from the input, in a pixel norm) within ``eps`` of its row of
    ``x`` in the attack's norm."""
    name = f"attack {where or attack.kind!r} ({attack.kind})"
    if tuple(x_adv.shape) != tuple(x.shape):
        raise AttackContractError(f"{name} returned examples of shape {tuple(x_adv.shape)} for inputs of shape "
                                  f"{tuple(x.shape)}; an attack must return one example per input, same shape")
    flat = x_adv.detach().flatten(1).float()
    bad = ~torch.isfinite(flat).all(1)
    if bool(bad.any()):
        raise AttackContractError(f"{name} returned {int(bad.sum())} of {len(x)} examples with NaN or infinite "
                                  "pixels; fix the attack (its step or projection divides by zero?)")
    lo, hi = bounds
    tol = tolerance(eps, bounds)
    excess_box = torch.maximum(lo - flat, flat - hi).amax(1)
    out_box = excess_box > tol
    if bool(out_box.any()):
        raise AttackContractError(
            f"{name} returned {int(out_box.sum())} of {len(x)} examples with pixels outside the bounds "
            f"[{lo:g}, {hi:g}] (largest excess {float(excess_box.max()):.3g}); fix the attack so it clips its "
            "examples to the bounds; nothing from it was scored")
    if not attack.starts_from_input or attack.norm not in NORM_NAMES or not math.isfinite(eps):
        return
    dist = flat_norm(x_adv.detach().double() - x.detach().double(), attack.norm)
    limit = eps + tol + (eps * 1e-6 if attack.norm in ("2", "1") else 0.0)  # a sum gathers rounding over every pixel
    outside = dist > limit
    if bool(outside.any()):
        raise AttackContractError(
            f"{name} returned {int(outside.sum())} of {len(x)} examples outside the {NORM_NAMES[attack.norm]} ball "
            f"of eps {eps:g} (largest distance {float(dist.max()):.6g}, excess {float(dist.max()) - eps:.3g}); fix "
            "the attack so it projects onto the ball; nothing from it was scored")
