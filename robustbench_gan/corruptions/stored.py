"""Stored corruption sets laid out as CIFAR-10-C, CIFAR-100-C or MNIST-C-like folders.

A folder holds ``<corruption>.npy`` (uint8 ``[5 * N, H, W, C]`` or ``[5 * N, H, W]``: severities 1..5 stacked in that
order, N images each) and ``labels.npy`` (``[5 * N]``, the N labels once per severity, or ``[N]``). Files are read
with ``numpy.load(allow_pickle=False)``, memory-mapped: only the slices asked for are read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError

log = logging.getLogger(__name__)

LABELS = "labels.npy"


def _load(path: Path) -> np.ndarray:
    """A memory-mapped array; ConfigError naming the file when it is not a plain ``.npy`` array."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ConfigError(f"{path} is not a readable .npy array ({e}); save it with numpy.save from a plain "
                          f"uint8/integer array") from None


@dataclass(frozen=True)
class StoredCorruptions:
    """A loaded corruption folder: ``names``, ``labels`` (``[n]``), ``images(name, severity)``."""

    path: Path
    names: tuple[str, ...]
    labels: Tensor
    n: int
    per_severity: int  # N, the images per severity block in the files
    _arrays: dict[str, np.ndarray] = field(repr=False)

    def images(self, name: str, severity: int, index: Tensor | None = None) -> Tensor:
        """The first ``n`` images of ``name`` at ``severity`` (1..5), or those of ``index`` among them, as float
        ``[n, C, H, W]`` in [0, 1] (only those rows are read)."""
        if name not in self._arrays:
            raise ConfigError(f"corruption {name!r} is not loaded from {self.path}; loaded: {', '.join(self.names)}")
        if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
            raise ConfigError(f"severity must be an integer from 1 to 5, got {severity!r}")
        start = (severity - 1) * self.per_severity
        rows = np.arange(self.n) if index is None else np.asarray(index.cpu(), dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n):
            raise ConfigError(f"image {int(rows.max())} asked of {self.path / (name + '.npy')}, which holds {self.n} "
                              "per severity")
        block = np.array(self._arrays[name][start + rows])  # a writable copy of those rows
        x = torch.from_numpy(block).to(torch.float32) / 255
        return x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()


def _check_images(path: Path, arr: np.ndarray) -> None:
    """ConfigError unless ``arr`` is uint8 ``[rows, H, W]`` or ``[rows, H, W, 1|3]``."""
    if arr.dtype != np.uint8:
        raise ConfigError(f"{path} holds {arr.dtype} values, expected uint8 pixels 0..255; convert with "
                          f"(x * 255).round().astype(numpy.uint8) for images in [0, 1]")
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] not in (1, 3)):
        raise ConfigError(f"{path} has shape {tuple(arr.shape)}, expected [5 * N, H, W, C] with C 1 or 3, "
                          f"or [5 * N, H, W]")


def _labels(path: Path, rows: int, first: Path) -> tuple[np.ndarray, int]:
    """The N labels and N, from ``labels.npy`` and the row count of the first corruption file."""
    arr = _load(path)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{path} has shape {tuple(arr.shape)} and dtype {arr.dtype}, expected integer labels "
                          f"[5 * N] or [N]")
    count = len(arr)
    if rows == 5 * count:
        return np.asarray(arr), count
    if rows == count and count % 5 == 0 and count > 0:
        n = count // 5
        blocks = np.asarray(arr).reshape(5, n)
        if not (blocks == blocks[:1]).all():
            raise ConfigError(f"{path} has {count} labels whose five severity blocks differ; store the N labels "
                              f"once per severity in the same order (or just [N])")
        return blocks[0], n
    raise ConfigError(f"{first} has {rows} rows but {path} holds {count} labels, expected 5 x N rows with "
                      f"[5 x N] or [N] labels; save 5 severity blocks of the same N images")


def load_corruption_folder(path: str | Path, *, corruptions: Sequence[str] | None = None,
                           n: int | None = None) -> StoredCorruptions:
    """Load a CIFAR-10-C-style folder (all its ``.npy`` corruptions, or ``corruptions``), keeping the first ``n``
    images of each severity; a missing or malformed file raises ConfigError naming it."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"corruption folder {root} does not exist; point to a folder of <corruption>.npy files "
                          f"and labels.npy (as CIFAR-10-C unpacks)")
    held = sorted(p.stem for p in root.glob("*.npy") if p.name != LABELS)
    if corruptions is None:
        names = tuple(held)
        if not names:
            raise ConfigError(f"corruption folder {root} holds no <corruption>.npy files; unpack the set there "
                              f"(e.g. CIFAR-10-C's gaussian_noise.npy, ..., labels.npy)")
    else:
        names = tuple(dict.fromkeys(str(c) for c in corruptions))
        missing = [c for c in names if c not in held]
        if missing:
            raise ConfigError(f"{root / (missing[0] + '.npy')} does not exist; the folder holds: "
                              f"{', '.join(held) or 'no corruption files'}")
        if not names:
            raise ConfigError("corruptions is empty; name at least one corruption or pass None for all")
    if not (root / LABELS).is_file():
        raise ConfigError(f"{root / LABELS} does not exist; save the labels as labels.npy ([5 * N] or [N])")
    arrays = {c: _load(root / f"{c}.npy") for c in names}
    for c, arr in arrays.items():
        _check_images(root / f"{c}.npy", arr)
    first = root / f"{names[0]}.npy"
    labels, per = _labels(root / LABELS, int(arrays[names[0]].shape[0]), first)
    for c, arr in arrays.items():
        if arr.shape[0] != 5 * per:
            raise ConfigError(f"{root / (c + '.npy')} has {arr.shape[0]} rows, expected 5 x N = {5 * per} "
                              f"(N = {per} from {first.name} and {LABELS})")
    if n is None:
        n = per
    elif isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= per:
        raise ConfigError(f"n must be an integer from 1 to {per} (the images per severity in {root}), got {n!r}")
    log.debug("loaded %d corruptions from %s: %d of %d images per severity", len(names), root, n, per)
    return StoredCorruptions(path=root, names=names, labels=torch.from_numpy(labels[:n].astype(np.int64)), n=n,
                             per_severity=per, _arrays=arrays)
