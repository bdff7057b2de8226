"""Tests of the data loaders: every file is written into tmp_path by the test itself (no downloads)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_gan.data import (
    DATASETS,
    Data,
    DataSpec,
    from_tensors,
    load_dataset,
    load_idx,
    load_npz,
    read_idx,
    seeded_split,
    validate,
)
from robustbench_gan.errors import ConfigError, DataError

SHARED_MNIST = Path(__file__).parents[2] / "shared/data/mnist-t10k"

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, _CODES[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_images(n: int, *shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def make_labels(n: int, k: int = 10, seed: int = 1) -> np.ndarray:
    y = np.arange(n, dtype=np.uint8) % k
    return np.random.default_rng(seed).permutation(y)


def ids(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_all_types(tmp_path: Path, gz: bool) -> None:
    for dt in _CODES:
        arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dt)
        if dt == np.uint8:
            arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) + 200
        got = read_idx(write_idx(tmp_path / f"a-{dt}.idx", arr, gz=gz))
        assert got.dtype == dt and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_3d_values_and_labels_round_trip(tmp_path: Path, gz: bool) -> None:
    imgs, labs = make_images(40, 5, 6), make_labels(40)
    ext = ".gz" if gz else ""
    d = load_dataset(
        "idx", images=str(write_idx(tmp_path / f"img{ext}", imgs, gz)),
        labels=str(write_idx(tmp_path / f"lab{ext}", labs, gz)), seed=3,
    )
    assert d.spec.shape == (1, 5, 6) and d.spec.num_classes == 10
    assert d.spec.class_names == tuple(str(i) for i in range(10))
    assert (len(d.y_train), len(d.y_test)) == (30, 10)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    # every loaded image is exactly some source image / 255 with the matching label
    src = {(imgs[i].astype(np.float32) / 255).tobytes(): int(labs[i]) for i in range(40)}
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        for xi, yi in zip(x, y):
            assert src[xi[0].numpy().tobytes()] == int(yi)
    assert ids(d.x_train).isdisjoint(ids(d.x_test))
    assert float(d.x_train.max()) <= 1.0 and float(d.x_train.min()) >= 0.0


def test_idx_4d_nhwc_becomes_nchw_and_uses_test_files(tmp_path: Path) -> None:
    imgs, labs = make_images(6, 4, 5, 3), make_labels(6, k=3)
    timgs, tlabs = make_images(4, 4, 5, 3, seed=9), make_labels(4, k=3)
    # `name` cannot pass through load_dataset (its own first parameter), so call the loader directly
    d = load_idx(
        images=str(write_idx(tmp_path / "i", imgs)), labels=str(write_idx(tmp_path / "l", labs)),
        test_images=str(write_idx(tmp_path / "ti", timgs, gz=True)),
        test_labels=str(write_idx(tmp_path / "tl", tlabs, gz=True)), name="mine",
    )
    assert d.spec.name == "mine" and d.spec.shape == (3, 4, 5)
    assert len(d.x_train) == 6 and len(d.x_test) == 4
    # no shuffling without sizes: order and channel layout preserved exactly
    torch.testing.assert_close(d.x_train, torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255, rtol=0, atol=0)
    torch.testing.assert_close(d.x_test[2, 1, 3, 4], torch.tensor(timgs[2, 3, 4, 1] / 255, dtype=torch.float32))
    assert d.y_test.tolist() == tlabs.tolist()
    sub = load_dataset(
        "idx", images=str(tmp_path / "i"), labels=str(tmp_path / "l"),
        test_images=str(tmp_path / "ti"), test_labels=str(tmp_path / "tl"), train_size=4, test_size=2,
    )
    assert (len(sub.x_train), len(sub.x_test)) == (4, 2)
    assert ids(sub.x_train) <= ids(d.x_train) and ids(sub.x_test) <= ids(d.x_test)


def test_idx_num_classes_default_and_override(tmp_path: Path) -> None:
    imgs = make_images(8, 2, 2)
    i = str(write_idx(tmp_path / "i", imgs))
    zeros = str(write_idx(tmp_path / "z", np.zeros(8, dtype=np.uint8)))
    assert load_dataset("idx", images=i, labels=zeros).spec.num_classes == 2  # at least 2
    assert load_dataset("idx", images=i, labels=zeros, num_classes=7).spec.num_classes == 7
    big = str(write_idx(tmp_path / "b", np.full(8, 5, dtype=np.uint8)))
    with pytest.raises(DataError, match="outside"):
        load_dataset("idx", images=i, labels=big, num_classes=3)


def test_idx_missing_file(tmp_path: Path) -> None:
    lab = str(write_idx(tmp_path / "l", make_labels(4)))
    missing = tmp_path / "nope-images-idx3-ubyte"
    with pytest.raises(DataError, match="nope-images-idx3-ubyte.*not found"):
        load_dataset("idx", images=str(missing), labels=lab)


def test_idx_bad_magic(tmp_path: Path) -> None:
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 16)
    with pytest.raises(DataError, match=r"bad\.idx.*magic"):
        read_idx(bad)
    notype = tmp_path / "notype.idx"
    notype.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="notype.idx"):
        read_idx(notype)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path: Path, gz: bool) -> None:
    data = idx_bytes(make_images(5, 3, 3))
    short = data[:-7]
    p = tmp_path / "short.idx"
    p.write_bytes(gzip.compress(short) if gz else short)
    with pytest.raises(DataError, match=r"short\.idx.*truncated"):
        read_idx(p)
    header_only = tmp_path / "head.idx"
    header_only.write_bytes(data[:6])
    with pytest.raises(DataError, match=r"head\.idx.*truncated"):
        read_idx(header_only)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gzip.compress(data)[:-10])
    with pytest.raises(DataError, match=r"broken\.gz"):
        read_idx(broken_gz)


def test_idx_count_mismatch(tmp_path: Path) -> None:
    i = str(write_idx(tmp_path / "i", make_images(5, 3, 3)))
    lab = str(write_idx(tmp_path / "l", make_labels(4)))
    with pytest.raises(DataError, match="5 images.*4 labels"):
        load_dataset("idx", images=i, labels=lab)


# ---------------------------------------------------------------- seeded split


def test_seeded_split_deterministic_and_disjoint(tmp_path: Path) -> None:
    imgs, labs = make_images(50, 3, 3), make_labels(50)
    kw = dict(images=str(write_idx(tmp_path / "i", imgs)), labels=str(write_idx(tmp_path / "l", labs)))
    a = load_dataset("idx", seed=1, train_size=30, test_size=15, **kw)
    b = load_dataset("idx", seed=1, train_size=30, test_size=15, **kw)
    c = load_dataset("idx", seed=2, train_size=30, test_size=15, **kw)
    assert (len(a.x_train), len(a.x_test)) == (30, 15)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert not torch.equal(a.x_train, c.x_train)
    assert ids(a.x_train).isdisjoint(ids(a.x_test))
    frac = load_dataset("idx", seed=0, test_size=0.2, **kw)
    assert (len(frac.x_train), len(frac.x_test)) == (40, 10)
    with pytest.raises(DataError, match="lower them"):
        load_dataset("idx", train_size=40, test_size=20, **kw)
    with pytest.raises(DataError, match="train_size"):
        seeded_split(torch.zeros(4, 1, 1, 1), torch.zeros(4), train_size=-1, test_size=None, seed=0, name="t")


# ---------------------------------------------------------------- MNIST / Fashion-MNIST


def write_mnist_files(folder: Path, n_train: int, n_test: int, gz: bool = False) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": make_images(n_train, 28, 28, seed=1),
        "train-labels-idx1-ubyte": make_labels(n_train, seed=2),
        "t10k-images-idx3-ubyte": make_images(n_test, 28, 28, seed=3),
        "t10k-labels-idx1-ubyte": make_labels(n_test, seed=4),
    }
    for stem, arr in arrays.items():
        write_idx(folder / f"{stem}{ext}", arr, gz)
    return arrays


@pytest.mark.parametrize("dataset, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_torchvision_layout(tmp_path: Path, dataset: str, folder: str) -> None:
    arrays = write_mnist_files(tmp_path / folder / "raw", 12, 6)
    d = load_dataset(dataset, root=str(tmp_path))
    assert d.spec.name == dataset and d.spec.shape == (1, 28, 28) and d.spec.bounds == (0.0, 1.0)
    assert (len(d.x_train), len(d.x_test)) == (12, 6)
    torch.testing.assert_close(
        d.x_test[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255, rtol=0, atol=0
    )
    assert d.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    if dataset == "fashion-mnist":
        assert d.spec.class_names[0] == "T-shirt/top" and d.spec.class_names[9] == "Ankle boot"
    else:
        assert d.spec.class_names == tuple(str(i) for i in range(10))
    sub = load_dataset(dataset, root=str(tmp_path), train_size=5, test_size=3, seed=4)
    assert (len(sub.x_train), len(sub.x_test)) == (5, 3)
    assert ids(sub.x_train) <= ids(d.x_train)


def test_mnist_root_of_gz_idx_files(tmp_path: Path) -> None:
    arrays = write_mnist_files(tmp_path, 10, 4, gz=True)
    d = load_dataset("mnist", root=str(tmp_path))
    assert (len(d.x_train), len(d.x_test)) == (10, 4)
    assert d.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_t10k_only_is_split(tmp_path: Path) -> None:
    write_mnist_files(tmp_path, 1, 20)
    for f in tmp_path.glob("train-*"):
        f.unlink()
    d = load_dataset("mnist", root=str(tmp_path), train_size=12, test_size=8, seed=5)
    assert (len(d.x_train), len(d.x_test)) == (12, 8)
    assert ids(d.x_train).isdisjoint(ids(d.x_test))


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_torchvision_data_without_download(tmp_path: Path, dataset: str) -> None:
    with pytest.raises(DataError, match="not found.*download=true"):
        load_dataset(dataset, root=str(tmp_path / "empty"), download=False)


def test_cifar10_conversion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torchvision.datasets as tvd

    rng = np.random.default_rng(0)
    data = {True: rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
            False: rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)}

    class FakeCIFAR10:
        base_folder = "cifar-10-batches-py"

        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            self.data = data[train]
            self.targets = list(range(len(self.data)))
            self.classes = [f"c{i}" for i in range(10)]

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    d = load_dataset("cifar10", root=str(tmp_path))
    assert d.spec.shape == (3, 32, 32) and d.spec.class_names[3] == "c3"
    assert d.spec.mean == (0.4914, 0.4822, 0.4465) and d.spec.std == (0.2470, 0.2435, 0.2616)
    assert d.x_train[1, 2, 5, 7] == torch.tensor(data[True][1, 5, 7, 2], dtype=torch.float32) / 255
    assert d.y_test.tolist() == [0, 1, 2, 3]


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST t10k folder not present")
def test_shared_mnist_t10k() -> None:
    d = load_dataset("mnist", root=str(SHARED_MNIST), train_size=8000, test_size=2000)
    assert (len(d.x_train), len(d.x_test)) == (8000, 2000)
    assert d.spec.shape == (1, 28, 28) and d.x_train.shape[1:] == (1, 28, 28)
    assert set(d.y_train.unique().tolist()) == set(range(10))


# ---------------------------------------------------------------- npz


@pytest.mark.parametrize(
    "shape, expected",
    [((10, 6, 5), (1, 6, 5)), ((10, 6, 5, 3), (3, 6, 5)), ((10, 3, 6, 5), (3, 6, 5)), ((10, 6, 5, 1), (1, 6, 5))],
)
def test_npz_layouts(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    y = make_labels(10, k=4)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = load_dataset("npz", path=str(tmp_path / "d.npz"), train_size=10 - 3, test_size=3)
    assert d.spec.shape == expected and d.spec.num_classes == 4
    if len(shape) == 4 and shape[-1] in (1, 3):
        ref = torch.from_numpy(x).permute(0, 3, 1, 2)
    else:
        ref = torch.from_numpy(x).reshape(10, *expected)
    src = {(ref[i].float() / 255).numpy().tobytes(): int(y[i]) for i in range(10)}
    for xi, yi in zip(torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test])):
        assert src[xi.numpy().tobytes()] == int(yi)


def test_npz_float_with_test_split_and_bounds(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 5 * 3 * 4 * 4, dtype=np.float32).reshape(5, 3, 4, 4)  # C=3 first: NCHW
    np.savez(tmp_path / "f.npz", x=x, y=np.array([0, 1, 2, 0, 1]), x_test=x[:2], y_test=np.array([1, 2]))
    with pytest.raises(DataError, match="outside the declared bounds"):
        load_dataset("npz", path=str(tmp_path / "f.npz"))
    d = load_npz(path=str(tmp_path / "f.npz"), bounds=[-1, 1], name="floats")
    assert d.spec.bounds == (-1.0, 1.0) and d.spec.shape == (3, 4, 4) and d.spec.name == "floats"
    assert torch.equal(d.x_train, torch.from_numpy(x)) and d.y_test.tolist() == [1, 2]


def test_npz_missing_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "k.npz", images=np.zeros((2, 3, 3)), y=np.zeros(2))
    with pytest.raises(DataError, match="lacks 'x'.*holds: images, y"):
        load_dataset("npz", path=str(tmp_path / "k.npz"))


def test_npz_object_array_refused(tmp_path: Path) -> None:
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = [1, 2], {"a": 1}
    np.savez(tmp_path / "o.npz", x=obj, y=np.zeros(2))
    with pytest.raises(DataError, match="pickle"):
        load_dataset("npz", path=str(tmp_path / "o.npz"))


def test_npz_missing_file_and_count_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset("npz", path=str(tmp_path / "absent.npz"))
    np.savez(tmp_path / "m.npz", x=np.zeros((3, 2, 2), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="3 images.*4 labels"):
        load_dataset("npz", path=str(tmp_path / "m.npz"))


# ---------------------------------------------------------------- image folders


def write_png(path: Path, value: int, size: tuple[int, int] = (6, 4), mode: str = "RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    color = (value, 255 - value, value // 2) if mode == "RGB" else value
    Image.new(mode, size, color).save(path)


def test_imagefolder_single_source(tmp_path: Path) -> None:
    for ci, cls in enumerate(["cat", "dog"]):
        for j in range(4):
            write_png(tmp_path / "pets" / cls / f"{j}.png", 10 * ci + j)
    d = load_dataset("imagefolder", root=str(tmp_path / "pets"), test_size=2)
    assert d.spec.class_names == ("cat", "dog") and d.spec.shape == (3, 4, 6)
    assert (len(d.x_train), len(d.x_test)) == (6, 2)
    for x, y in zip(torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test])):
        v = round(float(x[0, 0, 0]) * 255)
        assert v // 10 == int(y)
        assert float(x[1, 3, 5]) == pytest.approx((255 - v) / 255, abs=1e-7)
    g = load_dataset("imagefolder", root=str(tmp_path / "pets"), grayscale=True, image_size=[3, 5])
    assert g.spec.shape == (1, 3, 5)


def test_imagefolder_train_test_and_resize(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b", "c"):
            for j in range(n):
                write_png(tmp_path / split / cls / f"{j}.png", 50, size=(5 + j, 5), mode="L")
    with pytest.raises(DataError, match="set image_size"):
        load_dataset("imagefolder", root=str(tmp_path))
    d = load_dataset("imagefolder", root=str(tmp_path), image_size=8, grayscale=True)
    assert d.spec.shape == (1, 8, 8) and (len(d.x_train), len(d.x_test)) == (9, 6)
    assert d.spec.class_names == ("a", "b", "c")
    assert torch.allclose(d.x_train, torch.full_like(d.x_train, 50 / 255))


def test_imagefolder_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset("imagefolder", root=str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- validation, registry, digits


def test_from_tensors_and_validate_errors() -> None:
    x, y = torch.rand(4, 1, 3, 3), torch.tensor([0, 1, 2, 1])
    d = from_tensors(x, y)
    assert d.spec.num_classes == 3 and torch.equal(d.x_test, x)
    with pytest.raises(DataError, match=r"outside the declared bounds \[0, 1\]; rescale"):
        from_tensors(x * 3, y)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        from_tensors(bad, y)
    with pytest.raises(DataError, match=r"labels span \[0, 2\], outside \[0, 1\]"):
        from_tensors(x, y, num_classes=2)
    spec = DataSpec("t", (1, 3, 3), 3)
    with pytest.raises(DataError, match="labels span"):
        validate(Data(x, y, x, torch.tensor([0, 1, 2, -1]), spec))
    with pytest.raises(DataError, match="shape"):
        validate(Data(x, y, torch.rand(4, 1, 2, 2), y, spec))


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'digits'"):
        load_dataset("digit")


def test_unknown_loader_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no option 'colour'"):
        load_dataset("digits", colour=True)
    with pytest.raises(DataError, match="has no option 'bogus'"):
        load_dataset("npz", path=str(tmp_path / "x.npz"), bogus=1)


def test_digits() -> None:
    d = load_dataset("digits")
    assert len(d.x_train) + len(d.x_test) == 1797
    assert (len(d.x_train), len(d.x_test)) == (1348, 449)
    assert d.spec.shape == (1, 8, 8) and d.spec.bounds == (0.0, 1.0) and d.spec.num_classes == 10
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0
    again, other = load_dataset("digits"), load_dataset("digits", seed=1)
    assert torch.equal(d.y_train, again.y_train) and not torch.equal(d.y_train, other.y_train)


def test_registry_has_loaders() -> None:
    assert {"idx", "mnist", "fashion-mnist", "cifar10", "npz", "imagefolder", "digits"} <= set(DATASETS.names())


# ---------------------------------------------------------------- CIFAR-10 folders read as they are (verify = false)


def cifar_batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def write_pickle(path: Path, obj: object, protocol: int = 2) -> None:
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar_python(folder: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A re-packed python-layout folder: 2 train batches of 20, a test batch of 10, Python-2-style bytes keys."""
    batches = {"data_batch_1": cifar_batch(20, 1), "data_batch_2": cifar_batch(20, 2), "test_batch": cifar_batch(10, 3)}
    for name, (x, y) in batches.items():
        write_pickle(folder / name, {b"batch_label": name.encode(), b"labels": y, b"data": x, b"filenames": []})
    write_pickle(folder / "batches.meta", {b"label_names": [f"k{i}".encode() for i in range(10)], b"num_vis": 3072})
    return batches


