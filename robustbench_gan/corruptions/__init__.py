"""Common corruptions (Hendrycks & Dietterich, ICLR 2019): the 15 recipes in torch, and stored corruption sets.

``corrupt(x, name, severity)`` corrupts a batch on its device with per-sample seeded draws; ``load_corruption_folder``
reads a CIFAR-10-C-style folder (``<corruption>.npy`` and ``labels.npy``).
"""
from __future__ import annotations

from .recipes import CORRUPTIONS, FAMILIES, SEVERITIES, corrupt
from .stored import StoredCorruptions, load_corruption_folder

__all__ = ["CORRUPTIONS", "FAMILIES", "SEVERITIES", "corrupt", "StoredCorruptions", "load_corruption_folder"]
