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

from .core.validation import bounds_pair
from .errors import DataError, RobustBenchError
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


def required_options(name: str) -> list[str]:
    """The options the loader of data set ``name`` cannot do without (``path`` for npz, ``root`` for imagefolder)."""
    import inspect

    params = inspect.signature(DATASETS.get(name)).parameters.values()
    return [p.name for p in params if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]


def load_dataset(name: str, /, **options: Any) -> Data:
    """Load the registered data set ``name``; ``options`` are passed to its loader."""
    loader = DATASETS.get(name)
    DATASETS.check(name, options, noun="option", error=DataError)
    missing = [k for k in required_options(name) if k not in options]
    if missing:
        raise DataError(f"dataset {name!r} needs the option {missing[0]!r}; set it in [data]")
    try:
        data = loader(**options)
    except RobustBenchError:
        raise
    except TypeError as exc:  # an option of the wrong type
        raise DataError(
            f"dataset {name!r}: an option has the wrong type ({exc}); check the values of {', '.join(options)}"
        ) from exc
    except ValueError as exc:  # a loader's own conversion of an option failed
        raise DataError(f"dataset {name!r}: bad option value ({exc}); check the values of {', '.join(options)}") from exc
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
                f"{spec.name} {split} labels span [{int(y.min())}, {int(y.max())}], outside [0, {spec.num_classes - 1}]; "
                f"labels must be class indices 0..{spec.num_classes - 1}"
            )


UNIT_RANGE = (0.0, 1.0)


def declared_bounds(dataset: str, options: dict[str, Any]) -> tuple[float, float] | None:
    """The pixel bounds the loader ``dataset`` will declare for ``options``, known without loading any data: its
    registration's ``bounds`` (a pair, or a function of the options); None when it declares none (a loader
    registered without them). Suites use it to check attack budgets early."""
    if dataset not in DATASETS:
        return None
    bounds = DATASETS.meta(dataset).get("bounds")
    if callable(bounds):
        return bounds(options)
    return None if bounds is None else (float(bounds[0]), float(bounds[1]))


def path_options(dataset: str) -> tuple[str, ...]:
    """The options of ``dataset`` that name files or folders (a suite resolves them against its own folder)."""
    return tuple(DATASETS.meta(dataset).get("paths", ())) if dataset in DATASETS else ()


def _npz_bounds(options: dict[str, Any]) -> tuple[float, float] | None:
    b = options.get("bounds")
    if b is None:
        return UNIT_RANGE
    try:
        return _parse_bounds(b)
    except DataError:
        return None


def _parse_bounds(bounds: Any) -> tuple[float, float]:
    return bounds_pair(bounds, error=DataError)


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


@DATASETS.register("digits", bounds=UNIT_RANGE)
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
    parts = seeded_split(x, y, train_size=train_size, test_size=test_size, seed=seed, name="digits")
    spec = DataSpec("digits", (1, 8, 8), 10)
    return Data(*parts, spec, test_ids=parts.test_ids)


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


# --------------------------------------------------------------------------------------------------
# File-based loaders: IDX, MNIST / Fashion-MNIST, CIFAR-10, .npz, image folders.
# --------------------------------------------------------------------------------------------------

import gzip  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


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


def _size(v: int | float | None, n: int, what: str) -> int | None:
    """A requested split size as a count (fractions in (0, 1) are of ``n``)."""
    if v is None:
        return None
    if isinstance(v, float) and 0 < v < 1:
        return int(round(v * n))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 1:
        raise DataError(f"{what} must be a positive count or a fraction in (0, 1), got {v!r}")
    return int(v)


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


