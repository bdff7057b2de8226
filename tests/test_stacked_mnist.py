"""Stacked MNIST (VEEGAN / PacGAN's 1,000-mode benchmark): stacking by construction, the mode-counting math by
hand, an exact fake counter, and a counter trained on the digits stand-in (CPU, no files, no downloads)."""
from __future__ import annotations

import gzip
import math
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from robustbench_gan.data.spec import Data, DataSpec
from robustbench_gan.errors import ConfigError, DataError
from robustbench_gan.gan.stacked_mnist import (
    MODES,
    PACGAN_EVAL_SAMPLES,
    PACGAN_TRAIN_SIZE,
    ModeCounter,
    digit_source,
    mode_statistics,
    stack_digits,
    stacked_data,
)


def constant_digits(n: int, labels: Tensor | None = None, size: int = 6) -> tuple[Tensor, Tensor]:
    """``n`` single-channel images, image ``i`` filled with ``(i + 1) / (n + 1)`` (its index can be read back from
    any pixel), and labels (default: random digits)."""
    values = (torch.arange(n, dtype=torch.float32) + 1) / (n + 1)
    x = values.view(n, 1, 1, 1).expand(n, 1, size, size).clone()
    if labels is None:
        labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(123))
    return x, labels


def source_index(images: Tensor, n: int) -> Tensor:
    """The source index of each channel of constant stacked images ``[m, 3, H, W]`` -> ``[m, 3]``."""
    return (images[:, :, 0, 0] * (n + 1)).round().long() - 1


# ---------------------------------------------------------------- constants


def test_pacgan_constants() -> None:
    assert (MODES, PACGAN_TRAIN_SIZE, PACGAN_EVAL_SAMPLES) == (1000, 128_000, 26_000)


# ---------------------------------------------------------------- stacking


def test_stacking_by_construction() -> None:
    x, y = constant_digits(37)
    images, ids = stack_digits(x, y, 500, seed=0)
    assert images.shape == (500, 3, 6, 6) and ids.shape == (500,) and ids.dtype == torch.int64
    src = source_index(images, 37)
    assert int(src.min()) >= 0 and int(src.max()) < 37
    for c in range(3):  # every channel is exactly the source digit it came from
        assert torch.equal(images[:, c : c + 1], x[src[:, c]])
    assert torch.equal(ids, 100 * y[src[:, 0]] + 10 * y[src[:, 1]] + y[src[:, 2]])
    assert len(torch.unique(src)) > 30  # draws cover the source, not one digit over and over


def test_stacking_is_seeded() -> None:
    x, y = constant_digits(50)
    a, ia = stack_digits(x, y, 200, seed=3)
    b, ib = stack_digits(x, y, 200, seed=3)
    c, ic = stack_digits(x, y, 200, seed=4)
    assert torch.equal(a, b) and torch.equal(ia, ib)
    assert not torch.equal(a, c) and not torch.equal(ia, ic)


def test_stacking_spans_the_modes() -> None:
    x, y = constant_digits(100, torch.arange(100) % 10)
    _, ids = stack_digits(x, y, 5000, seed=0)
    # 5,000 uniform draws over 1,000 modes cover 1000 * (1 - e^-5) ~ 993 of them on average
    assert len(torch.unique(ids)) > 950
    assert int(ids.min()) >= 0 and int(ids.max()) < MODES


# ---------------------------------------------------------------- mode_statistics by hand


def test_single_mode() -> None:
    s = mode_statistics(torch.full((26,), 42))
    assert s["modes_captured"] == 1 and s["n"] == 26
    assert s["kl_to_uniform"] == pytest.approx(math.log(1000), rel=1e-12)
    assert s["histogram"].shape == (1000,) and int(s["histogram"][42]) == 26 and int(s["histogram"].sum()) == 26


