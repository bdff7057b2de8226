"""Reading image and label arrays from files (IDX, NumPy) into validated tensors, and splitting what a file holds
into train and test; shared by the file-based loaders."""
from __future__ import annotations

import logging
import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .spec import Split, _size, seeded_split, subset_index

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

log = logging.getLogger(__name__)



def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzipped, detected by content) into a native-endian numpy array."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"IDX file '{p}' not found; check the path or copy the file there")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"IDX file '{p}' is a corrupt or truncated gzip stream ({exc}); fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(
            f"'{p}' is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'} "
            "(expected 00 00 <type 08/09/0b/0c/0d/0e> <ndim>)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file '{p}' is truncated: its header needs {header} bytes, the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[raw[2]]
    count = math.prod(dims)
    expected, got = count * dtype.itemsize, len(raw) - header
    if got < expected:
        raise DataError(
            f"IDX file '{p}' is truncated: dims {list(dims)} need {expected} data bytes, found {got}; fetch it again"
        )
    if got > expected:
        raise DataError(f"IDX file '{p}' is malformed: {got - expected} bytes after the data its dims {list(dims)} declare")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _images_to_tensor(arr: np.ndarray, source: str, channels: tuple[int, ...], prefer_last: bool) -> Tensor:
    """Images as float32 NCHW; uint8 is scaled to [0, 1], other types keep their values.

    ``[N, H, W]`` gains a channel axis. A 4-D array is channels-last when its last axis is in ``channels`` and
    (unless ``prefer_last``) its second axis is not; otherwise it must already be ``[N, C, H, W]``.
    """
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{source}: images must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        last, second = arr.shape[3] in channels, arr.shape[1] in channels
        if last and (prefer_last or not second):
            arr = arr.transpose(0, 3, 1, 2)
        elif prefer_last and not second:
            raise DataError(
                f"{source}: 4-D images {tuple(arr.shape)} have no channel axis of size {' or '.join(map(str, channels))} "
                "(expected [N, H, W, C] or [N, C, H, W])"
            )
    else:
        raise DataError(f"{source}: images must be [N, H, W], [N, H, W, C] or [N, C, H, W], got shape {tuple(arr.shape)}")
    scale = arr.dtype == np.uint8
    x = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32))
    return x / 255.0 if scale else x


def _labels_to_tensor(arr: np.ndarray, source: str) -> Tensor:
    """Labels as a 1-D int64 tensor (``[N, 1]`` is flattened; float labels must be whole numbers)."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{source}: labels must be a 1-D vector, got shape {tuple(arr.shape)}")
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{source}: labels must be integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{source}: labels must be whole numbers, found non-integer float labels")
    return torch.from_numpy(arr.astype(np.int64))


def _check_pair(x: Tensor, y: Tensor, images: str, labels: str) -> None:
    if len(x) != len(y):
        raise DataError(f"'{images}' holds {len(x)} images but '{labels}' holds {len(y)} labels; they must match")


def _two_splits(
    xtr: Tensor, ytr: Tensor, xte: Tensor, yte: Tensor, *,
    train_size: int | float | None, test_size: int | float | None, seed: int, name: str,
) -> Split:
    """Seeded subsets of a source that already has train and test splits."""
    out, index = [], torch.arange(0)
    for split, x, y, size in (("train", xtr, ytr, train_size), ("test", xte, yte, test_size)):
        k = _size(size, len(x), f"{split}_size")
        if k is not None and k > len(x):
            log.warning("%s: %s_size=%d but the %s split has only %d samples; using all", name, split, k, split, len(x))
        index = subset_index(len(x), k, seed)
        out.extend((x[index], y[index]))
    return Split(out, index)


def _split(
    x: Tensor, y: Tensor, x_test: Tensor | None, y_test: Tensor | None, *,
    train_size: int | float | None, test_size: int | float | None, seed: int, name: str,
) -> Split:
    if x_test is None or y_test is None:
        return seeded_split(x, y, train_size=train_size, test_size=test_size, seed=seed, name=name)
    return _two_splits(x, y, x_test, y_test, train_size=train_size, test_size=test_size, seed=seed, name=name)


def _first_label(first_label: Any, source: str, *ys: Tensor | None) -> list[Tensor | None]:
    """The labels counted from 0: minus ``first_label`` (1 for labels 1..K). With the default 0, labels of which
    none is 0 are refused, before anything trains: counted from 0 they would make an empty class 0."""
    if isinstance(first_label, bool) or not isinstance(first_label, int):
        raise DataError(f"first_label must be an integer (the label of the first class), got {first_label!r}")
    present = [y for y in ys if y is not None and len(y)]
    if first_label == 0 and present and min(int(y.min()) for y in present) >= 1:
        low, top = min(int(y.min()) for y in present), max(int(y.max()) for y in present)
        raise DataError(f"{source}: labels run {low}..{top} and none is 0; if they count classes from {low}, set "
                        f"first_label = {low} in [data] (classes 0..{top - low}); if class 0 really has no samples, "
                        f"set num_classes = {top + 1}")
    return [None if y is None else y - first_label for y in ys]


def _num_classes(num_classes: int | None, *ys: Tensor) -> int:
    if num_classes is not None:
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
            raise DataError(f"num_classes must be a positive integer, got {num_classes!r}")
        return int(num_classes)
    top = max((int(y.max()) for y in ys if len(y)), default=0)
    return max(top + 1, 2)


def _read_idx_pair(images: str | os.PathLike[str], labels: str | os.PathLike[str]) -> tuple[Tensor, Tensor]:
    x = _images_to_tensor(read_idx(images), f"IDX file '{images}'", channels=(1, 3), prefer_last=True)
    y = _labels_to_tensor(read_idx(labels), f"IDX file '{labels}'")
    _check_pair(x, y, str(images), str(labels))
    return x, y