def test_cifar10_repacked_python_layout_reads_with_verify_false(tmp_path: Path) -> None:
    batches = write_cifar_python(tmp_path / "cifar-10-batches-py")
    d = load_dataset("cifar10", root=str(tmp_path), verify=False)
    assert (len(d.x_train), len(d.x_test)) == (40, 10) and d.spec.name == "cifar10"
    assert d.spec.shape == (3, 32, 32) and d.spec.class_names[3] == "k3"
    assert d.spec.mean == (0.4914, 0.4822, 0.4465) and d.spec.std == (0.2470, 0.2435, 0.2616)
    x_train = np.concatenate([batches["data_batch_1"][0], batches["data_batch_2"][0]])
    assert d.y_train.tolist() == batches["data_batch_1"][1] + batches["data_batch_2"][1]
    assert d.y_test.tolist() == batches["test_batch"][1]
    for i, c, h, w in ((0, 0, 0, 0), (5, 1, 7, 30), (39, 2, 31, 31), (22, 2, 3, 9)):
        assert float(d.x_train[i, c, h, w]) == x_train[i, c * 1024 + h * 32 + w] / np.float32(255)
    assert float(d.x_test[9, 1, 2, 3]) == batches["test_batch"][0][9, 1024 + 2 * 32 + 3] / np.float32(255)
    torch.testing.assert_close(d.x_train, torch.from_numpy(x_train).reshape(-1, 3, 32, 32).float() / 255)
    same = load_dataset("cifar10", root=str(tmp_path / "cifar-10-batches-py"), verify=False)  # the batches folder
    assert torch.equal(same.x_test, d.x_test)