@DATASETS.register("idx", bounds=UNIT_RANGE, paths=("images", "labels", "test_images", "test_labels"))
def load_idx(
    *,
    images: str,
    labels: str,
    test_images: str | None = None,
    test_labels: str | None = None,
    train_size: int | float | None = None,
    test_size: int | float | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    first_label: int = 0,
    name: str = "idx",
) -> Data:
    """Images and labels from IDX files (the MNIST format), plain or gzipped.

    uint8 images are scaled to [0, 1]; ``[N, H, W]`` and ``[N, H, W, C]`` (C = 1 or 3) become NCHW. With
    ``test_images``/``test_labels`` those are the test split (subsampled to the sizes if given); otherwise the
    single source is split with ``seed``. ``num_classes`` defaults to the largest label + 1 (at least 2);
    ``first_label`` is the label of the first class (1 for labels 1..10: they become 0..9).
    """
    if (test_images is None) != (test_labels is None):
        raise DataError("idx: give both test_images and test_labels, or neither")
    x, y = _read_idx_pair(images, labels)
    xt = yt = None
    if test_images is not None and test_labels is not None:
        xt, yt = _read_idx_pair(test_images, test_labels)
        if xt.shape[1:] != x.shape[1:]:
            raise DataError(
                f"idx: test images have shape {tuple(xt.shape[1:])} but train images {tuple(x.shape[1:])}; they must match"
            )
    if num_classes is None or first_label:
        y, yt = _first_label(first_label, f"IDX file '{labels}'", y, yt)  # type: ignore[assignment]
    k = _num_classes(num_classes, y, *(() if yt is None else (yt,)))
    fix = "rescale the images: IDX pixels must be uint8 (0..255, scaled to [0, 1]) or floats in [0, 1]"
    for file, xs in ((images, x), (test_images, xt)):
        if xs is not None:
            _check_pixels(xs, f"IDX file '{file}':", (0.0, 1.0), fix)
    for file, ys in ((labels, y), (test_labels, yt)):
        if ys is not None:
            _check_labels(ys, f"IDX file '{file}':", k, num_classes is not None)
    parts = _split(x, y, xt, yt, train_size=train_size, test_size=test_size, seed=seed, name=name)
    spec = DataSpec(name, tuple(int(s) for s in x.shape[1:]), k, bounds=(0.0, 1.0))  # type: ignore[arg-type]
    return Data(*parts, spec, test_ids=parts.test_ids)


