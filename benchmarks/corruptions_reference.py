"""Our common corruptions (``robustbench_gan.corruptions``) next to the reference implementation.

The reference is the ``imagecorruptions`` package (Michaelis et al.), which implements the ImageNet-C recipes of
Hendrycks & Dietterich per image in NumPy/OpenCV/scikit-image. It is not a dependency of this project; install it
beside the project to run this script, e.g.::

    pip install imagecorruptions
    # or, keeping it out of the project's environment:
    python -m pip install --target /tmp/icpkgs imagecorruptions
    PYTHONPATH=/tmp/icpkgs python benchmarks/corruptions_reference.py

The parameter sets differ: ``imagecorruptions`` carries the ImageNet-C rows (for 224 px images), we use the
CIFAR-10-C rows (``make_cifar_c.py``) with the pixel parameters scaled by side / 32. So the script compares two
things:

1. Same recipe, same parameters: for the deterministic recipes (defocus, motion and zoom blur, brightness,
   contrast, pixelate, JPEG) the reference's building blocks (``disk`` + ``cv2.filter2D``, ``_motion_blur`` at a
   fixed angle, ``clipped_zoom``, skimage's HSV, Pillow's BOX resize and JPEG) are called with *our* parameters, at
   32 px (exactly CIFAR-10-C's setting) and at 224 px (our scaled parameters); printed: mean absolute difference
   (0..255 units) next to the mean absolute change the corruption makes.
2. Magnitudes: the mean absolute change (0..255) per severity of all 15 corruptions, ours (CIFAR-10-C rows) at 32
   and 224 px and the reference's (ImageNet-C rows) at 224 px. They are not meant to agree: it shows the scale.
3. Frost: ours (a procedural texture) against CIFAR-10-C's recipe with the reference's frost photographs (they ship
   with ``imagecorruptions``), mean absolute change per severity at 32 px.

``imagecorruptions`` 1.1.2 predates NumPy 2, scikit-image 0.19 and setuptools without ``pkg_resources``; the script
patches those three names in this process only (``np.float_``, ``multichannel=``, ``resource_filename``).
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import logging
import os
import sys
import time
import types

import numpy as np
import torch

from robustbench_gan.corruptions import CORRUPTIONS, corrupt
from robustbench_gan.corruptions import recipes as R

log = logging.getLogger("corruptions_reference")

IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina")


def _import_reference() -> types.ModuleType | None:
    """``imagecorruptions.corruptions`` with compatibility shims, or None when it is not installed."""
    if importlib.util.find_spec("imagecorruptions") is None:
        return None
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # removed in NumPy 2; the reference's plasma_fractal uses it
    if importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, name: str) -> str:
            return os.path.join(os.path.dirname(sys.modules[package].__file__), name)

        shim.resource_filename = resource_filename
        sys.modules["pkg_resources"] = shim
    import imagecorruptions.corruptions as ic
    from skimage.filters import gaussian

    def gaussian_compat(image, sigma=1, *args, multichannel=None, **kwargs):  # skimage >= 0.19 dropped multichannel
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return gaussian(image, sigma, *args, **kwargs)

    ic.gaussian = gaussian_compat
    return ic


def _images(side: int) -> np.ndarray:
    """Natural test photographs shipped with scikit-image, centre-cropped and resized: uint8 ``[n, side, side, 3]``."""
    import skimage.data
    from PIL import Image

    out = []
    for name in IMAGES:
        a = getattr(skimage.data, name)()
        h, w = a.shape[:2]
        m = min(h, w)
        a = a[(h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]
        out.append(np.asarray(Image.fromarray(a).resize((side, side), Image.LANCZOS)))
    return np.stack(out)


def _torch(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).to(torch.float32) / 255


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).double().numpy()


def _ours_same_angle(x: torch.Tensor, severity: int, angle: float) -> torch.Tensor:
    """Our motion blur at a fixed angle (the recipe draws it per sample)."""
    radius, sigma = R.MOTION_BLUR[severity - 1]
    s = x.shape[-1] / 32
    a = torch.full((len(x),), angle, dtype=torch.float64)
    return R._motion_blur(x.double(), radius * s, sigma * s, a).clamp(0, 1).float()


def _reference_same_parameters(ic: types.ModuleType, name: str, severity: int, imgs: np.ndarray,
                               angle: float) -> np.ndarray:
    """The reference's building blocks with our parameters at this side, per image: floats in [0, 1]."""
    import cv2
    import skimage.color
    from PIL import Image

    side = imgs.shape[1]
    s = side / 32
    out = []
    for img in imgs:
        x = img / 255.0
        if name == "defocus_blur":
            radius, alias = R.DEFOCUS_BLUR[severity - 1]
            k = ic.disk(radius * s, alias_blur=alias * s)
            y = np.stack([cv2.filter2D(x[..., c], -1, k) for c in range(3)], -1)
        elif name == "motion_blur":
            radius, sigma = R.MOTION_BLUR[severity - 1]
            y = ic._motion_blur(x, radius=int(round(radius * s)), sigma=sigma * s, angle=angle)
        elif name == "zoom_blur":
            factors = np.arange(1, R.ZOOM_BLUR_STOP[severity - 1], 0.01)
            acc = np.zeros_like(x)
            for z in factors:
                zoomed = ic.clipped_zoom(x, z)  # CIFAR-10-C's version trims the zoom centred:
                t = (zoomed.shape[0] - side) // 2
                acc += zoomed[t:t + side, t:t + side]
            y = (x + acc) / (len(factors) + 1)
        elif name == "brightness":
            hsv = skimage.color.rgb2hsv(x)
            hsv[..., 2] = np.clip(hsv[..., 2] + R.BRIGHTNESS[severity - 1], 0, 1)
            y = skimage.color.hsv2rgb(hsv)
        elif name == "contrast":
            m = x.mean((0, 1), keepdims=True)
            y = (x - m) * R.CONTRAST[severity - 1] + m
        elif name == "pixelate":
            c = R.PIXELATE[severity - 1]
            small = Image.fromarray(img).resize((int(side * c), int(side * c)), Image.BOX)
            y = np.asarray(small.resize((side, side), Image.BOX)) / 255.0
        elif name == "jpeg_compression":
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "JPEG", quality=R.JPEG_QUALITY[severity - 1])
            y = np.asarray(Image.open(buf)) / 255.0
        else:
            raise ValueError(name)
        out.append(np.clip(y, 0, 1))
    return np.stack(out)


