"""The data-set contract, over every registered data set (issue 23): given small files of its format (written here;
nothing downloads), its loader returns Data that passes the one validator, in the bounds its registration declares,
the same for the same seed, and every option naming a file is declared as a path option (so a suite resolves it
against its own folder). A data set registered without an entry below fails here: a new loader brings its files."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from robustbench_gan.data import DATASETS, declared_bounds, load_dataset, path_options, validate

from test_data import make_images, make_labels, write_cifar_python, write_idx, write_mnist_files, write_png


def _idx(tmp: Path) -> dict[str, Any]:
    write_idx(tmp / "x.idx", make_images(40, 8, 8))
    write_idx(tmp / "y.idx", make_labels(40))
    return {"images": str(tmp / "x.idx"), "labels": str(tmp / "y.idx")}


def _mnist(folder: str) -> Callable[[Path], dict[str, Any]]:
    def write(tmp: Path) -> dict[str, Any]:
        write_mnist_files(tmp / folder / "raw", 30, 20)
        return {"root": str(tmp)}
    return write


def _cifar10(tmp: Path) -> dict[str, Any]:
    write_cifar_python(tmp / "cifar-10-batches-py")
    return {"root": str(tmp), "verify": False}


def _cifar100(tmp: Path) -> dict[str, Any]:
    from test_data_cifar100_svhn import write_cifar100

    write_cifar100(tmp / "cifar-100-python")
    return {"root": str(tmp)}


def _svhn(tmp: Path) -> dict[str, Any]:
    from test_data_cifar100_svhn import write_svhn

    write_svhn(tmp)
    return {"root": str(tmp)}


def _imagenet(tmp: Path) -> dict[str, Any]:
    from test_data_cifar100_svhn import write_imagenet

    write_imagenet(tmp / "imagenet", per_class=3)
    return {"root": str(tmp / "imagenet"), "per_class": 2, "resize": 24, "crop": 20}


def _npz(tmp: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    np.savez(tmp / "d.npz", x=rng.uniform(-1, 1, (40, 3, 4, 4)).astype(np.float32), y=make_labels(40, k=4))
    return {"path": str(tmp / "d.npz"), "bounds": [-1, 1]}


def _imagefolder(tmp: Path) -> dict[str, Any]:
    for ci, cls in enumerate(["cat", "dog"]):
        for j in range(4):
            write_png(tmp / "pets" / cls / f"{j}.png", 10 * ci + j)
    return {"root": str(tmp / "pets"), "test_size": 2}


FILES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "digits": lambda tmp: {},
    "idx": _idx,
    "mnist": _mnist("MNIST"),
    "fashion-mnist": _mnist("FashionMNIST"),
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "svhn": _svhn,
    "npz": _npz,
    "imagefolder": _imagefolder,
    "imagenet": _imagenet,
}
"""Per registered data set: write small files of its format under a folder, return the loader's options."""


def test_every_registered_data_set_has_files_here():
    assert sorted(DATASETS.names()) == sorted(FILES), "add a writer for the new data set to FILES"


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_registered_data_set_keeps_the_contract(name: str, tmp_path: Path) -> None:
    options = FILES[name](tmp_path)
    params = inspect.signature(DATASETS.get(name)).parameters
    if "seed" in params:
        options["seed"] = 3
    data = load_dataset(name, **options)
    validate(data)  # float images [N, C, H, W] in the bounds, int64 class indices, both splits non-empty
    assert data.x_train.dtype == torch.float32 and data.y_test.dtype == torch.int64
    assert len(data.test_ids) == len(data.y_test)
    assert declared_bounds(name, options) == data.spec.bounds  # what a suite checks budgets against, unloaded
    again = load_dataset(name, **options)
    assert torch.equal(again.x_test, data.x_test) and torch.equal(again.y_train, data.y_train)
    assert again.fingerprint() == data.fingerprint()
    files = {k for k, v in options.items() if isinstance(v, str) and Path(v).exists()}
    assert files <= set(path_options(name)) <= set(params)