# torchvision class name, spec name, class names (empty: "0".."9")
_MNIST_LIKE: dict[str, tuple[str, tuple[str, ...]]] = {
    "MNIST": ("mnist", ()),
    "FashionMNIST": (
        "fashion-mnist",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_mnist_like(
    cls_name: str, *, root: str, download: bool, train_size: int | float | None, test_size: int | float | None,
    seed: int,
) -> Data:
    import torchvision.datasets as tvd

    name, classes = _MNIST_LIKE[cls_name]
    base = Path(root).expanduser()
    spec = DataSpec(name, (1, 28, 28), 10, class_names=classes, bounds=(0.0, 1.0))

    def finish(xtr: Tensor, ytr: Tensor, xte: Tensor | None, yte: Tensor | None) -> Data:
        parts = _split(xtr, ytr, xte, yte, train_size=train_size, test_size=test_size, seed=seed, name=name)
        return Data(*parts, spec, test_ids=parts.test_ids)

    def via_torchvision(dl: bool) -> Data:
        cls = getattr(tvd, cls_name)
        tr, te = cls(str(base), train=True, download=dl), cls(str(base), train=False, download=dl)
        x = [d.data.unsqueeze(1).to(torch.float32) / 255.0 for d in (tr, te)]
        y = [torch.as_tensor(d.targets, dtype=torch.int64) for d in (tr, te)]
        log.info("%s: read torchvision files under %s", name, base / cls_name / "raw")
        return finish(x[0], y[0], x[1], y[1])

    # 1. torchvision's own layout (<root>/<Class>/raw/ with the four unpacked files)
    try:
        return via_torchvision(False)
    except RuntimeError:
        pass
    # 2. IDX files (plain or gzipped) in <root>/<Class>/raw or directly in <root>
    for folder in (base / cls_name / "raw", base):
        found = {
            split: (_find_idx(folder, f"{split}-images-idx3-ubyte"), _find_idx(folder, f"{split}-labels-idx1-ubyte"))
            for split in ("train", "t10k")
        }
        pairs = {s: p for s, p in found.items() if p[0] is not None and p[1] is not None}
        if not pairs:
            continue
        log.info("%s: reading IDX files in %s (%s)", name, folder, ", ".join(pairs))
        loaded = {s: _read_idx_pair(*p) for s, p in pairs.items()}  # type: ignore[arg-type]
        if len(loaded) == 2:
            return finish(*loaded["train"], *loaded["t10k"])
        (only,) = loaded.values()
        return finish(only[0], only[1], None, None)
    # 3. download if allowed
    if download:
        try:
            return via_torchvision(True)
        except Exception as exc:  # network or archive errors
            raise DataError(f"downloading {cls_name} into '{base}' failed: {exc}") from None
    raise DataError(
        f"{cls_name} files not found under '{base}' (torchvision expects {base}/{cls_name}/raw/"
        "train-images-idx3-ubyte etc., or put the IDX files directly in root); "
        "pass download=true or point root at a folder that has them"
    )


@DATASETS.register("mnist", bounds=UNIT_RANGE, paths=("root",))
def load_mnist(
    *, root: str = "data", download: bool = False, train_size: int | float | None = None,
    test_size: int | float | None = None, seed: int = 0,
) -> Data:
    """MNIST digits (1x28x28 in [0, 1]) from torchvision's layout under ``root`` or IDX files directly in it.

    With only the t10k pair present, that single source is split with ``seed``; with both splits,
    ``train_size``/``test_size`` take seeded subsets. Downloads only with ``download=True``.
    """
    return _load_mnist_like("MNIST", root=root, download=download, train_size=train_size, test_size=test_size, seed=seed)


@DATASETS.register("fashion-mnist", bounds=UNIT_RANGE, paths=("root",))
def load_fashion_mnist(
    *, root: str = "data", download: bool = False, train_size: int | float | None = None,
    test_size: int | float | None = None, seed: int = 0,
) -> Data:
    """Fashion-MNIST (1x28x28 in [0, 1], 10 clothing classes); same layouts and options as ``mnist``."""
    return _load_mnist_like(
        "FashionMNIST", root=root, download=download, train_size=train_size, test_size=test_size, seed=seed
    )


import pickle  # noqa: E402
from functools import lru_cache  # noqa: E402
from typing import NamedTuple  # noqa: E402

_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR10_FOLDERS = ("", "cifar-10-batches-py", "cifar-10-batches-bin")
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_RECORD = 1 + 3 * 32 * 32  # binary layout: one label byte, then the red, green and blue 32x32 planes
_CIFAR10_LAYOUTS = {
    "python": "the python layout (data_batch_1..5, test_batch)",
    "binary": "the binary layout (data_batch_1..5.bin, test_batch.bin)",
    "npy": "a CIFAR-10.1-style .npy pair (*_data.npy, *_labels.npy)",
}
_VERIFY_FALSE = "set verify = false in [data] (Python: load_dataset('cifar10', root=..., verify=False))"


class _CifarFiles(NamedTuple):
    """The CIFAR-10 files found in one folder: the layout, the train files and the test files."""

    kind: str
    folder: Path
    train: list[Path]
    test: list[Path]


@lru_cache(maxsize=1)
def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR-10 batch pickle may name: what rebuilding numpy arrays and scalars needs."""
    import codecs

    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]

    def latin1(text: str, encoding: str = "latin1") -> bytes:  # protocol 2 writes Python 3 bytes this way
        if encoding.lower().replace("-", "") != "latin1":
            raise DataError(f"a pickled byte string uses the encoding {encoding!r}, not latin1; the file is refused")
        return codecs.encode(text, "latin1")

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): latin1}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: any other global is refused, so no pickled code runs."""

    def __init__(self, file: Any, source: Path) -> None:
        super().__init__(file, encoding="bytes")  # the official files were pickled by Python 2
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        found = _numpy_pickle_globals().get((module, name))
        if found is None:
            raise DataError(
                f"'{self.source}' holds other pickled objects than numpy arrays ({module}.{name}) and is refused for "
                "safety; re-save the batch as plain arrays (a dict of a uint8 array and a list of ints)"
            )
        return found


def _read_cifar_pickle(path: Path) -> dict[str, Any]:
    """A python-layout CIFAR-10 file as a dict with str keys, unpickled without running any pickled code."""
    try:
        with path.open("rb") as f:
            entry = _NumpyOnlyUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:  # corrupt pickles raise many types (UnpicklingError, EOFError, ValueError, ...)
        raise DataError(f"'{path}' is not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc}); "
                        "replace it or remove it from the folder") from None
    if not isinstance(entry, dict):
        raise DataError(f"'{path}' holds a pickled {type(entry).__name__}, not a CIFAR-10 batch dict "
                        "with 'data' and 'labels'")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _cifar_labels(labels: Any, source: str) -> Tensor:
    """CIFAR-10 labels (a list or array of class indices) as an int64 vector, checked to lie in 0..9."""
    try:
        arr = np.asarray(labels)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: labels are not a list of integers ({exc})") from None
    y = _labels_to_tensor(arr, source)
    _check_labels(y, source, len(_CIFAR10_CLASSES), False)
    return y


def _read_cifar_python_batch(path: Path) -> tuple[Tensor, Tensor]:
    """One python-layout batch: ``data`` [N, 3072] uint8 (channel planes) -> [N, 3, 32, 32] in [0, 1]."""
    entry = _read_cifar_pickle(path)
    missing = [k for k in ("data", "labels") if k not in entry]
    if missing:
        raise DataError(f"CIFAR-10 batch '{path}' lacks {', '.join(repr(k) for k in missing)}; "
                        f"it holds: {', '.join(map(str, entry)) or '(nothing)'}")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {tuple(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"CIFAR-10 batch '{path}': 'data' must be a [N, 3072] uint8 array, got {got}")
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32)).to(torch.float32) / 255.0
    y = _cifar_labels(entry["labels"], f"CIFAR-10 batch '{path}'")
    _check_pair(x, y, f"{path}:data", f"{path}:labels")
    return x, y


def _read_cifar_binary_batch(path: Path) -> tuple[Tensor, Tensor]:
    """One binary-layout batch: records of 1 label byte + 3072 pixel bytes."""
    raw = path.read_bytes()
    if not raw or len(raw) % _CIFAR10_RECORD:
        raise DataError(f"CIFAR-10 binary file '{path}' has {len(raw)} bytes, not a positive multiple of "
                        f"{_CIFAR10_RECORD} (1 label byte + 3072 pixel bytes per image); "
                        "it is truncated or not CIFAR-10")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR10_RECORD)
    x = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy()).to(torch.float32) / 255.0
    return x, _cifar_labels(records[:, 0], f"CIFAR-10 binary file '{path}'")


