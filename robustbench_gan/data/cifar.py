"""CIFAR-10 as people have it on disk (the python or binary batches, a CIFAR-10.1-style .npy pair), read without
running pickled code, or through torchvision with ``download=True``."""
from __future__ import annotations

import logging
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .arrays import _check_pair, _labels_to_tensor, _two_splits
from .registry import DATASETS
from .spec import UNIT_RANGE, Data, DataSpec, _check_labels, seeded_split

log = logging.getLogger(__name__)



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
    """A python-layout CIFAR-10 or CIFAR-100 file as a dict with str keys, unpickled without running pickled code."""
    try:
        with path.open("rb") as f:
            entry = _NumpyOnlyUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:  # corrupt pickles raise many types (UnpicklingError, EOFError, ValueError, ...)
        raise DataError(f"'{path}' is not a readable CIFAR pickle ({type(exc).__name__}: {exc}); "
                        "replace it or remove it from the folder") from None
    if not isinstance(entry, dict):
        raise DataError(f"'{path}' holds a pickled {type(entry).__name__}, not a CIFAR batch dict "
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


def read_python_layout(path: Path, labels: str, what: str) -> tuple[dict[str, Any], Tensor]:
    """A python-layout CIFAR file's entries and its images: ``data`` [N, 3072] uint8 (channel planes) ->
    [N, 3, 32, 32] in [0, 1]; it must hold ``data`` and the ``labels`` key. ``what`` names the file in errors."""
    entry = _read_cifar_pickle(path)
    missing = [k for k in ("data", labels) if k not in entry]
    if missing:
        raise DataError(f"{what} '{path}' lacks {', '.join(repr(k) for k in missing)}; "
                        f"it holds: {', '.join(map(str, entry)) or '(nothing)'}")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {tuple(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{what} '{path}': 'data' must be a [N, 3072] uint8 array, got {got}")
    return entry, torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32)).to(torch.float32) / 255.0


def _read_cifar_python_batch(path: Path) -> tuple[Tensor, Tensor]:
    """One python-layout CIFAR-10 batch."""
    entry, x = read_python_layout(path, "labels", "CIFAR-10 batch")
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
        # the usual CIFAR-10 per-channel mean/std of the training set (RobustBench, torchvision examples)
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
