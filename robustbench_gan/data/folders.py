"""Image folders (one sub-folder per class), read with Pillow."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .arrays import _two_splits
from .registry import DATASETS
from .spec import UNIT_RANGE, Data, DataSpec, seeded_split


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