def _read_cifar_npy_pair(data_path: Path) -> tuple[Tensor, Tensor]:
    """A CIFAR-10.1-style pair: ``*_data.npy`` [N, 32, 32, 3] uint8 and ``*_labels.npy`` [N]."""
    labels_path = data_path.with_name(data_path.name[: -len("_data.npy")] + "_labels.npy")
    arrays = []
    for p in (data_path, labels_path):
        try:
            arrays.append(np.load(p, allow_pickle=False))
        except (ValueError, OSError) as exc:
            raise DataError(f"'{p}' is not a readable .npy file of plain numbers ({exc}); "
                            "pickles are refused") from None
    data, labels = arrays
    if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3):
        raise DataError(f"'{data_path}' must hold [N, 32, 32, 3] uint8 images, got {data.dtype} {tuple(data.shape)}")
    x = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2))).to(torch.float32) / 255.0
    y = _cifar_labels(labels, f"'{labels_path}'")
    _check_pair(x, y, str(data_path), str(labels_path))
    return x, y


def _npy_pairs(folder: Path) -> list[Path]:
    """The ``*_data.npy`` files of ``folder`` that have a matching ``*_labels.npy``."""
    return sorted(p for p in folder.glob("*_data.npy")
                  if p.is_file() and p.with_name(p.name[: -len("_data.npy")] + "_labels.npy").is_file())