def test_cifar10_repacked_folder_with_verify_names_the_md5_check(tmp_path: Path) -> None:
    write_cifar_python(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DataError, match="fail torchvision's MD5 check") as info:
        load_dataset("cifar10", root=str(tmp_path))
    assert "verify = false" in str(info.value) and "not found" not in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_malicious_pickle_is_refused(tmp_path: Path, protocol: int) -> None:
    import os

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch '{marker}'",)

    folder = tmp_path / "cifar-10-batches-py"
    x, y = cifar_batch(4, 0)
    write_pickle(folder / "data_batch_1", {b"data": x, b"labels": y}, protocol)
    write_pickle(folder / "test_batch", {b"data": Evil(), b"labels": y}, protocol)
    with pytest.raises(DataError, match=r"holds other pickled objects.*refused for safety") as info:
        load_dataset("cifar10", root=str(tmp_path), verify=False)
    assert "system" in str(info.value) and not marker.exists()


def test_cifar10_test_batch_only_is_split_with_seed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x, y = cifar_batch(30, 5)
    write_pickle(tmp_path / "test_batch", {"data": x, "labels": np.array(y)}, protocol=4)  # str keys, array labels
    with caplog.at_level("INFO", logger="robustbench_gan.data"):
        d = load_dataset("cifar10", root=str(tmp_path), verify=False, train_size=20, test_size=10, seed=2)
    assert (len(d.x_train), len(d.x_test)) == (20, 10) and ids(d.x_train).isdisjoint(ids(d.x_test))
    assert d.spec.class_names[0] == "airplane" and d.spec.class_names[9] == "truck"
    assert "test split only" in caplog.text
    again = load_dataset("cifar10", root=str(tmp_path), verify=False, train_size=20, test_size=10, seed=2)
    assert torch.equal(again.x_train, d.x_train)


