"""Packing (Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial networks"): the
discriminator judges ``pack`` samples at once, all real or all generated, concatenated along the feature axis
(2-D points: ``[B, pack * 2]``; images: channels, ``[B, pack * C, H, W]``, as PacGAN's DCGAN code concatenates
along the channel axis). A minibatch holds ``B`` packs, so the generator makes ``B * pack`` samples per step and
the discriminator's first layer is ``pack`` times wider; everything after it is unchanged (PacGAN, sec. 3 and
its released code, fjxmlzn/PacGAN). ``pack = 1`` is the plain GAN.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import ConfigError

MAX_PACK = 4
"""The largest degree PacGAN's tables report (PacGAN2 to PacGAN4); larger ones are allowed but untested."""


def check_pack(pack: Any, *, name: str = "pack") -> int:
    """``pack`` as a positive int, else a :class:`ConfigError` that says what it must be."""
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise ConfigError(f"{name} must be a positive integer (1 = no packing, PacGAN uses 2 to 4), got {pack!r}")
    return pack


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """Group ``[B * pack, F, ...]`` consecutive samples into ``[B, pack * F, ...]`` packs (sample ``i`` of pack
    ``b`` is row ``b * pack + i``, its features at ``i * F : (i + 1) * F``); ``pack = 1`` returns ``x``."""
    if pack == 1:
        return x
    if x.ndim < 2 or len(x) % pack:
        raise ValueError(f"cannot pack {tuple(x.shape)} into packs of {pack}: need [B * {pack}, F, ...]")
    return x.reshape(len(x) // pack, pack * x.shape[1], *x.shape[2:])


def unpack_samples(x: Tensor, pack: int) -> Tensor:
    """The inverse of :func:`pack_samples`: ``[B, pack * F, ...]`` back to ``[B * pack, F, ...]``."""
    if pack == 1:
        return x
    return x.reshape(len(x) * pack, x.shape[1] // pack, *x.shape[2:])
