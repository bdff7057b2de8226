"""Data sets as in-memory tensors, each describing itself with a :class:`DataSpec`.

Every loader returns a :class:`Data`: float32 images in ``[N, C, H, W]`` inside ``spec.bounds`` and int64
labels in ``[0, num_classes)``. Sources with a single split are split with a seeded permutation
(``train_size`` / ``test_size``). Nothing here downloads unless the user passes ``download=True``.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .errors import DataError
from .registry import Registry

log = logging.getLogger(__name__)

DATASETS: Registry[Callable[..., "Data"]] = Registry("dataset")


@dataclass(frozen=True)
class DataSpec:
    """What a data set looks like: input shape ``(C, H, W)``, classes, pixel bounds and optional normalization."""

    name: str
    shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...] = ()
    bounds: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(i) for i in range(self.num_classes)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "bounds": list(self.bounds),
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
        }


@dataclass
class Data:
    """A train/test pair of tensors plus their spec."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    spec: DataSpec
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    def fingerprint(self) -> str:
        """A content hash of the tensors and spec (used to key caches)."""
        if self._fingerprint is None:
            h = hashlib.sha256(repr(self.spec.as_dict()).encode())
            for t in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().cpu().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


def load_dataset(name: str, **options: Any) -> Data:
    """Load the registered data set ``name``; ``options`` are passed to its loader."""
    loader = DATASETS.get(name)
    try:
        data = loader(**options)
    except TypeError as exc:  # unknown option
        import inspect

        accepted = [p for p in inspect.signature(loader).parameters]
        bad = [k for k in options if k not in accepted]
        if bad:
            raise DataError(
                f"dataset {name!r} does not take option {bad[0]!r}; it accepts: {', '.join(accepted)}"
            ) from None
        raise
    validate(data)
    log.info(
        "dataset %s: %d train / %d test, shape %s, %d classes",
        name, len(data.y_train), len(data.y_test), data.spec.shape, data.spec.num_classes,
    )
    return data


def validate(data: Data) -> None:
    """Raise :class:`DataError` if images or labels break the spec (shape, bounds, NaN, label range)."""
    spec = data.spec
    lo, hi = spec.bounds
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(spec.shape):
            raise DataError(
                f"{spec.name} {split} images have shape {tuple(x.shape)}, expected [N, {', '.join(map(str, spec.shape))}]"
            )
        if len(x) != len(y):
            raise DataError(f"{spec.name} {split}: {len(x)} images but {len(y)} labels; give one label per image")
        if len(x) == 0:
            raise DataError(f"{spec.name} {split} split is empty; check train_size/test_size and the source files")
        if not torch.isfinite(x).all():
            raise DataError(f"{spec.name} {split} images contain NaN or infinite values; clean the data first")
        xmin, xmax = float(x.min()), float(x.max())
        if xmin < lo - 1e-6 or xmax > hi + 1e-6:
            raise DataError(
                f"{spec.name} {split} pixel values span [{xmin:.4g}, {xmax:.4g}], outside the declared bounds "
                f"[{lo}, {hi}]; rescale the images or declare matching bounds"
            )
        if y.dtype != torch.int64 or y.ndim != 1:
            raise DataError(f"{spec.name} {split} labels must be a 1-D integer vector, got {y.dtype} {tuple(y.shape)}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
            raise DataError(
                f"{spec.name} {split} labels span [{int(y.min())}, {int(y.max())}], outside [0, {spec.num_classes - 1}]"
            )


def seeded_split(
    x: Tensor, y: Tensor, *, train_size: int | float | None, test_size: int | float | None, seed: int, name: str
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split one source into train/test with a seeded permutation.

    Sizes are counts or fractions; with neither given, 75% / 25%. With one given, the rest is the other split.
    """
    n = len(x)

    def count(v: int | float | None, what: str) -> int | None:
        if v is None:
            return None
        if isinstance(v, float) and 0 < v < 1:
            return int(round(v * n))
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise DataError(f"{what} must be a positive count or a fraction in (0, 1), got {v!r}")
        return int(v)

    n_train, n_test = count(train_size, "train_size"), count(test_size, "test_size")
    if n_train is None and n_test is None:
        n_test = int(round(0.25 * n))
    if n_train is None:
        n_train = n - n_test  # type: ignore[operator]
    if n_test is None:
        n_test = n - n_train
    if n_train + n_test > n:
        raise DataError(
            f"{name} has {n} samples but train_size + test_size = {n_train + n_test}; lower them"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train : n_train + n_test]
    return x[tr], y[tr], x[te], y[te]


def subset(x: Tensor, y: Tensor, size: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random subset of at most ``size`` samples (all of them when ``size`` is None)."""
    if size is None or size >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size]
    return x[idx], y[idx]


@DATASETS.register("digits")
def load_digits(
    *, train_size: int | float | None = None, test_size: int | float | None = None, seed: int = 0
) -> Data:
    """scikit-learn's 8x8 handwritten digits (1,797 images, shipped with scikit-learn: no download).

    Pixel values 0..16 are scaled to [0, 1]; the single source is split with ``seed``.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    xtr, ytr, xte, yte = seeded_split(x, y, train_size=train_size, test_size=test_size, seed=seed, name="digits")
    spec = DataSpec("digits", (1, 8, 8), 10)
    return Data(xtr, ytr, xte, yte, spec)


def from_tensors(
    x: Tensor,
    y: Tensor,
    *,
    name: str = "tensors",
    num_classes: int | None = None,
    bounds: Sequence[float] = (0.0, 1.0),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Data:
    """Wrap a user's ``(x, y)`` evaluation tensors as :class:`Data` (no training split: train = test)."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise DataError("data must be an (x, y) pair of tensors, a Dataset, or a registered dataset name")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise DataError(f"images must have shape [N, C, H, W] (or [N, H, W]), got {tuple(x.shape)}")
    x = x.detach().to(torch.float32).cpu()
    y = y.detach().to(torch.int64).cpu().reshape(-1)
    k = int(num_classes) if num_classes is not None else int(y.max()) + 1
    spec = DataSpec(
        name,
        tuple(int(s) for s in x.shape[1:]),  # type: ignore[arg-type]
        k,
        bounds=(float(bounds[0]), float(bounds[1])),
        mean=tuple(mean) if mean is not None else None,
        std=tuple(std) if std is not None else None,
    )
    data = Data(x, y, x, y, spec)
    validate(data)
    return data