def cifar_records(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    x, y = cifar_batch(n, seed)
    labels = np.asarray(y, dtype=np.uint8)
    return np.concatenate([labels[:, None], x], axis=1).tobytes(), x, labels


def test_cifar10_binary_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    raw_tr, x_tr, y_tr = cifar_records(7, 1)
    raw_te, x_te, y_te = cifar_records(5, 2)
    (folder / "data_batch_3.bin").write_bytes(raw_tr)
    (folder / "test_batch.bin").write_bytes(raw_te)
    (folder / "batches.meta.txt").write_text("\n".join(f"b{i}" for i in range(10)) + "\n\n")
    d = load_dataset("cifar10", root=str(tmp_path), verify=False)
    assert d.spec.class_names[9] == "b9" and d.y_train.tolist() == y_tr.tolist() and d.y_test.tolist() == y_te.tolist()
    torch.testing.assert_close(d.x_train, torch.from_numpy(x_tr).reshape(-1, 3, 32, 32).float() / 255, rtol=0, atol=0)
    assert float(d.x_test[4, 2, 31, 0]) == x_te[4, 2048 + 31 * 32] / np.float32(255)
    with pytest.raises(DataError, match="binary layout.*verify = false"):
        load_dataset("cifar10", root=str(tmp_path))


def test_cifar10_binary_file_of_wrong_size(tmp_path: Path) -> None:
    raw, _, _ = cifar_records(2, 0)
    (tmp_path / "test_batch.bin").write_bytes(raw[:-1])
    with pytest.raises(DataError, match=r"test_batch\.bin' has 6145 bytes, not a positive multiple of 3073") as info:
        load_dataset("cifar10", root=str(tmp_path), verify=False)
    assert "\n" not in str(info.value)


def test_cifar10_1_npy_pair(tmp_path: Path) -> None:
    x = make_images(12, 32, 32, 3, seed=4)
    y = make_labels(12, seed=5).astype(np.int64)
    np.save(tmp_path / "cifar10.1_v6_data.npy", x)
    np.save(tmp_path / "cifar10.1_v6_labels.npy", y)
    d = load_dataset("cifar10", root=str(tmp_path), verify=False, train_size=8, test_size=4, seed=1)
    assert (len(d.x_train), len(d.x_test)) == (8, 4)
    src = {(torch.from_numpy(x[i]).permute(2, 0, 1).float() / 255).numpy().tobytes(): int(y[i]) for i in range(12)}
    for xi, yi in zip(torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test])):
        assert src[xi.numpy().tobytes()] == int(yi)
    assert len(ids(torch.cat([d.x_train, d.x_test]))) == 12