def _find_cifar10(root: Path) -> _CifarFiles | None:
    """The first CIFAR-10 layout (python, binary, then .npy pair) under ``root`` or its batches folders."""
    folders = [f for f in dict.fromkeys(root / sub for sub in _CIFAR10_FOLDERS) if f.is_dir()]
    for kind, suffix in (("python", ""), ("binary", ".bin")):
        for folder in folders:
            train = [folder / f"{n}{suffix}" for n in _CIFAR10_TRAIN if (folder / f"{n}{suffix}").is_file()]
            test = [folder / f"test_batch{suffix}"] if (folder / f"test_batch{suffix}").is_file() else []
            if train or test:
                return _CifarFiles(kind, folder, train, test)
    for folder in folders:
        pairs = _npy_pairs(folder)
        if len(pairs) > 1:
            raise DataError(f"'{folder}' holds several .npy pairs ({', '.join(p.name for p in pairs)}); "
                            "keep one pair in the folder (or point root at a folder with just one)")
        if pairs:
            return _CifarFiles("npy", folder, [], pairs)
    return None


def _cifar10_class_names(found: _CifarFiles) -> tuple[str, ...]:
    """Class names from ``batches.meta`` (python) or ``batches.meta.txt`` (binary), else CIFAR-10's ten."""
    names: list[str] = []
    if found.kind == "python" and (found.folder / "batches.meta").is_file():
        meta = _read_cifar_pickle(found.folder / "batches.meta")
        raw = meta.get("label_names", [])
        names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in raw]
    elif found.kind == "binary" and (found.folder / "batches.meta.txt").is_file():
        names = [line.strip() for line in (found.folder / "batches.meta.txt").read_text().splitlines() if line.strip()]
    else:
        return _CIFAR10_CLASSES
    if len(names) != len(_CIFAR10_CLASSES):
        meta_file = "batches.meta" if found.kind == "python" else "batches.meta.txt"
        raise DataError(f"'{found.folder / meta_file}' lists {len(names)} class names but CIFAR-10 has 10; "
                        "fix the file or remove it (the standard names are used then)")
    return tuple(names)


def _cifar10_spec(class_names: Sequence[str]) -> DataSpec:
    return DataSpec(
        "cifar10", (3, 32, 32), 10, class_names=tuple(class_names), bounds=(0.0, 1.0),
        # Common CIFAR-10 per-channel mean/std of the training set (as used e.g. by RobustBench and torchvision examples).
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    )


def _load_cifar10_unverified(
    found: _CifarFiles, *, train_size: int | float | None, test_size: int | float | None, seed: int,
) -> Data:
    """Read the files ``found`` as they are (no MD5 check); a single split is split with ``seed``."""
    read = {"python": _read_cifar_python_batch, "binary": _read_cifar_binary_batch, "npy": _read_cifar_npy_pair}
    splits = []
    for files in (found.train, found.test):
        parts = [read[found.kind](f) for f in files]
        splits.append((torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])) if parts else None)
    train, test = splits
    log.info("cifar10: reading %s in %s without MD5 check (%s)", found.kind, found.folder,
             ", ".join(f.name for f in found.train + found.test))
    spec = _cifar10_spec(_cifar10_class_names(found))
    if train is not None and test is not None:
        parts = _two_splits(*train, *test, train_size=train_size, test_size=test_size, seed=seed, name="cifar10")
        return Data(*parts, spec, test_ids=parts.test_ids)
    which, (x, y) = ("train", train) if train is not None else ("test", test)  # type: ignore[misc]
    log.info("cifar10: '%s' has a %s split only; splitting its %d images with seed %d (train_size/test_size)",
             found.folder, which, len(x), seed)
    parts = seeded_split(x, y, train_size=train_size, test_size=test_size, seed=seed, name="cifar10")
    return Data(*parts, spec, test_ids=parts.test_ids)


