"""The 15 common corruptions (shapes, bounds, seeds, severity order, batch independence, fidelity to the reference's
formulas) and the stored CIFAR-10-C-style folders."""
from __future__ import annotations

import colorsys
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from robustbench_gan.attacks.engine.draws import SampleDraws
from robustbench_gan.corruptions import CORRUPTIONS, FAMILIES, corrupt, load_corruption_folder
from robustbench_gan.corruptions import recipes as R
from robustbench_gan.errors import ConfigError, DataError

SEVERITIES = (1, 2, 3, 4, 5)
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform"}

# Severity steps whose mean |change| may fall, because the published CIFAR-10-C rows are not monotone there
# (make_cifar_c.py; measured with the reference recipe as well):
# - frost (image weight, frost weight) = (1, .2), (1, .3), (.9, .4), (.85, .4), (.75, .45): from severity 3 the image
#   is dimmed while the (bright) frost layer hardly grows, so the change to a pixel, b * frost - (1 - a) * x, shrinks.
# - glass_blur (sigma, shift, passes) = (.05,1,1), (.25,1,1), (.4,1,1), (.25,1,2), (.4,1,2): sigma falls from 3 to
#   4 and, at equal passes, a larger sigma smooths the shuffled pixels back (1->2, 2->3, 4->5); checked instead:
#   both two-pass severities change more than all one-pass ones.
# - elastic_transform (alpha, sigma, affine) x 32 = (0,0,.08), (.05,.2,.07), (.08,.06,.06), (.1,.04,.05),
#   (.1,.03,.03): the affine jitter (the larger displacement) shrinks from 2.6 to 1 px while the local field grows;
#   the reference's own mean change falls with severity (0.032, 0.025, 0.021, 0.021, 0.015 on 32x32 digits).
#   Not checked for order.
NOT_MONOTONE = {"frost": {(3, 4), (4, 5)}, "glass_blur": {(1, 2), (2, 3), (4, 5)},
                "elastic_transform": {(1, 2), (2, 3), (3, 4), (4, 5)}}
# motion_blur severities 3 and 4 differ only in the radius (6 vs 8 px at sigma 2: taps 7-8 weigh e-9): equal change
TOLERANCE = {("motion_blur", 3, 4): 1e-4}


def _digits(n: int) -> torch.Tensor:
    """n digits, 1x8x8 in [0, 1]."""
    return torch.tensor(load_digits().images[:n], dtype=torch.float32)[:, None] / 16


def _rgb32(n: int) -> torch.Tensor:
    """n 3x32x32 images: digits upsampled, two colours each, a shade and a little texture."""
    g = torch.Generator().manual_seed(0)
    up = torch.nn.functional.interpolate(_digits(n), size=32, mode="bilinear", align_corners=False)
    fg, bg = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
    shade = torch.linspace(-0.1, 0.1, 32).view(1, 1, 1, 32)
    return (bg * (1 - up) + fg * up + shade + 0.03 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)


IMAGES = {"digits8": _digits(24), "rgb32": _rgb32(24)}
SMALL = {k: v[:6] for k, v in IMAGES.items()}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tensors here are small: one thread is faster, and fair to a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def outputs() -> dict[tuple[str, str, int], torch.Tensor]:
    """Every corruption at every severity of both small batches, seed 0 (test_seeded recomputes them with torch's
    global generator moved on: nothing may draw from it)."""
    return {(kind, name, s): corrupt(x, name, s, seed=0)
            for kind, x in SMALL.items() for name in CORRUPTIONS for s in SEVERITIES}


def test_public_names():
    assert len(CORRUPTIONS) == 15 and CORRUPTIONS[0] == "gaussian_noise" and CORRUPTIONS[-1] == "jpeg_compression"
    assert set(FAMILIES) == set(CORRUPTIONS)
    assert [n for n in CORRUPTIONS if FAMILIES[n] == "weather"] == ["snow", "frost", "fog", "brightness"]
    assert {FAMILIES[n] for n in CORRUPTIONS} == {"noise", "blur", "weather", "digital"}
    assert R.RANDOM == RANDOM and set(R.RECIPES) == set(CORRUPTIONS)


@pytest.mark.parametrize("kind", SMALL)
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_changes_image_within_bounds(outputs, kind, name):
    x = SMALL[kind]
    for s in SEVERITIES:
        y = outputs[kind, name, s]
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        assert (y - x).abs().mean() > 1e-3, f"{name} severity {s} leaves {kind} (almost) unchanged"