def test_cifar10_verify_false_lists_what_it_looked_for(tmp_path: Path) -> None:
    looked = r"not found \(verify = false\).*cifar-10-batches-bin.*test_batch\.bin.*_labels"
    with pytest.raises(DataError, match=looked):
        load_dataset("cifar10", root=str(tmp_path), verify=False)
    with pytest.raises(DataError, match="verify must be true or false"):
        load_dataset("cifar10", root=str(tmp_path), verify="false")


def test_cifar10_verify_false_in_a_suite(tmp_path: Path) -> None:
    from robustbench_gan.run.pipeline import load_suite_data
    from robustbench_gan.suite import load_suite

    write_cifar_python(tmp_path / "cifar" / "cifar-10-batches-py")
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text(
        '[data]\ndataset = "cifar10"\nroot = "cifar"\nverify = false\ntest_size = 6\n'
        '[[models]]\nname = "cnn"\narch = "cnn"\n[[attacks]]\nname = "fgsm"\nkind = "fgsm"\neps = [0.03]\n'
    )
    suite = load_suite(suite_file)
    assert suite.data["verify"] is False
    d = load_suite_data(suite)
    assert (len(d.x_train), len(d.x_test)) == (40, 6) and d.spec.class_names[0] == "k0"


# ---------------------------------------------------------------- npz: Keras-style keys


