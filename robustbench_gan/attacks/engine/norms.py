"""Norm-specific pieces of gradient attacks: the steepest-ascent direction, the projection onto the eps-ball and a
uniform random start, for Linf and L2 (the hooks of the one attack loop in :mod:`~robustbench_gan.attacks.engine.descent`)."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError
from .draws import SampleDraws

NORMS = ("inf", "2")
SPARSE_NORMS = ("1", "0")
"""Norms only the minimum-norm attacks that say so take (FMN): L1, and L0 (the number of pixels changed)."""


def parse_norm(norm: Any, *, sparse: bool = False) -> str:
    """Normalise a norm spelling (``inf``, ``linf``, ``np.inf``, ``2``, ``l2``; with ``sparse`` also ``1``/``l1``
    and ``0``/``l0``) to ``"inf"``, ``"2"``, ``"1"`` or ``"0"``."""
    text = str(norm).lower().lstrip("l")
    if text in ("inf", "infinity"):
        return "inf"
    for name in NORMS[1:] + (SPARSE_NORMS if sparse else ()):
        if text in (name, f"{name}.0"):
            return name
    raise ConfigError(f"norm must be {', '.join(repr(n) for n in NORMS + (SPARSE_NORMS if sparse else ()))}, "
                      f"got {norm!r}")


def _per_sample(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def flat_norm(t: Tensor, norm: str) -> Tensor:
    """Per-sample norm of ``t`` flattened (``"inf"``, ``"2"``; ``"1"``; ``"0"``: how many entries are not 0)."""
    flat = t.flatten(1)
    if norm == "1":
        return flat.abs().sum(1)
    if norm == "0":
        return (flat != 0).sum(1).to(t.dtype if t.is_floating_point() else torch.float32)
    return flat.abs().amax(1) if norm == "inf" else flat.norm(p=2, dim=1)


def l2_normalize(g: Tensor) -> Tensor:
    """Per-sample unit-L2 direction (zero stays zero), for tensors of any rank."""
    n = g.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    return g / _per_sample(n, g)


def project(delta: Tensor, eps: float, norm: str) -> Tensor:
    """Project ``delta`` onto the eps-ball of the norm."""
    if norm == "inf":
        return delta.clamp(-eps, eps)
    n = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    factor = (eps / n).clamp(max=1.0)
    return delta * _per_sample(factor, delta)


def ascent_direction(grad: Tensor, norm: str) -> Tensor:
    """The steepest-ascent step of unit size in the norm: ``sign(grad)`` (Linf) or ``grad / ||grad||_2`` (L2)."""
    return grad.sign() if norm == "inf" else l2_normalize(grad)


def random_delta(x: Tensor, eps: float, norm: str, gen: "torch.Generator | SampleDraws") -> Tensor:
    """A point drawn uniformly from the eps-ball of the norm: from a sample's own draws (:class:`SampleDraws`, what
    attacks use), or for the whole batch from a CPU generator (what adversarial training uses). Same on any
    device."""
    if isinstance(gen, SampleDraws):
        if norm == "inf":
            return (2 * gen.rand(x.shape[1:], device=x.device, dtype=x.dtype) - 1) * eps
        g = gen.randn(x.shape[1:], device=x.device, dtype=x.dtype)
        r = gen.rand(device=x.device, dtype=x.dtype) ** (1.0 / x[0].numel())
        return l2_normalize(g) * _per_sample(eps * r, x)
    if norm == "inf":
        u = torch.rand(x.shape, generator=gen, device="cpu", dtype=x.dtype)
        return ((2 * u - 1) * eps).to(x.device)
    g = torch.randn(x.shape, generator=gen, device="cpu", dtype=x.dtype)
    r = torch.rand(len(x), generator=gen, dtype=x.dtype) ** (1.0 / x[0].numel())
    return (l2_normalize(g) * _per_sample(eps * r, x)).to(x.device)


ULPS = 8
"""How many float32 ulps of the pixel scale an example may stray (the projection's and the clip's rounding)."""


def tolerance(eps: float, bounds: tuple[float, float]) -> float:
    """The slack of the ball and box tests: :data:`ULPS` float32 ulps of the largest magnitude involved."""
    scale = max(1.0, abs(bounds[0]), abs(bounds[1]), abs(eps) if math.isfinite(eps) else 0.0)
    return ULPS * torch.finfo(torch.float32).eps * scale
