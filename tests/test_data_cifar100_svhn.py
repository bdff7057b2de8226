"""CIFAR-100 and SVHN from files the tests write in their published formats (issue 24): the python layout of
``cifar-100-python`` (fine and coarse labels, class names from ``meta``) and SVHN's cropped-digits .mat files
(10 standing for the digit 0); a foreign pickle is refused, missing files are one line naming them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_gan.data import load_dataset
from robustbench_gan.errors import DataError
from test_data import write_pickle


def write_cifar100(folder: Path, n_train: int = 30, n_test: int = 12) -> dict[str, tuple[np.ndarray, list, list]]:
    """``train``, ``test`` and ``meta`` as the official python layout has them (protocol-2 pickles, bytes keys)."""
    rng = np.random.default_rng(7)
    splits = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        coarse = [f // 5 for f in fine]
        write_pickle(folder / name, {b"filenames": [], b"batch_label": name.encode(), b"fine_labels": fine,
                                     b"coarse_labels": coarse, b"data": x})
        splits[name] = (x, fine, coarse)
    write_pickle(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    return splits


def write_svhn(folder: Path, n_train: int = 25, n_test: int = 10, extra: int = 0) -> dict[str, tuple]:
    from scipy.io import savemat

    rng = np.random.default_rng(3)
    out = {}
    for name, n in (("train", n_train), ("test", n_test), ("extra", extra)):
        if not n:
            continue
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 1..10, 10 for the digit 0
        folder.mkdir(parents=True, exist_ok=True)
        savemat(str(folder / f"{name}_32x32.mat"), {"X": x, "y": y})
        out[name] = (x, y)
    return out


def test_cifar100_fine_and_coarse_labels_and_pixels(tmp_path):
    splits = write_cifar100(tmp_path / "cifar-100-python")
    d = load_dataset("cifar100", root=str(tmp_path))
    assert (len(d.x_train), len(d.x_test), d.spec.num_classes, d.spec.shape) == (30, 12, 100, (3, 32, 32))
    assert d.y_train.tolist() == splits["train"][1] and d.spec.class_names[42] == "f42"
    x_test = splits["test"][0]
    assert float(d.x_test[4, 2, 5, 17]) == x_test[4, 2 * 1024 + 5 * 32 + 17] / np.float32(255)
    coarse = load_dataset("cifar100", root=str(tmp_path / "cifar-100-python"), labels="coarse")
    assert coarse.spec.num_classes == 20 and coarse.y_test.tolist() == splits["test"][2]
    assert coarse.spec.class_names[:2] == ("c0", "c1") and torch.equal(coarse.x_test, d.x_test)
    with pytest.raises(DataError, match="labels must be 'fine' or 'coarse'"):
        load_dataset("cifar100", root=str(tmp_path), labels="super")


def test_cifar100_refuses_a_foreign_pickle_and_names_missing_files(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    write_cifar100(tmp_path / "cifar-100-python")
    write_pickle(tmp_path / "cifar-100-python" / "test", {b"data": Evil(), b"fine_labels": []})
    with pytest.raises(DataError, match="holds other pickled objects than numpy arrays"):
        load_dataset("cifar100", root=str(tmp_path))
    with pytest.raises(DataError, match="lacks train and test .*cifar-100-python/train, test, meta"):
        load_dataset("cifar100", root=str(tmp_path / "nowhere"))


def test_svhn_reads_the_mat_files_with_ten_as_zero(tmp_path):
    files = write_svhn(tmp_path / "svhn", extra=5)
    d = load_dataset("svhn", root=str(tmp_path))
    x, y = files["train"]
    assert (len(d.x_train), len(d.x_test), d.spec.shape) == (25, 10, (3, 32, 32))
    assert d.y_train.tolist() == [int(v) % 10 for v in y[:, 0]] and 0 in d.y_train.tolist() + d.y_test.tolist()
    assert float(d.x_train[3, 1, 7, 20]) == x[7, 20, 1, 3] / np.float32(255)  # [H, W, C, N] -> [N, C, H, W]
    more = load_dataset("svhn", root=str(tmp_path / "svhn"), extra=True)
    assert len(more.x_train) == 30 and torch.equal(more.x_train[:25], d.x_train)
    with pytest.raises(DataError, match="lacks extra_32x32.mat"):
        write_svhn(tmp_path / "two", extra=0)
        load_dataset("svhn", root=str(tmp_path / "two"), extra=True)


def test_svhn_rejects_a_file_of_another_shape(tmp_path):
    from scipy.io import savemat

    write_svhn(tmp_path)
    savemat(str(tmp_path / "test_32x32.mat"), {"X": np.zeros((28, 28, 1, 4), np.uint8), "y": np.ones((4, 1))})
    with pytest.raises(DataError, match=r"'X' must be a \[32, 32, 3, N\] uint8 array"):
        load_dataset("svhn", root=str(tmp_path))


@pytest.mark.slow
def test_a_cifar100_suite_runs_end_to_end(tmp_path, suite_file):
    """A suite file names the folder; a model trains and is attacked on it."""
    from robustbench_gan.run import run_suite

    write_cifar100(tmp_path / "data" / "cifar-100-python", n_train=60, n_test=20)
    suite = suite_file(data={"dataset": "cifar100", "root": "data", "labels": "coarse"},
                       models=[{"name": "logistic", "arch": "logistic", "epochs": 1}],
                       evaluation={"n": 20}, transfer={"sources": "none"})
    table = run_suite(suite, progress=False, cache=False).table
    assert list(table["dataset"].unique()) == ["cifar100"] and len(table) == 1
    assert (table["robust_accuracy"] <= table["clean_accuracy"]).all()


def write_imagenet(root: Path, classes: tuple[str, ...] = ("n01440764", "n01443537", "n01484850"),
                   per_class: int = 4) -> None:
    """JPEGs of varied sizes and aspect ratios under val/<wnid>/, named as ImageNet's are."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, wnid in enumerate(classes):
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = (300, 260) if i % 2 else (280, 400)
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "val" / wnid / f"ILSVRC2012_val_{c * 100 + 10 - i:08d}.JPEG")