def test_npz_keras_train_and_test_keys(tmp_path: Path) -> None:
    x, y = make_images(9, 5, 6, 3), make_labels(9, k=3)
    xt, yt = make_images(5, 5, 6, 3, seed=7), make_labels(5, k=3, seed=8)
    np.savez(tmp_path / "k.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    d = load_dataset("npz", path=str(tmp_path / "k.npz"))
    assert (len(d.x_train), len(d.x_test)) == (9, 5) and d.spec.shape == (3, 5, 6) and d.spec.num_classes == 3
    torch.testing.assert_close(d.x_train, torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, rtol=0, atol=0)
    assert d.y_train.tolist() == y.tolist() and d.y_test.tolist() == yt.tolist()


def test_npz_keras_train_keys_alone_are_split(tmp_path: Path) -> None:
    x, y = make_images(12, 5, 5), make_labels(12, k=4)
    np.savez(tmp_path / "t.npz", x_train=x, y_train=y)
    d = load_dataset("npz", path=str(tmp_path / "t.npz"), test_size=4, seed=3)
    assert (len(d.x_train), len(d.x_test)) == (8, 4) and ids(d.x_train).isdisjoint(ids(d.x_test))


def test_npz_test_keys_alone_are_split(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x, y = make_images(10, 3, 6, 6), make_labels(10, k=5)
    np.savez(tmp_path / "e.npz", x_test=x, y_test=y)
    with caplog.at_level("INFO", logger="robustbench_gan.data"):
        d = load_dataset("npz", path=str(tmp_path / "e.npz"), train_size=6, test_size=4, seed=1)
    assert (len(d.x_train), len(d.x_test)) == (6, 4) and d.spec.shape == (3, 6, 6)
    assert "x_test/y_test only" in caplog.text
    src = {(x[i].astype(np.float32) / 255).tobytes(): int(y[i]) for i in range(10)}
    for xi, yi in zip(torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test])):
        assert src[xi.numpy().tobytes()] == int(yi)