def _cifar10_unreadable(root: Path, base: Path) -> DataError:
    """The error for a folder torchvision refused: MD5 mismatch, another layout, or no files at all."""
    found = _find_cifar10(root)
    if found is not None and found.kind == "python":
        return DataError(f"CIFAR-10 files under '{found.folder}' fail torchvision's MD5 check (not the official "
                         f"download: re-packed or a subset?); {_VERIFY_FALSE} to read them as they are")
    if found is not None:
        return DataError(f"CIFAR-10 files under '{found.folder}' are {_CIFAR10_LAYOUTS[found.kind]}, which "
                         f"torchvision's MD5-checked loader does not read; {_VERIFY_FALSE} to read them as they are")
    return DataError(
        f"CIFAR-10 files not found under '{base}' (torchvision expects {base}/cifar-10-batches-py/data_batch_1 "
        "etc., checked by MD5); pass download=true or point root at a folder that has them"
    )


@DATASETS.register("cifar10", bounds=UNIT_RANGE, paths=("root",))
def load_cifar10(
    *, root: str = "data", download: bool = False, verify: bool = True, train_size: int | float | None = None,
    test_size: int | float | None = None, seed: int = 0,
) -> Data:
    """CIFAR-10 (3x32x32 in [0, 1]) via torchvision from ``<root>/cifar-10-batches-py``.

    ``root`` may also be the ``cifar-10-batches-py`` folder itself. Downloads only with ``download=True``.
    With ``verify=False`` the files are read as they are (no MD5 check), from the first layout found in
    ``root``, ``root/cifar-10-batches-py`` or ``root/cifar-10-batches-bin``: the python layout (any subset of
    ``data_batch_1..5``, ``test_batch``; pickles holding anything but numpy arrays are refused), the binary
    layout (``*.bin``), or a CIFAR-10.1-style ``*_data.npy``/``*_labels.npy`` test pair. A single split is
    split with ``seed``; with both, ``train_size``/``test_size`` take seeded subsets.
    """
    import torchvision.datasets as tvd

    if not isinstance(verify, bool):
        raise DataError(f"cifar10: verify must be true or false, got {verify!r}")
    root_path = Path(root).expanduser()
    if not verify:
        found = _find_cifar10(root_path)
        if found is not None:
            return _load_cifar10_unverified(found, train_size=train_size, test_size=test_size, seed=seed)
        if not download:
            looked = ", ".join(f"'{root_path / sub}'" if sub else f"'{root_path}'" for sub in _CIFAR10_FOLDERS)
            raise DataError(f"CIFAR-10 files not found (verify = false) in {looked}: looked for "
                            f"{', '.join(list(_CIFAR10_LAYOUTS.values())[:-1])} or {_CIFAR10_LAYOUTS['npy']}; "
                            "point root at a folder that has them")
    base = root_path
    if base.name == tvd.CIFAR10.base_folder and not (base / tvd.CIFAR10.base_folder).exists():
        base = base.parent
    try:
        tr = tvd.CIFAR10(str(base), train=True, download=download)
        te = tvd.CIFAR10(str(base), train=False, download=download)
    except RuntimeError as exc:
        if download:
            raise DataError(f"CIFAR-10 under '{base}' could not be downloaded or read: {exc}") from None
        raise _cifar10_unreadable(root_path, base) from None
    except Exception as exc:  # network or archive errors while downloading
        raise DataError(f"downloading CIFAR-10 into '{base}' failed: {exc}") from None

    def conv(ds: Any) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2)))
        return x.to(torch.float32) / 255.0, torch.as_tensor(ds.targets, dtype=torch.int64)

    parts = _two_splits(*conv(tr), *conv(te), train_size=train_size, test_size=test_size, seed=seed, name="cifar10")
    return Data(*parts, _cifar10_spec(tr.classes), test_ids=parts.test_ids)


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