@pytest.mark.parametrize("kind", SMALL)
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_seeded(outputs, kind, name):
    x = SMALL[kind]
    for s in (1, 5):
        assert torch.equal(corrupt(x, name, s, seed=0), outputs[kind, name, s])
        other = corrupt(x, name, s, seed=1)
        if name in RANDOM:
            assert not torch.equal(other, outputs[kind, name, s]), f"{name} ignores the seed"
        else:
            assert torch.equal(other, outputs[kind, name, s]), f"{name} is deterministic yet depends on the seed"


@pytest.mark.parametrize("kind", SMALL)
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_change_grows_with_severity(outputs, kind, name):
    x = SMALL[kind]
    change = {s: (outputs[kind, name, s] - x).abs().mean().item() for s in SEVERITIES}
    for s in SEVERITIES[:-1]:
        if (s, s + 1) in NOT_MONOTONE.get(name, set()):
            continue
        tol = TOLERANCE.get((name, s, s + 1), 1e-6)
        assert change[s + 1] >= change[s] - tol, f"{name} on {kind}: {change}"
    assert change[5] > change[1] or name == "elastic_transform", change
    if name == "glass_blur":
        assert min(change[4], change[5]) > max(change[1], change[2], change[3]), change


@pytest.mark.parametrize("kind", IMAGES)
def test_sample_does_not_depend_on_its_batch(kind):
    x = IMAGES[kind]
    for name in CORRUPTIONS:
        whole = corrupt(x, name, 4, seed=3)
        part = corrupt(x[10:20], name, 4, draws=SampleDraws(3, torch.arange(10, 20)))
        assert torch.equal(part, whole[10:20]), name


def test_bounds_are_mapped():
    x = SMALL["rgb32"]
    for name in ("gaussian_noise", "fog", "brightness", "zoom_blur"):
        y = corrupt(2 * x - 1, name, 3, bounds=(-1.0, 1.0))
        assert y.min() >= -1 and y.max() <= 1
        torch.testing.assert_close(y, 2 * corrupt(x, name, 3) - 1, atol=1e-5, rtol=0)


def test_dtype_and_non_square():
    x = torch.rand(2, 3, 20, 36, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in CORRUPTIONS:
        y = corrupt(x, name, 2)
        assert y.shape == x.shape and y.dtype == torch.float64
    half = corrupt(x.half(), "snow", 2)
    assert half.dtype == torch.float16


def test_bad_arguments():
    x = SMALL["rgb32"]
    with pytest.raises(ConfigError, match="did you mean 'gaussian_noise'"):
        corrupt(x, "gausian_noise", 1)
    for sev in (0, 6, 2.0, True):
        with pytest.raises(ConfigError, match="severity"):
            corrupt(x, "fog", sev)
    with pytest.raises(ConfigError, match="bounds"):
        corrupt(x, "fog", 1, bounds=(1.0, 0.0))
    with pytest.raises(DataError, match="1 or 3 channels"):
        corrupt(torch.rand(2, 2, 8, 8), "fog", 1)
    with pytest.raises(DataError):
        corrupt(torch.rand(3, 8, 8), "fog", 1)
    with pytest.raises(ConfigError, match="draws hold 2"):
        corrupt(x, "fog", 1, draws=SampleDraws(0, torch.arange(2)))


# ---- the recipes against the reference's formulas -----------------------------------------------------------

def test_noise_statistics():
    x = torch.full((4, 3, 32, 32), 0.5)
    noisy = corrupt(x, "gaussian_noise", 5) - 0.5
    assert abs(noisy.std().item() - 0.10) < 0.005 and abs(noisy.mean().item()) < 0.005
    shot = corrupt(x, "shot_noise", 5)  # Poisson(25) / 50: mean 0.5, variance 0.5 / 50
    assert abs(shot.mean().item() - 0.5) < 0.005 and abs(shot.var().item() - 0.01) < 0.001
    assert torch.allclose(shot * 50, (shot * 50).round(), atol=1e-4)  # counts / c
    imp = corrupt(x, "impulse_noise", 5)
    hit = imp != 0.5
    assert abs(hit.float().mean().item() - 0.07) < 0.01 and set(imp[hit].unique().tolist()) == {0.0, 1.0}


def test_brightness_is_hsv_value_shift():
    x = SMALL["rgb32"][:2]
    y = corrupt(x, "brightness", 3)
    px = x.permute(0, 2, 3, 1).reshape(-1, 3)[::37].tolist()
    py = y.permute(0, 2, 3, 1).reshape(-1, 3)[::37]
    for p, q in zip(px, py):
        h, s, v = colorsys.rgb_to_hsv(*p)
        torch.testing.assert_close(q, torch.tensor(colorsys.hsv_to_rgb(h, s, min(v + 0.15, 1.0))), atol=1e-5,
                                   rtol=0)
    gray = SMALL["digits8"]
    torch.testing.assert_close(corrupt(gray, "brightness", 2), (gray + 0.1).clamp(0, 1))


def test_contrast_formula():
    x = SMALL["rgb32"]
    m = x.mean((-2, -1), keepdim=True)
    torch.testing.assert_close(corrupt(x, "contrast", 5), ((x - m) * 0.15 + m).clamp(0, 1))


def test_jpeg_and_pixelate_match_pillow():
    x = (SMALL["rgb32"][:2] * 255).round() / 255
    y, p = corrupt(x, "jpeg_compression", 2), corrupt(x, "pixelate", 4)
    for i in range(2):
        img = Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=65)
        ref = torch.from_numpy(np.asarray(Image.open(buf)).astype(np.float32) / 255).permute(2, 0, 1)
        assert torch.equal(y[i], ref)
        box = np.asarray(img.resize((24, 24), Image.BOX).resize((32, 32), Image.BOX)).astype(np.float32) / 255
        ref = torch.from_numpy(box).permute(2, 0, 1)
        assert (p[i] - ref).abs().max() <= 2 / 255  # Pillow rounds to 8 bits after each pass


