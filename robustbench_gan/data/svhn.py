"""SVHN (Netzer et al. 2011), the cropped-digits format: ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB v5
files, read with SciPy: no pickled code), ``X`` as [32, 32, 3, N] uint8 and ``y`` as [N, 1] with 10 for the
digit 0."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .arrays import _check_pair, _labels_to_tensor, _two_splits
from .registry import DATASETS
from .spec import UNIT_RANGE, Data, DataSpec, _check_labels

log = logging.getLogger(__name__)

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
MEAN, STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
"""The per-channel mean and std of SVHN's training images, as commonly used."""


def _read_mat(path: Path) -> tuple[Tensor, Tensor]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as exc:  # SciPy raises several types for a file that is not MATLAB v5
        raise DataError(f"'{path}' is not a readable SVHN .mat file ({type(exc).__name__}: {exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"SVHN file '{path}' lacks 'X' or 'y'; it holds: "
                        f"{', '.join(k for k in mat if not k.startswith('__'))}")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"SVHN file '{path}': 'X' must be a [32, 32, 3, N] uint8 array, got {x.dtype} {x.shape}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1))).to(torch.float32) / 255.0
    labels = _labels_to_tensor(y % 10, f"SVHN file '{path}'")  # 10 stands for the digit 0
    _check_labels(labels, f"SVHN file '{path}'", 10, False)
    _check_pair(images, labels, f"{path}:X", f"{path}:y")
    return images, labels


@DATASETS.register("svhn", bounds=UNIT_RANGE, paths=("root",))
def load_svhn(*, root: str = "data", extra: bool = False, train_size: int | float | None = None,
              test_size: int | float | None = None, seed: int = 0) -> Data:
    """SVHN (3x32x32 in [0, 1]) from ``<root>/train_32x32.mat`` and ``test_32x32.mat`` (or a ``svhn`` folder under
    ``root``); ``extra``: add ``extra_32x32.mat``'s 531,131 images to the training split. Labels are the digits
    0-9. ``train_size``/``test_size`` take seeded subsets. Never downloads."""
    if not isinstance(extra, bool):
        raise DataError(f"svhn: extra must be true or false, got {extra!r}")
    base = Path(root).expanduser()
    folder = base if (base / FILES["test"]).is_file() else base / "svhn"
    wanted = ["train", "test"] + (["extra"] if extra else [])
    missing = [FILES[k] for k in wanted if not (folder / FILES[k]).is_file()]
    if missing:
        raise DataError(f"SVHN files not found: '{folder}' lacks {', '.join(missing)} (the cropped-digits format); "
                        "point root at the folder that holds them")
    xtr, ytr = _read_mat(folder / FILES["train"])
    if extra:
        xex, yex = _read_mat(folder / FILES["extra"])
        xtr, ytr = torch.cat([xtr, xex]), torch.cat([ytr, yex])
    xte, yte = _read_mat(folder / FILES["test"])
    log.info("svhn: %d train and %d test images from %s", len(ytr), len(yte), folder)
    parts = _two_splits(xtr, ytr, xte, yte, train_size=train_size, test_size=test_size, seed=seed, name="svhn")
    spec = DataSpec("svhn", (3, 32, 32), 10, class_names=tuple(str(d) for d in range(10)), bounds=(0.0, 1.0),
                    mean=MEAN, std=STD)
    return Data(*parts, spec, test_ids=parts.test_ids)
