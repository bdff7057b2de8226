"""Data sets as in-memory tensors, each describing itself with a :class:`DataSpec`.

Every loader returns a :class:`Data`: float32 images in ``[N, C, H, W]`` inside ``spec.bounds`` and int64
labels in ``[0, num_classes)``. Sources with a single split are split with a seeded permutation
(``train_size`` / ``test_size``). Nothing here downloads unless the user passes ``download=True``.

The package: ``spec`` (what a data set is, the one validator, splits and subsets, :func:`from_tensors`),
``registry`` (:data:`DATASETS` with each loader's bounds and path options, :func:`load_dataset`), ``arrays``
(reading files into tensors), and the built-in sources ``digits``, ``idx`` (IDX, MNIST, Fashion-MNIST),
``cifar`` (CIFAR-10), ``cifar100``, ``svhn``, ``npz``, ``folders`` (image folders) and ``imagenet`` (its layout,
preprocessing and fixed subset), each registering itself.
"""
from __future__ import annotations

from .arrays import read_idx
from .registry import DATASETS, declared_bounds, load_dataset, path_options, required_options
from .spec import (
    SUBSETS, UNIT_RANGE, Data, DataSpec, Split, from_tensors, seeded_split, subset, subset_index, validate,
)
from . import cifar, cifar100, digits, folders, idx, imagenet, npz, svhn  # noqa: E402,F401  (each registers)
from .cifar import load_cifar10
from .cifar100 import load_cifar100
from .digits import load_digits
from .folders import load_imagefolder
from .idx import load_fashion_mnist, load_idx, load_mnist
from .imagenet import load_imagenet
from .npz import load_npz
from .svhn import load_svhn

__all__ = [
    "DATASETS", "SUBSETS", "UNIT_RANGE", "Data", "DataSpec", "Split", "declared_bounds", "from_tensors",
    "load_cifar10", "load_cifar100", "load_dataset", "load_digits", "load_fashion_mnist", "load_idx",
    "load_imagefolder", "load_imagenet", "load_mnist", "load_npz", "load_svhn", "path_options", "read_idx",
    "required_options", "seeded_split", "subset", "subset_index", "validate",
]
