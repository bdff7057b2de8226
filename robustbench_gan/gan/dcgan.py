"""Class-conditional and unconditional DCGANs whose shapes adapt to the data spec (8x8 digits, 28x28 MNIST, 32x32
CIFAR, ...).

Architecture guidelines of Radford et al. 2015 ("Unsupervised Representation Learning with Deep Convolutional
GANs", sec. 3): no pooling (strided convolutions in D, fractionally strided ones in G), batch norm in both nets
except on G's output and D's input layer, ReLU in G with a tanh output, LeakyReLU(0.2) in D, and all weights
drawn from N(0, 0.02). Conditioning on the class follows Mirza & Osindero 2014 ("Conditional GANs"): G sees
``[z, onehot(label)]``, D sees the image with an extra learned per-class label map as a channel. The
unconditional pair (:class:`Generator`, :class:`Discriminator`) is the same network without the label inputs.

Both discriminators take ``pack`` (PacGAN, Lin et al. 2018; :mod:`.packing`): ``pack`` images concatenated along
the channels, ``[B, pack * C, H, W]``, so only the first convolution widens. In the conditional one each packed
image brings its own label map right after its channels (``[x_1, map(y_1), x_2, map(y_2), ...]``, labels
``[B, pack]``): D judges ``pack`` (image, label) pairs jointly, which is what packing means for a joint
distribution, and a real pack is ``pack`` real pairs, a generated one ``pack`` generated pairs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import DataSpec
from ..errors import ModelError


def _check_spec(spec: DataSpec, who: str) -> tuple[int, int, int]:
    c, h, w = (int(s) for s in spec.shape)
    if c < 1 or h < 4 or w < 4:
        raise ModelError(f"{who}: images of shape {tuple(spec.shape)} are too small; need at least 4x4 pixels")
    if spec.num_classes < 1:
        raise ModelError(f"{who}: num_classes must be positive, got {spec.num_classes}")
    lo, hi = float(spec.bounds[0]), float(spec.bounds[1])
    if not lo < hi:
        raise ModelError(f"{who}: bounds must be (low, high) with low < high, got {tuple(spec.bounds)}")
    return c, h, w


def _check_width(width: int, who: str, name: str = "width") -> int:
    if isinstance(width, bool) or int(width) != width or width < 1:
        raise ModelError(f"{who}: {name} must be a positive integer, got {width!r}")
    return int(width)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2015, sec. 4): weights N(0, 0.02), batch-norm scales N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class _GeneratorBody(nn.Module):
    """The DCGAN generator both variants share: project a code of ``in_dim`` numbers to a
    ``(2*width, ceil(H/4), ceil(W/4))`` map, upsample twice with stride-2 ``ConvTranspose2d(k=4, p=1)``, crop to
    ``(H, W)`` when the spec's size is not a multiple of 4, and map the tanh output from ``[-1, 1]`` to
    ``spec.bounds``."""

    def __init__(self, spec: DataSpec, *, z_dim: int, width: int, extra: int, who: str) -> None:
        super().__init__()
        c, h, w = _check_spec(spec, who)
        self.z_dim = _check_width(z_dim, who, "z_dim")
        width = _check_width(width, who)
        self.shape = (c, h, w)
        self.bounds = (float(spec.bounds[0]), float(spec.bounds[1]))
        self.h0, self.w0 = math.ceil(h / 4), math.ceil(w / 4)
        self.width = width
        self.project = nn.Sequential(
            nn.Linear(self.z_dim + extra, 2 * width * self.h0 * self.w0, bias=False),
            nn.BatchNorm1d(2 * width * self.h0 * self.w0),
            nn.ReLU(inplace=True),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1),
            nn.Tanh(),
        )
        self.apply(dcgan_init)

    def _decode(self, code: Tensor) -> Tensor:
        h = self.project(code)
        t = self.upsample(h.view(-1, 2 * self.width, self.h0, self.w0))
        _, hh, ww = self.shape
        t = t[:, :, :hh, :ww]
        lo, hi = self.bounds
        return lo + (t + 1) * (0.5 * (hi - lo))


class ConditionalGenerator(_GeneratorBody):
    """``G(z, label)``: the DCGAN generator (:class:`_GeneratorBody`) fed ``[z, onehot(label)]``."""

    def __init__(self, spec: DataSpec, *, z_dim: int = 64, width: int = 64) -> None:
        super().__init__(spec, z_dim=z_dim, width=width, extra=int(spec.num_classes), who="ConditionalGenerator")
        self.num_classes = int(spec.num_classes)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        onehot = F.one_hot(labels.long(), self.num_classes).to(z.dtype)
        return self._decode(torch.cat([z.flatten(1), onehot], dim=1))


class Generator(_GeneratorBody):
    """``G(z)``: the unconditional DCGAN generator (Radford et al. 2015), images in ``spec.bounds`` of shape
    ``spec.shape`` from ``z ~ N(0, I)`` of ``z_dim`` numbers. Defense-GAN (Samangouei et al. 2018) projects
    inputs onto its range; public attributes: ``z_dim``, ``shape`` ``(C, H, W)``, ``bounds`` ``(low, high)``."""

    def __init__(self, spec: DataSpec, *, z_dim: int = 64, width: int = 64) -> None:
        super().__init__(spec, z_dim=z_dim, width=width, extra=0, who="Generator")

    def forward(self, z: Tensor) -> Tensor:
        return self._decode(z.flatten(1))


class _DiscriminatorBody(nn.Module):
    """The DCGAN discriminator both variants share: ``x`` (in ``spec.bounds``) rescaled to ``[-1, 1]``, plus
    ``extra`` input channels, through two stride-2 ``Conv2d(k=4, p=1)`` layers (batch norm on the second only)
    with LeakyReLU(0.2), into a linear logit for "real"."""

    def __init__(self, spec: DataSpec, *, width: int, extra: int, who: str, pack: int = 1) -> None:
        super().__init__()
        c, h, w = _check_spec(spec, who)
        width = _check_width(width, who)
        self.pack = _check_width(pack, who, "pack")
        self.shape = (c, h, w)
        self.bounds = (float(spec.bounds[0]), float(spec.bounds[1]))
        self._build_label_map(spec)
        self.features = nn.Sequential(
            nn.Conv2d((c + extra) * self.pack, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
        )
        hf, wf = h, w
        for _ in range(2):
            hf, wf = (hf - 2) // 2 + 1, (wf - 2) // 2 + 1
        self.head = nn.Linear(2 * width * hf * wf, 1)
        self.apply(dcgan_init)

    def _build_label_map(self, spec: DataSpec) -> None:
        """Conditional discriminators create their label embedding here (before the convolutions: the order in
        which weights draw from the seeded RNG)."""

    def _scale(self, x: Tensor) -> Tensor:
        lo, hi = self.bounds
        return (x - lo) * (2.0 / (hi - lo)) - 1.0

    def _logit(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


class ConditionalDiscriminator(_DiscriminatorBody):
    """``D(x, label)``: the DCGAN discriminator (:class:`_DiscriminatorBody`) with a learned per-class ``H x W``
    label map appended as a channel (Mirza & Osindero 2014)."""

    def __init__(self, spec: DataSpec, *, width: int = 64, pack: int = 1) -> None:
        super().__init__(spec, width=width, extra=1, who="ConditionalDiscriminator", pack=pack)

    def _build_label_map(self, spec: DataSpec) -> None:
        _, h, w = self.shape
        self.num_classes = int(spec.num_classes)
        self.label_map = nn.Embedding(self.num_classes, h * w)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """``x`` ``[B, pack * C, H, W]`` and ``labels`` ``[B, pack]`` (``[B]`` when ``pack`` is 1)."""
        c, h, w = self.shape
        m = self.pack
        label_map = self.label_map(labels.long()).view(-1, m, 1, h, w).to(x.dtype)
        pairs = torch.cat([self._scale(x).view(-1, m, c, h, w), label_map], dim=2)
        return self._logit(pairs.view(-1, m * (c + 1), h, w))


class Discriminator(_DiscriminatorBody):
    """``D(x)``: the unconditional DCGAN discriminator, a logit for "real"."""

    def __init__(self, spec: DataSpec, *, width: int = 64, pack: int = 1) -> None:
        super().__init__(spec, width=width, extra=0, who="Discriminator", pack=pack)

    def forward(self, x: Tensor) -> Tensor:
        return self._logit(self._scale(x))
