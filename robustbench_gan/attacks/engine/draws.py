"""Random draws keyed to samples, not to their place in a batch.

Every random number an attack draws for a sample (a random start, a restart, Square's windows, a random target)
comes from a counter-based generator: a hash of the attack's seed, the run's stream, the sample's id (its position
in the evaluated set), the draw's number in the attack's sequence of draws and the element's index. A sample gets
the same numbers whether it is attacked alone, in a batch of 7 or 64, in a shard of 13 or on another worker, and on
any device (the hash is integer arithmetic, computed where the samples are).

The hash is Chris Wellons' ``lowbias32`` mixer (public domain, https://nullprogram.com/blog/2018/07/31/), on
32-bit words held in int64 tensors with 16-bit limbs so that no product overflows. Uniforms carry 24 random bits
(every float32 in ``[0, 1)`` on a 2^-24 grid); normals come from the Box-Muller transform of two of them.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import Tensor

MASK = 0xFFFFFFFF
GOLDEN = 0x9E3779B9  # separates the hash chain's words


def _mul(x: Tensor | int, c: int) -> Tensor | int:
    """``x * c mod 2^32`` for 32-bit ``x`` (tensor or int) and constant ``c``, without an int64 overflow."""
    lo, hi = x & 0xFFFF, x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & MASK


def mix(x: Tensor | int) -> Tensor | int:
    """``lowbias32``: a bijective avalanche of a 32-bit word."""
    x = x ^ (x >> 16)
    x = _mul(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul(x, 0x846CA68B)
    return x ^ (x >> 16)


def chain(*words: int) -> int:
    """One 32-bit key from several integers of any size (each split into 32-bit words)."""
    h = GOLDEN
    for word in words:
        word = int(word) % 2**64
        for part in (word & MASK, word >> 32):
            h = mix(h ^ part ^ GOLDEN)
    return int(h)


class SampleDraws:
    """The draws of one attack call: ``ids`` (one per row of the batch) and the key (seed and stream). Each call
    of :meth:`rand`, :meth:`randn` or :meth:`randint` is the next draw of the sequence; :meth:`rows` gives the same
    sequence restricted to some rows (they share the counter), for an attack that draws only for the samples still
    searching."""

    def __init__(self, seed: int, ids: Tensor, *, stream: int = 0) -> None:
        self.key = chain(seed, stream)
        self.ids = ids.to(torch.int64)
        self._counter = [0]  # shared with the rows() views: one sequence of draws

    def rows(self, index: Tensor) -> "SampleDraws":
        """The same sequence of draws for the rows ``index`` only (counting with this one)."""
        sub = copy.copy(self)
        sub.ids = self.ids[index.to(self.ids.device)]
        return sub

    def _bits(self, shape: Sequence[int], device: torch.device | str) -> Tensor:
        """The next draw: 32 random bits per element of ``[len(ids), *shape]``."""
        draw = self._counter[0]
        self._counter[0] += 1
        per_row = math.prod(shape)
        key = int(mix(self.key ^ int(mix(draw ^ GOLDEN))))
        ids = self.ids.to(device)
        row = mix(mix((ids & MASK) ^ key) ^ (ids >> 32))  # a sample's own key
        elem = torch.arange(per_row, device=device, dtype=torch.int64)
        bits = mix(mix(row[:, None] ^ elem[None, :]) ^ mix(row[:, None] ^ GOLDEN))
        return bits.view(len(ids), *shape)

    def rand(self, shape: Sequence[int] = (), *, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform in ``[0, 1)``, ``[len(ids), *shape]``."""
        return ((self._bits(shape, device) >> 8).to(torch.float32) * 2.0**-24).to(dtype)

    def randn(self, shape: Sequence[int] = (), *, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal, ``[len(ids), *shape]`` (Box-Muller on two uniforms of one draw)."""
        bits = self._bits((*shape, 2), device)
        u = ((bits >> 8).to(torch.float64) + 0.5) * 2.0**-24  # in (0, 1): the log is finite
        z = torch.sqrt(-2 * torch.log(u[..., 0])) * torch.cos(2 * math.pi * u[..., 1])
        return z.to(dtype)

    def randint(self, low: int, high: int, shape: Sequence[int] = (), *,
                device: torch.device | str = "cpu") -> Tensor:
        """Integers in ``[low, high)``, ``[len(ids), *shape]`` (``high - low`` below 2^20: the bias is under 2^-12)."""
        span = int(high) - int(low)
        if span <= 0:
            raise ValueError(f"randint needs low < high, got {low}, {high}")
        return low + ((self._bits(shape, device) >> 12) * span >> 20)