def test_zoom_factors_are_numpys():
    for stop in R.ZOOM_BLUR_STOP:
        assert R._zoom_factors(stop) == np.arange(1, stop, 0.01).tolist()


def test_glass_shuffle_is_the_references_copy_sweep():
    """With every offset drawn, the reference's sweep (copy from [h+dy, w+dx], bottom-right to top-left) is the
    parallel gather that glass_blur does."""
    rng = np.random.default_rng(0)
    img = rng.random((12, 12))
    offsets = rng.integers(-1, 1, size=(12, 12, 2))
    swept = img.copy()
    for h in range(12 - 1, 1, -1):
        for w in range(12 - 1, 1, -1):
            dy, dx = offsets[h, w]
            swept[h, w] = swept[h + dy, w + dx]
    rows, cols = np.mgrid[0:12, 0:12]
    inside = (rows > 1) & (cols > 1)
    gathered = img[rows + np.where(inside, offsets[..., 0], 0), cols + np.where(inside, offsets[..., 1], 0)]
    assert np.array_equal(swept, gathered)


def test_spatial_scaling():
    """Radii scale with the side: the defocus disk of a 64x64 image is twice as wide as at 32x32."""
    k32, k64 = R._disk_kernel(1.5, 0.1), R._disk_kernel(3.0, 0.2)
    assert k32.shape == (3, 3) and torch.allclose(k32, torch.full((3, 3), 1 / 9, dtype=torch.float64))

    def spread(k):
        t = torch.arange(k.shape[0], dtype=torch.float64) - (k.shape[0] - 1) / 2
        return float((k * (t[:, None] ** 2 + t[None, :] ** 2)).sum() / k.sum())

    assert 3.0 < spread(k64) / spread(k32) < 5.0
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert corrupt(x, "defocus_blur", 5).shape == x.shape
    assert R._frost_texture(SampleDraws(0, torch.arange(2)), 3, 224, 224, 7.0, device="cpu",
                            dtype=torch.float32).shape == (2, 3, 224, 224)


# ---- stored corruption folders -------------------------------------------------------------------------------

N = 6


