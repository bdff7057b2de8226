"""Strength comparisons between two attacks with a margin that comes from the sampling error, not from one
machine's luck.

Two attacks run on the same samples (and seeds) leave per-sample outcomes. Where both agree nothing is learnt;
the discordant samples decide: ``b`` stood against ours but fell to theirs, ``c`` the other way round. If the two
were equally strong, each discordant sample would fall either way with even odds, so ``b - c`` has mean 0 and
variance ``b + c`` (McNemar's test). Ours counts as weaker only when ``b - c`` exceeds ``z`` standard deviations
(z = 3: a false alarm in about 1 of 700 comparisons of equally strong attacks). Float kernels differ between
processors, so which borderline samples fall differs there too; this margin holds on any of them.
"""
from __future__ import annotations

import math

import torch

Z = 3.0


def standing(clf, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per sample: still classified as its label."""
    return clf.predict(x_adv).argmax(1) == y


def strength_margin(b: int, c: int, z: float = Z) -> float:
    """How far ``b - c`` may exceed 0 before ours counts as weaker (see the module docstring)."""
    return z * math.sqrt(b + c)


def assert_not_weaker(ours: torch.Tensor, theirs: torch.Tensor, what: str = "", z: float = Z) -> None:
    """``ours`` and ``theirs``: per-sample "still standing" masks of the same samples (concatenated over seeds)."""
    ours, theirs = ours.bool().reshape(-1), theirs.bool().reshape(-1)
    assert ours.shape == theirs.shape
    b, c = int((ours & ~theirs).sum()), int((~ours & theirs).sum())
    assert b - c <= strength_margin(b, c, z), (
        f"{what}: ours left {int(ours.sum())} standing, theirs {int(theirs.sum())}; {b} stood only against ours, "
        f"{c} only against theirs (allowed: b - c <= {strength_margin(b, c, z):.1f})")