def test_npz_ambiguous_and_partial_keys(tmp_path: Path) -> None:
    x, y = make_images(4, 3, 3), make_labels(4)
    np.savez(tmp_path / "a.npz", x=x, y=y, x_train=x, y_train=y)
    both = r"ambiguous: it holds both x/y and x_train/y_train \(keys: x, y, x_train, y_train\)"
    with pytest.raises(DataError, match=both):
        load_dataset("npz", path=str(tmp_path / "a.npz"))
    np.savez(tmp_path / "b.npz", x_train=x, y=y)
    with pytest.raises(DataError, match="ambiguous"):
        load_dataset("npz", path=str(tmp_path / "b.npz"))
    np.savez(tmp_path / "c.npz", x_train=x, x_test=x, y_test=y)
    with pytest.raises(DataError, match="lacks 'y_train'; it holds: x_train, x_test, y_test"):
        load_dataset("npz", path=str(tmp_path / "c.npz"))
    np.savez(tmp_path / "d.npz", x_test=x)
    with pytest.raises(DataError, match="only one of 'x_test'/'y_test'; give both \\(it holds: x_test\\)"):
        load_dataset("npz", path=str(tmp_path / "d.npz"))
    np.savez(tmp_path / "e.npz", images=x)
    with pytest.raises(DataError, match="lacks 'x' and 'y' \\(or 'x_train'/'y_train', or 'x_test'/'y_test'\\)"):
        load_dataset("npz", path=str(tmp_path / "e.npz"))
