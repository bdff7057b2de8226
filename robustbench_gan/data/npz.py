"""A user's own ``.npz`` archive (``x``/``y`` or Keras' ``x_train``/``y_train``/``x_test``/``y_test``)."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DataError
from .arrays import _check_pair, _first_label, _images_to_tensor, _labels_to_tensor, _num_classes, _split
from .registry import DATASETS, _parse_bounds
from .spec import UNIT_RANGE, Data, DataSpec, _check_labels, _check_pixels

log = logging.getLogger(__name__)



def _npz_bounds(options: dict[str, Any]) -> tuple[float, float] | None:
    b = options.get("bounds")
    if b is None:
        return UNIT_RANGE
    try:
        return _parse_bounds(b)
    except DataError:
        return None


def _npz_sources(p: Path, keys: list[str]) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """The (images, labels) keys of an archive's train and test sources; DataError unless the layout is clear."""
    held = ", ".join(keys) or "(nothing)"
    plain, keras = sorted({"x", "y"} & set(keys)), sorted({"x_train", "y_train"} & set(keys))
    if plain and keras:
        raise DataError(f"npz file '{p}' is ambiguous: it holds both {'/'.join(plain)} and {'/'.join(keras)} "
                        f"(keys: {held}); keep either x, y or x_train, y_train")
    train = ("x", "y") if plain else ("x_train", "y_train") if keras else None
    has_test = "x_test" in keys or "y_test" in keys
    if train is None and not has_test:
        raise DataError(f"npz file '{p}' lacks 'x' and 'y' (or 'x_train'/'y_train', or 'x_test'/'y_test'); "
                        f"it holds: {held}")
    if train is not None and any(k not in keys for k in train):
        missing = [k for k in train if k not in keys]
        raise DataError(f"npz file '{p}' lacks {', '.join(repr(k) for k in missing)}; it holds: {held}")
    if has_test and not ("x_test" in keys and "y_test" in keys):
        raise DataError(f"npz file '{p}' has only one of 'x_test'/'y_test'; give both"
                        + (" or neither" if train is not None else f" (it holds: {held})"))
    return train, ("x_test", "y_test") if has_test else None


@DATASETS.register("npz", bounds=_npz_bounds, paths=("path",))
def load_npz(
    *,
    path: str,
    train_size: int | float | None = None,
    test_size: int | float | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    bounds: Sequence[float] | None = None,
    first_label: int = 0,
    name: str = "npz",
) -> Data:
    """Images and labels from a NumPy ``.npz`` file (no pickles), under one of these sets of keys:
    ``x``, ``y`` (+ optionally ``x_test``, ``y_test``); Keras-style ``x_train``, ``y_train`` (+ optionally
    ``x_test``, ``y_test``); or ``x_test``, ``y_test`` alone. An archive with both ``x`` and ``x_train`` is refused.

    Images may be NHW, NHWC (C = 1, 3 or 4) or NCHW. uint8 images are scaled to [0, 1]; other arrays keep
    their values. ``bounds`` declares the pixel range (default ``(0, 1)``). A single source (no test split,
    or a test split alone) is split with ``seed``; with both, ``train_size``/``test_size`` take seeded subsets.
    ``first_label`` is the label of the first class (1 for labels 1..10: they become 0..9).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"npz file '{p}' not found; check the path")
    try:
        archive = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"'{p}' is not a readable .npz file ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"'{p}' holds a single array, not an .npz archive with 'x' and 'y'; use np.savez(path, x=..., y=...)")
    with archive:
        train_keys, test_keys = _npz_sources(p, list(archive.files))
        arrays: dict[str, np.ndarray] = {}
        for k in (train_keys or ()) + (test_keys or ()):
            try:
                arrays[k] = archive[k]
            except ValueError as exc:
                raise DataError(
                    f"npz file '{p}': array {k!r} is a pickled object array, which is refused for safety "
                    f"(allow_pickle=False); save plain numeric arrays instead ({exc})"
                ) from None
    if train_keys is None:  # a test split alone is the single source
        log.info("npz '%s' holds x_test/y_test only; splitting them with seed %d (train_size/test_size)", p, seed)
    (kx, ky), test_keys = (train_keys, test_keys) if train_keys else (test_keys, None)  # type: ignore[misc]
    chans = (1, 3, 4)
    x = _images_to_tensor(arrays[kx], f"npz '{p}' {kx}", channels=chans, prefer_last=False)
    y = _labels_to_tensor(arrays[ky], f"npz '{p}' {ky}")
    _check_pair(x, y, f"{p}:{kx}", f"{p}:{ky}")
    xt = yt = None
    if test_keys is not None:
        xt = _images_to_tensor(arrays["x_test"], f"npz '{p}' x_test", channels=chans, prefer_last=False)
        yt = _labels_to_tensor(arrays["y_test"], f"npz '{p}' y_test")
        _check_pair(xt, yt, f"{p}:x_test", f"{p}:y_test")
        if xt.shape[1:] != x.shape[1:]:
            raise DataError(f"npz '{p}': x_test images are {tuple(xt.shape[1:])} but {kx} images {tuple(x.shape[1:])}")
    if num_classes is None or first_label:
        y, yt = _first_label(first_label, f"npz file '{p}'", y, yt)  # type: ignore[assignment]
    k = _num_classes(num_classes, y, *(() if yt is None else (yt,)))
    lo, hi = (0.0, 1.0) if bounds is None else _parse_bounds(bounds)
    for key, xs in ((kx, x), ("x_test", xt)):
        if xs is not None:
            fix = "rescale the images"
            if len(xs) and bool(torch.isfinite(xs).all()):
                lo_s = math.floor(float(xs.min()))
                fix += f" or set bounds = [{lo_s}, {max(math.ceil(float(xs.max())), lo_s + 1)}] in [data]"
            _check_pixels(xs, f"npz file '{p}': {key}", (lo, hi), fix)
    for key, ys in ((ky, y), ("y_test", yt)):
        if ys is not None:
            _check_labels(ys, f"npz file '{p}': {key}", k, num_classes is not None)
    parts = _split(x, y, xt, yt, train_size=train_size, test_size=test_size, seed=seed, name=name)
    spec = DataSpec(name, tuple(int(s) for s in x.shape[1:]), k, bounds=(lo, hi))  # type: ignore[arg-type]
    return Data(*parts, spec, test_ids=parts.test_ids)