def _write_folder(root, names=("gaussian_noise", "fog", "contrast"), *, shape=(32, 32, 3), labels_rows=5 * N):
    rng = np.random.default_rng(0)
    arrays = {}
    for name in names:
        arrays[name] = rng.integers(0, 256, size=(5 * N, *shape), dtype=np.uint8)
        np.save(root / f"{name}.npy", arrays[name])
    labels = np.tile(rng.integers(0, 10, size=N), labels_rows // N).astype(np.uint8)
    np.save(root / "labels.npy", labels)
    return arrays, labels


def test_folder_round_trip(tmp_path):
    arrays, labels = _write_folder(tmp_path)
    stored = load_corruption_folder(tmp_path)
    assert stored.names == ("contrast", "fog", "gaussian_noise")
    assert torch.equal(stored.labels, torch.from_numpy(labels[:N].astype(np.int64)))
    for name, arr in arrays.items():
        for s in SEVERITIES:
            x = stored.images(name, s)
            assert x.shape == (N, 3, 32, 32) and x.dtype == torch.float32
            back = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            assert np.array_equal(back, arr[(s - 1) * N:s * N])
    part = load_corruption_folder(tmp_path, corruptions=["fog"], n=4)
    assert part.names == ("fog",) and len(part.labels) == 4
    assert np.array_equal((part.images("fog", 5) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(),
                          arrays["fog"][4 * N:4 * N + 4])


def test_folder_grayscale_and_short_labels(tmp_path):
    arrays, labels = _write_folder(tmp_path, ("shot_noise",), shape=(28, 28), labels_rows=N)
    stored = load_corruption_folder(tmp_path)
    x = stored.images("shot_noise", 2)
    assert x.shape == (N, 1, 28, 28)
    assert np.array_equal((x[:, 0] * 255).round().to(torch.uint8).numpy(), arrays["shot_noise"][N:2 * N])
    assert torch.equal(stored.labels, torch.from_numpy(labels.astype(np.int64)))


def _one_line_error(path, match, **kwargs):
    with pytest.raises(ConfigError, match=match) as info:
        load_corruption_folder(path, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_folder_errors(tmp_path):
    _one_line_error(tmp_path / "nowhere", "does not exist")
    _one_line_error(tmp_path, "holds no <corruption>.npy")
    _write_folder(tmp_path)
    _one_line_error(tmp_path, r"snow\.npy does not exist; the folder holds: contrast, fog, gaussian_noise",
                    corruptions=["snow"])
    _one_line_error(tmp_path, "n must be an integer from 1 to 6", n=7)
    stored = load_corruption_folder(tmp_path)
    with pytest.raises(ConfigError, match="severity"):
        stored.images("fog", 6)
    with pytest.raises(ConfigError, match="not loaded"):
        stored.images("snow", 1)

    np.save(tmp_path / "fog.npy", np.zeros((5 * N - 1, 32, 32, 3), np.uint8))
    msg = _one_line_error(tmp_path, r"fog\.npy has 29 rows, expected 5 x N = 30")
    assert "labels.npy" in msg
    np.save(tmp_path / "fog.npy", np.zeros((5 * N, 32, 32, 3), np.float32))
    _one_line_error(tmp_path, r"fog\.npy holds float32 values, expected uint8")
    np.save(tmp_path / "fog.npy", np.zeros((5 * N, 32, 32, 4), np.uint8))
    _one_line_error(tmp_path, r"fog\.npy has shape \(30, 32, 32, 4\)")
    np.save(tmp_path / "fog.npy", np.array([{"a": 1}] * 30, dtype=object), allow_pickle=True)
    _one_line_error(tmp_path, r"fog\.npy is not a readable \.npy array")
    (tmp_path / "fog.npy").write_bytes(b"not numpy")
    _one_line_error(tmp_path, r"fog\.npy is not a readable")
    (tmp_path / "fog.npy").unlink()

    np.save(tmp_path / "labels.npy", np.arange(5 * N))  # five blocks that differ
    _one_line_error(tmp_path, "severity blocks differ")
    np.save(tmp_path / "labels.npy", np.zeros(7, np.int64))
    _one_line_error(tmp_path, r"contrast\.npy has 30 rows but .*labels\.npy holds 7 labels")
    np.save(tmp_path / "labels.npy", np.zeros((5 * N, 2), np.int64))
    _one_line_error(tmp_path, r"labels\.npy has shape \(30, 2\)")
    (tmp_path / "labels.npy").unlink()
    _one_line_error(tmp_path, r"labels\.npy does not exist")


def test_folder_images_feed_corrupt_consistently(tmp_path):
    """Stored images (uint8 in [0, 1]) go through corrupt unchanged in layout."""
    _write_folder(tmp_path, ("contrast",))
    x = load_corruption_folder(tmp_path).images("contrast", 1)
    y = corrupt(x, "contrast", 1)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert math.isclose(float(y.mean()), float(x.mean()), abs_tol=1e-5)
