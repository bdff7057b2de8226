"""The two updates every GAN loop here makes (Goodfellow et al. 2014, Algorithm 1): a discriminator step on a real
and a generated minibatch, and the generator's non-saturating loss (sec. 3), against the discriminator as it is
or, unrolled (Metz et al. 2017), as it will be ``unroll`` steps ahead. Inputs are tuples of the discriminator's
arguments (packed already, labels included for a conditional one)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .unrolled import call, look_ahead


def discriminator_step(d: nn.Module, opt: torch.optim.Optimizer, real_in: tuple[Tensor, ...],
                       fake_in: tuple[Tensor, ...], ones: Tensor, zeros: Tensor) -> tuple[float, float, float]:
    """One step on ``BCE(D(real), 1) + BCE(D(fake), 0)``; returns the loss and the mean ``D(real)``, ``D(fake)``."""
    out_real, out_fake = d(*real_in), d(*fake_in)
    loss_d = F.binary_cross_entropy_with_logits(out_real, ones) + F.binary_cross_entropy_with_logits(out_fake, zeros)
    opt.zero_grad(set_to_none=True)
    loss_d.backward()
    opt.step()
    return (float(loss_d.detach()), float(torch.sigmoid(out_real.detach()).mean()),
            float(torch.sigmoid(out_fake.detach()).mean()))


def generator_loss(d: nn.Module, opt_d: torch.optim.Optimizer, real_in: tuple[Tensor, ...],
                   fake_in: tuple[Tensor, ...], ones: Tensor, zeros: Tensor, unroll: int) -> tuple[Tensor, Tensor]:
    """``BCE(D(G(z)), 1)``; with ``unroll`` > 0, ``D`` is the functional copy :func:`~.unrolled.look_ahead` moves
    ``unroll`` Adam steps on ``(real_in, fake_in)`` (the real discriminator stays as it is), and the loss also
    holds the real-data term ``- BCE(D_K(x), 1)`` = ``log D_K(x)``: after the look-ahead it depends on the
    generator through ``theta_D^K`` (Metz et al. 2017, eq. 3-4: the generator minimises the unrolled value
    function, both of its terms; their code does the same). Returns ``(loss to minimise, the fake term)``, the
    latter for the loss history."""
    if not unroll:
        loss = F.binary_cross_entropy_with_logits(d(*fake_in), ones)
        return loss, loss

    def d_loss(state: dict[str, Tensor]) -> Tensor:
        return (F.binary_cross_entropy_with_logits(call(d, state, *real_in), ones)
                + F.binary_cross_entropy_with_logits(call(d, state, *fake_in), zeros))

    ahead = look_ahead(d, opt_d, d_loss, unroll)
    fake_term = F.binary_cross_entropy_with_logits(call(d, ahead, *fake_in), ones)
    return fake_term - F.binary_cross_entropy_with_logits(call(d, ahead, *real_in), ones), fake_term