def test_imagenet_folder_standard_preprocessing_and_fixed_subset(tmp_path):
    from PIL import Image
    from torchvision import transforms

    write_imagenet(tmp_path)
    d = load_dataset("imagenet", root=str(tmp_path), per_class=2)
    assert d.spec.shape == (3, 224, 224) and d.spec.num_classes == 3 and d.spec.mean == (0.485, 0.456, 0.406)
    assert d.y_test.tolist() == [0, 0, 1, 1, 2, 2] and d.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    first = sorted((tmp_path / "val" / "n01440764").iterdir())[0]  # file-name order, not creation order
    with Image.open(first) as im:
        expected = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                       transforms.ToTensor()])(im.convert("RGB"))
    assert torch.equal(d.x_test[0], expected) and d.test_ids.tolist() == [0, 1, 4, 5, 8, 9]
    with pytest.raises(DataError, match="crop \\(64\\) must not exceed resize \\(32\\)"):
        load_dataset("imagenet", root=str(tmp_path), resize=32, crop=64)
    with pytest.raises(DataError, match="training split is empty"):
        load_dataset("imagenet", root=str(tmp_path), per_class=4)


@pytest.mark.slow
def test_an_imagenet_style_suite_runs_end_to_end(tmp_path, suite_file):
    from robustbench_gan.run import run_suite

    write_imagenet(tmp_path / "imagenet")
    suite = suite_file(data={"dataset": "imagenet", "root": "imagenet", "per_class": 2, "resize": 20, "crop": 16},
                       models=[{"name": "logistic", "arch": "logistic", "epochs": 1}],
                       evaluation={"n": 6}, transfer={"sources": "none"})
    table = run_suite(suite, progress=False, cache=False).table
    assert list(table["dataset"]) == ["imagenet"] and int(table["n"].iloc[0]) == 6
