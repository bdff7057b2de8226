"""What a data set is: :class:`DataSpec` (shape, classes, bounds, normalisation) and :class:`Data` (the tensors),
the one pixel and label validator, seeded splits and subsets, and :func:`from_tensors` for a user's own tensors."""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import DataError

log = logging.getLogger(__name__)


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
    input_bounds: tuple[float, float] | None = None
    """The range a model expects when it differs from ``bounds`` (see :class:`~robustbench_gan.Classifier`)."""

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
            **({"input_bounds": list(self.input_bounds)} if self.input_bounds is not None else {}),
        }


@dataclass
class Data:
    """A train/test pair of tensors plus their spec. ``test_ids`` is where each test sample sits in the source as
    the user gave it (the file, the array, the tensors; default: its position in ``x_test``): the ``sample_id``
    of per-sample results, so they line up with the user's own data and with other tools."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    spec: DataSpec
    _fingerprint: str | None = field(default=None, repr=False, compare=False)
    test_ids: Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.test_ids is None:
            self.test_ids = torch.arange(len(self.y_test))

    def fingerprint(self) -> str:
        """A content hash of the tensors and spec (used to key caches)."""
        if self._fingerprint is None:
            h = hashlib.sha256(repr(self.spec.as_dict()).encode())
            for t in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().cpu().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


def validate(data: Data) -> None:
    """Raise :class:`DataError` if images or labels break the spec (shape, bounds, NaN, label range): the checks
    every loader's output passes, with the pixel and label checks the file loaders use on their sources."""
    spec = data.spec
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(spec.shape):
            raise DataError(
                f"{spec.name} {split} images have shape {tuple(x.shape)}, expected [N, {', '.join(map(str, spec.shape))}]"
            )
        if len(x) != len(y):
            raise DataError(f"{spec.name} {split}: {len(x)} images but {len(y)} labels; give one label per image")
        if len(x) == 0:
            raise DataError(f"{spec.name} {split} split is empty; check train_size/test_size and the source files")
        _check_pixels(x, f"{spec.name} {split}", spec.bounds, "rescale the images or declare matching bounds")
        if y.dtype != torch.int64 or y.ndim != 1:
            raise DataError(f"{spec.name} {split} labels must be a 1-D integer vector, got {y.dtype} {tuple(y.shape)}")
        _check_labels(y, f"{spec.name} {split}", spec.num_classes, given=False)


UNIT_RANGE = (0.0, 1.0)


def _check_pixels(x: Tensor, source: str, bounds: tuple[float, float], fix: str) -> None:
    """Raise DataError naming ``source`` if images hold NaN/inf or values outside ``bounds``."""
    if not len(x):
        return
    if not torch.isfinite(x).all():
        raise DataError(f"{source} contains NaN or infinite pixel values; clean the data first (e.g. np.nan_to_num) "
                        "or drop those images")
    lo, hi = bounds
    xmin, xmax = float(x.min()), float(x.max())
    if xmin < lo - 1e-6 or xmax > hi + 1e-6:
        raise DataError(f"{source} pixel values span [{xmin:.4g}, {xmax:.4g}], outside the declared bounds "
                        f"[{lo:g}, {hi:g}]; {fix}")


def _check_labels(y: Tensor, source: str, k: int, given: bool) -> None:
    """Raise DataError naming ``source`` unless every label is a class index in ``[0, k)``."""
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
        hint = f"; raise num_classes (now {k}) or fix the labels" if given else ""
        raise DataError(f"{source} labels span [{int(y.min())}, {int(y.max())}], outside [0, {k - 1}]; "
                        f"labels must be class indices 0..{k - 1}{hint}")


class Split(tuple):
    """``(x_train, y_train, x_test, y_test)`` and, as ``test_ids``, where each test sample sits in its source."""

    test_ids: Tensor

    def __new__(cls, parts: Sequence[Tensor], test_ids: Tensor) -> "Split":
        out = super().__new__(cls, parts)
        out.test_ids = test_ids
        return out


def seeded_split(
    x: Tensor, y: Tensor, *, train_size: int | float | None, test_size: int | float | None, seed: int, name: str
) -> Split:
    """Split one source into train/test with a seeded permutation.

    Sizes are counts or fractions; with neither given, 75% / 25%. With one given, the rest is the other split.
    """
    n = len(x)

    def count(v: int | float | None, what: str) -> int | None:
        return _size(v, n, what)

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
    return Split((x[tr], y[tr], x[te], y[te]), te)


SUBSETS = ("first", "random")


