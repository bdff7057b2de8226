"""Data sets as in-memory tensors, each describing itself with a :class:`DataSpec`.

Every loader returns a :class:`Data`: float32 images in ``[N, C, H, W]`` inside ``spec.bounds`` and int64
labels in ``[0, num_classes)``. Sources with a single split are split with a seeded permutation
(``train_size`` / ``test_size``). Nothing here downloads unless the user passes ``download=True``.

The package: ``spec`` (what a data set is, the one validator, splits and subsets, :func:`from_tensors`),
``registry`` (:data:`DATASETS` with each loader's bounds and path options, :func:`load_dataset`), ``arrays``
(reading files into tensors), and the built-in sources ``digits``, ``idx`` (IDX, MNIST, Fashion-MNIST),
``cifar`` (CIFAR-10), ``npz`` and ``folders`` (image folders), each registering itself.
"""
from __future__ import annotations

from .arrays import read_idx
from .registry import DATASETS, declared_bounds, load_dataset, path_options, required_options
from .spec import (
    SUBSETS, UNIT_RANGE, Data, DataSpec, Split, from_tensors, seeded_split, subset, subset_index, validate,
)
from . import cifar, digits, folders, idx, npz  # noqa: E402,F401  (each registers its loaders)
from .cifar import load_cifar10
from .digits import load_digits
from .folders import load_imagefolder
from .idx import load_fashion_mnist, load_idx, load_mnist
from .npz import load_npz

__all__ = [
    "DATASETS", "SUBSETS", "UNIT_RANGE", "Data", "DataSpec", "Split", "declared_bounds", "from_tensors",
    "load_cifar10", "load_dataset", "load_digits", "load_fashion_mnist", "load_idx", "load_imagefolder",
    "load_mnist", "load_npz", "path_options", "read_idx", "required_options", "seeded_split", "subset",
    "subset_index", "validate",
]
