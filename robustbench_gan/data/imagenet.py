"""ImageNet-style folders: ``<root>/val/<class>/*.JPEG`` (and ``train/`` if present), preprocessed the standard
way (shorter side resized to 256, centre crop 224, as torchvision's and RobustBench's evaluations do) and
evaluated on a fixed, documented subset: the first ``per_class`` images of each class in file-name order (5 per
class: 5,000 of the 50,000 validation images, RobustBench's number)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError
from .registry import DATASETS
from .spec import UNIT_RANGE, Data, DataSpec

log = logging.getLogger(__name__)

EXTENSIONS = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".webp")


def _images(folder: Path) -> tuple[list[str], list[list[Path]]]:
    """Class names (sub-folder names, sorted) and each class's image files in file-name order."""
    classes = sorted(c.name for c in folder.iterdir() if c.is_dir())
    if not classes:
        raise DataError(f"ImageNet folder '{folder}' has no class sub-folders; expected {folder}/<class>/<image>")
    files = [sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in EXTENSIONS) for c in classes]
    return classes, files


def _read(paths: list[Path], resize: int, crop: int) -> Tensor:
    from PIL import Image
    from torchvision import transforms

    pipeline = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor()])
    out = torch.empty(len(paths), 3, crop, crop)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                out[i] = pipeline(im.convert("RGB"))
        except OSError as exc:
            raise DataError(f"cannot read image '{path}': {exc}") from None
    return out


@DATASETS.register("imagenet", bounds=UNIT_RANGE, paths=("root",))
def load_imagenet(*, root: str, per_class: int = 5, resize: int = 256, crop: int = 224) -> Data:
    """ImageNet (or any folder in its layout) preprocessed to 3 x ``crop`` x ``crop`` in [0, 1].

    The test split is the first ``per_class`` images of each class of ``<root>/val`` in file-name order (a fixed
    subset: the same files on every machine). The training split is ``<root>/train`` when it exists, else the
    validation images outside that subset (to fine-tune or to train a substitute; evaluation never sees them).
    """
    for name, value in (("per_class", per_class), ("resize", resize), ("crop", crop)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"imagenet: {name} must be a positive integer, got {value!r}")
    if crop > resize:
        raise DataError(f"imagenet: crop ({crop}) must not exceed resize ({resize})")
    base = Path(root).expanduser()
    if not (base / "val").is_dir():
        raise DataError(f"ImageNet folder '{base / 'val'}' not found; point root at the folder holding val/<class>/")
    classes, files = _images(base / "val")
    test = [(f, c) for c, fs in enumerate(files) for f in fs[:per_class]]
    if (base / "train").is_dir():
        train_classes, train_files = _images(base / "train")
        if train_classes != classes:
            raise DataError(f"'{base}/train' and '{base}/val' have different class folders; use the same classes")
        train = [(f, c) for c, fs in enumerate(train_files) for f in fs]
    else:
        train = [(f, c) for c, fs in enumerate(files) for f in fs[per_class:]]
    short = [classes[i] for i, fs in enumerate(files) if len(fs) < per_class]
    if short:
        log.warning("imagenet: %d classes have fewer than %d validation images (%s...)", len(short), per_class,
                    ", ".join(short[:3]))
    if not train or not test:
        raise DataError(f"ImageNet folder '{base}': the {'training' if not train else 'test'} split is empty; add "
                        "images (or a train/ folder), or lower per_class")
    log.info("imagenet: %d test images (%d per class of %d), %d training images, %dx%d", len(test), per_class,
             len(classes), len(train), crop, crop)
    x_train, x_test = _read([f for f, _ in train], resize, crop), _read([f for f, _ in test], resize, crop)
    y_train = torch.tensor([c for _, c in train], dtype=torch.int64)
    y_test = torch.tensor([c for _, c in test], dtype=torch.int64)
    spec = DataSpec("imagenet", (3, crop, crop), len(classes), class_names=tuple(classes), bounds=(0.0, 1.0),
                    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    offsets = [0]
    for fs in files:
        offsets.append(offsets[-1] + len(fs))
    test_ids = torch.tensor([offsets[c] + i for c, fs in enumerate(files) for i in range(min(per_class, len(fs)))])
    return Data(x_train, y_train, x_test, y_test, spec, test_ids=test_ids)  # ids: positions in val/, sorted
