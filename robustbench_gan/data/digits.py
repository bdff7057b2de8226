"""scikit-learn's 8x8 digits: the embedded default data set (no download, no file)."""
from __future__ import annotations

import torch

from .registry import DATASETS
from .spec import UNIT_RANGE, Data, DataSpec, seeded_split


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