def test_uniform_cover() -> None:
    for reps in (1, 3):
        s = mode_statistics(torch.arange(1000).repeat(reps))
        assert s["modes_captured"] == 1000 and s["n"] == 1000 * reps
        assert s["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
        assert torch.equal(s["histogram"], torch.full((1000,), reps))


def test_crafted_mix() -> None:
    s = mode_statistics(torch.tensor([7, 999, 7, 0]))  # counts 2, 1, 1 -> p = 1/2, 1/4, 1/4
    expected = 0.5 * math.log(0.5 * 1000) + 2 * 0.25 * math.log(0.25 * 1000)
    assert s["modes_captured"] == 3 and s["n"] == 4
    assert s["kl_to_uniform"] == pytest.approx(expected, rel=1e-12)
    assert s["histogram"][[0, 7, 999]].tolist() == [1, 2, 1] and int(s["histogram"].sum()) == 4


def test_half_the_modes() -> None:
    s = mode_statistics(torch.arange(0, 1000, 2))  # 500 modes once each: KL = log(1000 / 500)
    assert s["modes_captured"] == 500
    assert s["kl_to_uniform"] == pytest.approx(math.log(2), rel=1e-12)


# ---------------------------------------------------------------- an exact fake counter


class PixelDigit(nn.Module):
    """Reads the digit ``d`` of an image filled with ``d / 9``: logits peak at that digit."""

    def forward(self, x: Tensor) -> Tensor:
        v = x.mean(dim=(1, 2, 3)) * 9
        return -((v[:, None] - torch.arange(10, dtype=x.dtype)) ** 2)


def test_fake_counter_counts_exactly() -> None:
    labels = torch.arange(40) % 10
    x = (labels.float() / 9).view(40, 1, 1, 1).expand(40, 1, 5, 5).clone()
    images, ids = stack_digits(x, labels, 300, seed=1)
    counter = ModeCounter(PixelDigit())
    assert counter.accuracy is None
    assert torch.equal(counter.modes(images), ids)
    got, expected = counter.count(images), mode_statistics(ids)
    assert set(got) == {"modes_captured", "kl_to_uniform", "n", "histogram"}
    assert got["modes_captured"] == expected["modes_captured"] and got["n"] == 300
    assert got["kl_to_uniform"] == pytest.approx(expected["kl_to_uniform"], rel=1e-12)
    assert torch.equal(got["histogram"], expected["histogram"])
    # a collapsed "generator": one triple repeated
    collapsed = images[:1].expand(50, -1, -1, -1)
    one = counter.count(collapsed)
    assert one["modes_captured"] == 1 and one["kl_to_uniform"] == pytest.approx(math.log(1000))


# ---------------------------------------------------------------- digit sources and stacked data


def _write_idx(path: Path, arr: np.ndarray) -> None:
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(head + arr.tobytes()))


