"""Unrolled GANs (Metz et al. 2017, "Unrolled Generative Adversarial Networks", sec. 2): the generator is
updated against the discriminator as it would be after ``k`` more of its own updates, ``f(theta_G, theta_D^k)``,
with the gradient taken through the unrolled updates (the paper's full surrogate, eq. 3-4, not its
first-order variant), both terms of the value function included (:func:`~.steps.generator_loss`).

The look-ahead runs on a functional copy of the discriminator (:func:`torch.func.functional_call` on cloned
parameters and buffers); the real discriminator, its optimizer state and its batch-norm statistics are never
touched. The unrolled steps are Adam steps that start from the discriminator optimizer's current moments, as
the authors' code does (it replays its optimizer's update rule), and all ``k`` of them use the same real and
generated minibatch, as there.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import ConfigError

UNROLL_STEPS = (0, 5, 10)
"""The look-ahead depths of Metz et al. 2017's tables (0 = a plain GAN); any non-negative integer is accepted."""

State = dict[str, Tensor]


def check_unroll(k: Any, *, name: str = "unroll") -> int:
    """``k`` as a non-negative int, else a :class:`ConfigError` that says what it must be."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"{name} must be a non-negative integer (0 = off; Metz et al. use 5 or 10), got {k!r}")
    return k


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[None]:
    """Flush subnormal floats to zero inside the block (where the CPU supports it), then turn flushing off again
    (PyTorch's default; it has no getter to restore anything else).

    Differentiating through Adam's ``sqrt`` of tiny second moments makes subnormal numbers; on x86 CPUs they are
    slow enough to make an unrolled step 6 to 40 times slower (measured: 841 vs 138 ms a step on PacGAN's toy).
    """
    if not enabled:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def functional_copy(module: nn.Module) -> State:
    """Detached clones of ``module``'s parameters (requiring grad) and buffers, keyed as in its state."""
    state: State = {n: p.detach().clone().requires_grad_(True) for n, p in module.named_parameters()}
    state.update({n: b.detach().clone() for n, b in module.named_buffers()})
    return state


def look_ahead(
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Callable[[State], Tensor],
    steps: int,
) -> State:
    """The discriminator's parameters and buffers after ``steps`` differentiable Adam steps on ``loss``.

    ``loss(state)`` must compute the discriminator's loss with ``call(discriminator, state, ...)`` (e.g. on a
    fixed real minibatch and the generator's samples *with* their graph), so the returned state is a function of
    the generator's parameters. Adam's moments start from ``optimizer``'s state for each parameter (zeros before
    its first step); its learning rate, betas and eps are those of the parameter's group.
    """
    state = functional_copy(discriminator)
    names = [n for n, _ in discriminator.named_parameters()]
    live = dict(discriminator.named_parameters())
    hyper: dict[str, tuple[float, float, float, float]] = {}
    moments: dict[str, tuple[Tensor, Tensor, int]] = {}
    for group in optimizer.param_groups:
        b1, b2 = group["betas"]
        for p in group["params"]:
            for n in names:
                if live[n] is p:
                    hyper[n] = (float(group["lr"]), float(b1), float(b2), float(group["eps"]))
                    st = optimizer.state.get(p, {})
                    if "exp_avg" in st:
                        moments[n] = (st["exp_avg"].detach().clone(), st["exp_avg_sq"].detach().clone(),
                                      int(st["step"]))
                    else:
                        moments[n] = (torch.zeros_like(p), torch.zeros_like(p), 0)
    for _ in range(steps):
        params = [state[n] for n in names]
        grads = torch.autograd.grad(loss(state), params, create_graph=True, allow_unused=True)
        for n, p, g in zip(names, params, grads):
            if g is None:
                continue
            lr, b1, b2, eps = hyper[n]
            m, v, t = moments[n]
            m, v, t = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g, t + 1
            moments[n] = (m, v, t)
            v_hat = (v / (1 - b2**t)).clamp_min(1e-30)  # a zero second moment has a zero (not NaN) gradient
            state[n] = p - lr * (m / (1 - b1**t)) / (v_hat.sqrt() + eps)
    return state


def call(module: nn.Module, state: State, *args: Tensor) -> Tensor:
    """``module(*args)`` with ``state``'s parameters and buffers instead of its own."""
    return functional_call(module, state, args)
