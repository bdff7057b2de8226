"""CIFAR-100 (Krizhevsky 2009) as the python layout people have on disk: ``cifar-100-python/{train,test,meta}``,
read with the numpy-only unpickler of :mod:`.cifar` (a pickle naming anything but numpy arrays is refused), with
the 100 fine labels or the 20 coarse ones."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import DataError
from .arrays import _check_pair, _labels_to_tensor, _two_splits
from .cifar import _read_cifar_pickle, read_python_layout
from .registry import DATASETS
from .spec import UNIT_RANGE, Data, DataSpec, _check_labels

log = logging.getLogger(__name__)

FOLDER = "cifar-100-python"
LABELS = {"fine": ("fine_labels", "fine_label_names", 100), "coarse": ("coarse_labels", "coarse_label_names", 20)}
MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
"""The per-channel mean and std of CIFAR-100's training images, as commonly used."""


def _read_split(path: Path, key: str, classes: int) -> tuple[Tensor, Tensor]:
    entry, x = read_python_layout(path, key, "CIFAR-100 file")
    y = _labels_to_tensor(np.asarray(entry[key]), f"CIFAR-100 file '{path}'")
    _check_labels(y, f"CIFAR-100 file '{path}' ({key})", classes, False)
    _check_pair(x, y, f"{path}:data", f"{path}:{key}")
    return x, y


def _class_names(folder: Path, key: str, classes: int) -> tuple[str, ...]:
    meta = folder / "meta"
    if not meta.is_file():
        return tuple(str(i) for i in range(classes))
    names: Any = _read_cifar_pickle(meta).get(key)
    if not isinstance(names, list) or len(names) != classes:
        raise DataError(f"CIFAR-100 '{meta}': {key!r} is not a list of {classes} names; fix or remove the file")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


@DATASETS.register("cifar100", bounds=UNIT_RANGE, paths=("root",))
def load_cifar100(*, root: str = "data", labels: str = "fine", train_size: int | float | None = None,
                  test_size: int | float | None = None, seed: int = 0) -> Data:
    """CIFAR-100 (3x32x32 in [0, 1]) from ``<root>/cifar-100-python`` (or that folder itself): ``train`` and
    ``test``, and ``meta`` for the class names when present. ``labels``: ``fine`` (100 classes) or ``coarse``
    (the 20 superclasses). ``train_size``/``test_size`` take seeded subsets. Never downloads."""
    if labels not in LABELS:
        raise DataError(f"cifar100: labels must be 'fine' or 'coarse', got {labels!r}")
    key, names_key, classes = LABELS[labels]
    base = Path(root).expanduser()
    folder = base if (base / "train").is_file() else base / FOLDER
    missing = [name for name in ("train", "test") if not (folder / name).is_file()]
    if missing:
        raise DataError(f"CIFAR-100 files not found: '{folder}' lacks {' and '.join(missing)} (the python layout: "
                        f"{FOLDER}/train, test, meta); point root at the folder that holds {FOLDER}")
    xtr, ytr = _read_split(folder / "train", key, classes)
    xte, yte = _read_split(folder / "test", key, classes)
    log.info("cifar100: %d train and %d test images from %s (%s labels)", len(ytr), len(yte), folder, labels)
    parts = _two_splits(xtr, ytr, xte, yte, train_size=train_size, test_size=test_size, seed=seed, name="cifar100")
    spec = DataSpec("cifar100", (3, 32, 32), classes, class_names=_class_names(folder, names_key, classes),
                    bounds=(0.0, 1.0), mean=MEAN, std=STD)
    return Data(*parts, spec, test_ids=parts.test_ids)