def same_parameters(ic: types.ModuleType, sides: tuple[int, ...]) -> None:
    """Part 1: deterministic recipes, the reference's code with our parameters."""
    names = ("defocus_blur", "motion_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression")
    angle = 17.0
    print("\n1. Same recipe, same (CIFAR-10-C, scaled) parameters: mean |ours - reference| / mean |change|, 0..255")
    print(f"   ({len(IMAGES)} photographs; motion blur at a fixed angle of {angle} degrees)")
    for side in sides:
        imgs = _images(side)
        x = _torch(imgs)
        print(f"   {side}x{side}:")
        for name in names:
            cells = []
            for sev in range(1, 6):
                ref = _reference_same_parameters(ic, name, sev, imgs, angle)
                ours = _ours_same_angle(x, sev, angle) if name == "motion_blur" else corrupt(x, name, sev)
                diff = 255 * np.abs(_numpy(ours) - ref).mean()
                change = 255 * np.abs(ref - imgs / 255.0).mean()
                cells.append(f"{diff:6.3f}/{change:6.2f}")
            print(f"     {name:18s} " + "  ".join(cells))


def magnitudes(ic: types.ModuleType, seed: int) -> None:
    """Part 2: mean absolute change per severity, ours (CIFAR-10-C rows) and the reference (ImageNet-C rows)."""
    small, large = _images(32), _images(224)
    xs, xl = _torch(small), _torch(large)
    print("\n2. Mean |change| (0..255) per severity 1..5: ours CIFAR-C @32 | ours CIFAR-C scaled @224 | "
          "reference ImageNet-C @224")
    for name in CORRUPTIONS:
        t0 = time.perf_counter()
        ours32 = [255 * (corrupt(xs, name, s, seed=seed) - xs).abs().mean().item() for s in range(1, 6)]
        t1 = time.perf_counter()
        ours224 = [255 * (corrupt(xl, name, s, seed=seed) - xl).abs().mean().item() for s in range(1, 6)]
        t2 = time.perf_counter()
        np.random.seed(seed)
        ref = []
        for s in range(1, 6):
            out = np.stack([np.asarray(getattr(ic, name)(__import__("PIL.Image").Image.fromarray(im), s),
                                       dtype=np.float64) for im in large])
            ref.append(np.abs(np.clip(np.round(out), 0, 255) - large).mean())
        t3 = time.perf_counter()
        fmt = lambda v: " ".join(f"{a:5.1f}" for a in v)  # noqa: E731
        print(f"   {name:18s} {fmt(ours32)} | {fmt(ours224)} | {fmt(ref)}   "
              f"({t1 - t0:.2f}s, {t2 - t1:.2f}s, ref {t3 - t2:.1f}s)")


def frost_with_photographs(ic: types.ModuleType, seed: int, draws: int = 20) -> None:
    """Part 3: our procedural frost against CIFAR-10-C's recipe with the reference's photographs (shipped in the
    ``imagecorruptions`` package): shrink by 0.2 (OpenCV), crop 32x32 at random, ``clip(a * x + b * frost)``."""
    import cv2

    folder = os.path.join(os.path.dirname(ic.__file__), "frost")
    files = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"]  # randint(5): frost6 never drawn
    photos = [cv2.resize(cv2.imread(os.path.join(folder, f)), (0, 0), fx=0.2, fy=0.2)[..., ::-1] / 255.0
              for f in files]
    imgs = _images(32) / 255.0
    x = _torch(_images(32))
    rng = np.random.default_rng(seed)
    ref, ours = [], []
    for sev in range(1, 6):
        a, b = R.FROST[sev - 1]
        changes = []
        for _ in range(draws):
            for img in imgs:
                p = photos[rng.integers(5)]
                i, j = rng.integers(0, p.shape[0] - 32), rng.integers(0, p.shape[1] - 32)
                changes.append(np.abs(np.clip(a * img + b * p[i:i + 32, j:j + 32], 0, 1) - img).mean())
        ref.append(255 * float(np.mean(changes)))
        ours.append(255 * float(np.mean([(corrupt(x, "frost", sev, seed=seed + k) - x).abs().mean().item()
                                          for k in range(draws)])))
    fmt = lambda v: " ".join(f"{a:5.1f}" for a in v)  # noqa: E731
    print("\n3. Frost at 32x32, CIFAR-10-C rows, mean |change| (0..255) per severity, "
          f"{draws} draws x {len(IMAGES)} photographs:")
    print(f"   reference photographs  {fmt(ref)}")
    print(f"   ours (procedural)      {fmt(ours)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-magnitudes", action="store_true", help="skip part 2 (the slow one)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ic = _import_reference()
    if ic is None:
        log.error("imagecorruptions is not installed: pip install imagecorruptions (see this script's docstring)")
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    same_parameters(ic, (32, 224))
    if not args.skip_magnitudes:
        magnitudes(ic, args.seed)
    frost_with_photographs(ic, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
