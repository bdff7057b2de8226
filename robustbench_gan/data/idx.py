"""IDX files (the MNIST format) and the MNIST / Fashion-MNIST folders built on them."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError
from .arrays import _first_label, _num_classes, _read_idx_pair, _split
from .registry import DATASETS
from .spec import UNIT_RANGE, Data, DataSpec, _check_labels, _check_pixels

log = logging.getLogger(__name__)



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