def test_digit_source_reads_a_t10k_only_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28), dtype=np.uint8))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", (np.arange(40) % 10).astype(np.uint8))
    d = digit_source(tmp_path, seed=1)
    assert (len(d.x_train), len(d.x_test)) == (30, 10) and d.spec.shape == (1, 28, 28)
    assert d.spec.num_classes == 10 and d.spec.bounds == (0.0, 1.0)
    small = digit_source(str(tmp_path), size=16, seed=1)
    assert small.x_train.shape == (30, 1, 16, 16) and torch.equal(small.y_train, d.y_train)
    assert float(small.x_train.min()) >= 0.0 and float(small.x_train.max()) <= 1.0
    with pytest.raises(DataError, match="does not exist.*root=None"):
        digit_source(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def digits() -> Data:
    return digit_source(None, size=16, seed=0)


def test_digit_source_stand_in(digits: Data) -> None:
    assert digits.spec.shape == (1, 16, 16) and digits.spec.num_classes == 10
    assert (len(digits.x_train), len(digits.x_test)) == (1348, 449)  # scikit-learn's 1,797 digits, 75% / 25%
    assert float(digits.x_train.min()) >= 0.0 and float(digits.x_train.max()) <= 1.0
    assert set(digits.y_test.tolist()) == set(range(10))


def test_stacked_data(digits: Data) -> None:
    s = stacked_data(digits, 300, 120, seed=0)
    assert s.spec.shape == (3, 16, 16) and s.spec.num_classes == 1000 and s.spec.bounds == digits.spec.bounds
    assert s.spec.class_names[:2] == ("000", "001") and s.spec.class_names[-1] == "999"
    assert s.x_train.shape == (300, 3, 16, 16) and s.x_test.shape == (120, 3, 16, 16)
    assert s.y_train.dtype == torch.int64 and int(s.y_train.max()) < 1000
    # test stacks use test digits only, train stacks train digits only
    for stacks, pool in ((s.x_test, digits.x_test), (s.x_train, digits.x_train)):
        flat = stacks[:60].reshape(-1, 16 * 16)
        assert float(torch.cdist(flat, pool.reshape(len(pool), -1)).min(1).values.max()) == 0.0
    other = stacked_data(digits, 300, 120, seed=1)
    assert not torch.equal(other.y_train, s.y_train)


# ---------------------------------------------------------------- a counter trained on the stand-in


@contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread: fast even on a busy two-core machine (training takes about 5 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def counter(digits: Data) -> ModeCounter:
    with one_thread():
        return ModeCounter.train(digits, seed=0, epochs=10)


def test_trained_counter_on_held_out_stacks(digits: Data, counter: ModeCounter) -> None:
    # measured (16x16 digits, 10 epochs, seeds 0-3): held-out digit accuracy 0.964-0.973; on these 2,000 test
    # stacks (852 true modes, true KL 0.292) the counter finds 852-859 modes with KL 0.285-0.296 and gets the
    # exact triple right on 0.89-0.91 of them
    assert counter.accuracy is not None and counter.accuracy >= 0.9
    s = stacked_data(digits, 10, 2000, seed=0)
    with one_thread():
        stats, modes = counter.count(s.x_test), counter.modes(s.x_test)
    assert stats["n"] == 2000
    assert 750 <= stats["modes_captured"] <= 1000
    assert stats["kl_to_uniform"] < 0.5 < math.log(1000)
    assert float((modes == s.y_test).float().mean()) > 0.8
    collapsed = counter.count(s.x_test[:1].expand(200, -1, -1, -1))
    assert collapsed["modes_captured"] == 1 and collapsed["kl_to_uniform"] == pytest.approx(math.log(1000))


# ---------------------------------------------------------------- bad input


def test_bad_input() -> None:
    x, y = constant_digits(10)
    with pytest.raises(DataError, match=r"shape \(10, 3, 6, 6\).*single-channel"):
        stack_digits(x.expand(10, 3, 6, 6), y, 5, seed=0)
    with pytest.raises(DataError, match=r"labels span \[1, 10\], outside 0\.\.9"):
        stack_digits(x, torch.arange(1, 11), 5, seed=0)
    with pytest.raises(DataError, match="labels span"):
        stack_digits(x, y - 1 - y.max(), 5, seed=0)
    with pytest.raises(DataError, match="one label per digit"):
        stack_digits(x, y[:5], 5, seed=0)
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        stack_digits(x, y, 0, seed=0)
    counter = ModeCounter(PixelDigit())
    with pytest.raises(DataError, match=r"\[n, 3, H, W\].*\(4, 1, 6, 6\)"):
        counter.modes(x[:4])
    with pytest.raises(DataError, match=r"outside 0\.\.999"):
        mode_statistics(torch.tensor([3, 1000]))
    with pytest.raises(DataError, match="non-empty 1-D"):
        mode_statistics(torch.tensor([], dtype=torch.int64))
    rgb = Data(torch.zeros(4, 3, 6, 6), torch.zeros(4, dtype=torch.int64), torch.zeros(4, 3, 6, 6),
               torch.zeros(4, dtype=torch.int64), DataSpec("rgb", (3, 6, 6), 10))
    with pytest.raises(DataError, match="single-channel digits with 10 classes.*digit_source"):
        stacked_data(rgb, 5, 5, seed=0)
    with pytest.raises(DataError, match="single-channel digits"):
        ModeCounter.train(rgb)