def _is_image_folder(folder: Path) -> bool:
    return folder.is_dir() and any(c.is_dir() for c in folder.iterdir())


def _read_image_folder(
    folder: Path, size: tuple[int, int] | None, grayscale: bool
) -> tuple[Tensor, Tensor, list[str]]:
    from PIL import Image
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"image folder '{folder}': {exc} (expected one subfolder of images per class)") from None
    mode = "L" if grayscale else "RGB"
    arrays, first = [], None
    for path, _ in ds.samples:
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                if size is not None:
                    im = im.resize((size[1], size[0]), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except OSError as exc:
            raise DataError(f"cannot read image '{path}': {exc}") from None
        if first is None:
            first = (path, a.shape)
        elif a.shape != first[1]:
            raise DataError(
                f"images differ in size: '{first[0]}' is {first[1][1]}x{first[1][0]} but '{path}' is "
                f"{a.shape[1]}x{a.shape[0]}; set image_size to resize them all"
            )
        arrays.append(a)
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32) / 255.0
    return xt, torch.tensor([t for _, t in ds.samples], dtype=torch.int64), list(ds.classes)


@DATASETS.register("imagefolder", bounds=UNIT_RANGE, paths=("root",))
def load_imagefolder(
    *,
    root: str,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool = False,
    train_size: int | float | None = None,
    test_size: int | float | None = None,
    seed: int = 0,
) -> Data:
    """Images in one subfolder per class (class names = folder names), read with PIL into [0, 1].

    Images are converted to RGB (or L with ``grayscale``) and resized to ``image_size`` (int or ``[h, w]``)
    if given; otherwise they must all share one size. If ``root`` has ``train/`` and ``test/`` image folders
    those are the splits; otherwise the single folder is split with ``seed``.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"image folder '{base}' not found; point root at a folder with one subfolder per class")
    size: tuple[int, int] | None
    if image_size is None:
        size = None
    elif isinstance(image_size, int) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    else:
        vals = list(image_size)  # type: ignore[arg-type]
        if len(vals) != 2 or not all(isinstance(v, int) and v > 0 for v in vals):
            raise DataError(f"image_size must be an int or [height, width], got {image_size!r}")
        size = (vals[0], vals[1])
    if size is not None and min(size) < 1:
        raise DataError(f"image_size must be positive, got {image_size!r}")
    name = base.name or "imagefolder"
    if _is_image_folder(base / "train") and _is_image_folder(base / "test"):
        xtr, ytr, classes = _read_image_folder(base / "train", size, grayscale)
        xte, yte, test_classes = _read_image_folder(base / "test", size, grayscale)
        if test_classes != classes:
            raise DataError(
                f"'{base}/train' has classes {classes} but '{base}/test' has {test_classes}; use the same class folders"
            )
        if xte.shape[1:] != xtr.shape[1:]:
            raise DataError(
                f"train images are {tuple(xtr.shape[2:])} but test images {tuple(xte.shape[2:])}; set image_size"
            )
        parts = _two_splits(xtr, ytr, xte, yte, train_size=train_size, test_size=test_size, seed=seed, name=name)
    else:
        x, y, classes = _read_image_folder(base, size, grayscale)
        parts = seeded_split(x, y, train_size=train_size, test_size=test_size, seed=seed, name=name)
    spec = DataSpec(
        name, tuple(int(s) for s in parts[0].shape[1:]), max(len(classes), 1),  # type: ignore[arg-type]
        class_names=tuple(classes), bounds=(0.0, 1.0),
    )
    return Data(*parts, spec, test_ids=parts.test_ids)
