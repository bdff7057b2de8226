"""Attack precision: ``fp32`` (default), or ``bf16`` / ``fp16`` autocast for the attack's own forward and backward
passes. Decisions that count are always taken in fp32: the evaluation loop labels every example in fp32, and the
iterative loop re-checks in fp32 each success found in low precision before the sample stops. fp16 scales the
loss before the backward pass so small input gradients do not underflow to zero.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch

from ...errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
SETTINGS = ("auto", *PRECISIONS)
"""What a suite or ``benchmark()`` may ask for: ``auto`` is fp32 on the CPU and, on CUDA, bf16 where a calibration
run on the model agrees with fp32 (:func:`robustbench_gan.run.tuning.precision_for`)."""
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
FP16_LOSS_SCALE = 2.0 ** 12
"""Static loss scale of fp16 attack gradients (input gradients are only compared or normalised, so the scale
cancels; a non-finite scaled gradient falls back to fp32 for that step)."""

_current: contextvars.ContextVar[str] = contextvars.ContextVar("attack_precision", default="fp32")


def check_precision(value: object, *, allow_auto: bool = False) -> str:
    allowed = SETTINGS if allow_auto else PRECISIONS
    if value not in allowed:
        raise ConfigError(f"precision must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def current() -> str:
    """The precision of the attack passes running now (``fp32`` outside :func:`attack_precision`)."""
    return _current.get()


@contextlib.contextmanager
def attack_precision(device: torch.device | str, precision: str) -> Iterator[None]:
    """Run the attack passes inside in ``precision`` (autocast on ``device``'s type); fp32 is a no-op."""
    check_precision(precision)
    if precision == "fp32":
        yield
        return
    token = _current.set(precision)
    try:
        with torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision]):
            yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def full_precision(device: torch.device | str) -> Iterator[None]:
    """fp32 inside, even within :func:`attack_precision` (for the decisions that count)."""
    token = _current.set("fp32")
    try:
        with torch.autocast(device_type=torch.device(device).type, enabled=False):
            yield
    finally:
        _current.reset(token)


def supported(device: str, precision: str) -> bool:
    """Whether autocast in ``precision`` runs a small conv net on ``device`` here."""
    if precision == "fp32":
        return True
    try:
        with attack_precision(device, precision):
            net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3)).to(device)
            x = torch.rand(2, 1, 5, 5, device=device, requires_grad=True)
            net(x).float().sum().backward()
        return x.grad is not None
    except (RuntimeError, TypeError):
        return False