def subset_index(n: int, size: int | None, seed: int, how: str = "random") -> Tensor:
    """Positions of at most ``size`` of ``n`` samples: the first ``size`` (``how="first"``, as RobustBench and
    papers evaluate ``x_test[:n]``) or a seeded random subset (``"random"``); all of them when ``size`` is None."""
    if how not in SUBSETS:
        raise DataError(f"subset must be one of {', '.join(SUBSETS)}, got {how!r}")
    if size is None or size >= n:
        return torch.arange(n)
    if how == "first":
        return torch.arange(size)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


def subset(x: Tensor, y: Tensor, size: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random subset of at most ``size`` samples (all of them when ``size`` is None)."""
    idx = subset_index(len(x), size, seed)
    return x[idx], y[idx]


def _size(v: int | float | None, n: int, what: str) -> int | None:
    """A requested split size as a count (fractions in (0, 1) are of ``n``)."""
    if v is None:
        return None
    if isinstance(v, float) and 0 < v < 1:
        return int(round(v * n))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 1:
        raise DataError(f"{what} must be a positive count or a fraction in (0, 1), got {v!r}")
    return int(v)


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
    """Wrap a user's ``(x, y)`` evaluation tensors as :class:`Data` (no training split: train = test).

    uint8 images with the default ``bounds`` (0, 1) are scaled to [0, 1] (``x / 255``, as torchvision's
    ``ToTensor`` does); with ``bounds=(0, 255)`` they keep their values."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise DataError("data must be an (x, y) pair of tensors, a Dataset, or a registered dataset name")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise DataError(f"images must have shape [N, C, H, W] (or [N, H, W]), got {tuple(x.shape)}")
    _check_channels_first(x)
    lo, hi = float(bounds[0]), float(bounds[1])
    scale = x.dtype == torch.uint8 and (lo, hi) == (0.0, 1.0)
    x = x.detach().to(torch.float32).cpu()
    if scale:
        x = x / 255.0
        log.info("uint8 images scaled to [0, 1] (x / 255), as torchvision's ToTensor does; for a model trained on "
                 "0..255 values pass bounds=(0, 255)")
    y = _class_indices(y.detach().cpu(), len(x))
    if len(y) != len(x):
        raise DataError(f"{len(x)} images but {len(y)} labels; give one label per image")
    if len(y) and int(y.min()) < 0:
        raise DataError(f"evaluation labels include {int(y.min())}; labels must be class indices 0..K-1")
    if len(x) and bool(torch.isfinite(x).all()):
        xmin, xmax = float(x.min()), float(x.max())
        if xmin < 0 <= lo:
            fix = ("they look normalized: pass images in pixel space and give mean=... and std=... (the wrapper "
                   "normalizes, so attacks perturb pixels)")
        elif hi <= 1.0 and 25.0 < xmax <= 255.0:  # 0..255 grey levels
            fix = ("if your model takes inputs in [0, 1], pass x / 255; if it was trained on 0..255 values, pass "
                   "bounds=(0, 255) and eps in 0..255 units")
        else:
            fix = f"rescale them or pass bounds=({math.floor(xmin):g}, {math.ceil(xmax):g}) if the model takes those"
        _check_pixels(x, "evaluation images:", (lo, hi), fix)
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


def _check_channels_first(x: Tensor) -> None:
    """Refuse channels-last images ``[N, H, W, C]`` (C = 1, 3 or 4 after a larger spatial axis) in one line that
    says how to fix them, before any model sees them."""
    c, h, w = (int(s) for s in x.shape[1:])
    if w in (1, 3, 4) and c not in (1, 3, 4) and h > 4 and c > 4:
        raise DataError(f"images have shape {tuple(x.shape)}, which looks channels-last [N, H, W, C]; the toolkit "
                        f"takes [N, C, H, W]: pass x.permute(0, 3, 1, 2) (NumPy: x.transpose(0, 3, 1, 2))")


def _class_indices(y: Tensor, n: int) -> Tensor:
    """Labels as a 1-D int64 vector of class indices; one-hot rows ``[n, K]`` become their argmax."""
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        one_hot = bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all())
        if not one_hot:
            raise DataError(f"labels have shape {tuple(y.shape)} but are not one-hot rows; give class indices "
                            "(a 1-D vector) or one-hot rows")
        return y.argmax(1).to(torch.int64)
    if y.is_floating_point() and not bool((y == y.round()).all()):
        raise DataError("labels must be integer class indices, got fractional values")
    return y.to(torch.int64).reshape(-1)
