"""MagNet's autoencoders (Meng & Chen 2017, "MagNet: a Two-Pronged Defense against Adversarial Examples", CCS):
small convolutional autoencoders trained on clean data only, used as a *reformer* (classify ``AE(x)``) and as a
*detector* (reject inputs whose reconstruction error is large).

Architecture (their MNIST "Detector I & Reformer" autoencoder): Conv.Sigmoid 3x3x3, AvgPool 2x2, Conv.Sigmoid 3x3x3,
Conv.Sigmoid 3x3x3, Upsampling 2x2, Conv.Sigmoid 3x3x3, Conv.Sigmoid 3x3xC (same padding). Training: mean squared error, Adam, Gaussian noise of volume 0.1 added to the inputs, an L2 weight penalty of
1e-9 (:class:`AutoencoderConfig` says where our defaults differ).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import DataSpec
from ..errors import ConfigError, ModelError
from ..classifier_training import TrainConfig, train_model


ERRORS = ("l1", "l2")
"""Reconstruction errors: mean absolute (``l1``) or mean squared (``l2``) difference per pixel."""


@dataclass(frozen=True)
class AutoencoderConfig:
    """Autoencoder hyperparameters; Meng & Chen 2017: Adam, noise volume 0.1, L2 weight penalty 1e-9,
    3 channels. Ours: 40 epochs (100 in the paper) at lr 1e-2 with batches of 32, so that the sigmoid stack
    converges on small training sets (digits: L1 error 0.07 per pixel on held-out images, 0.11 at lr 1e-3)."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-2
    noise: float = 0.1
    weight_decay: float = 1e-9
    channels: int = 3

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "channels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"autoencoder {name} must be a positive integer, got {v!r}")
        for name, low_ok in (("lr", False), ("noise", True), ("weight_decay", True)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 if low_ok else v > 0):
                raise ConfigError(f"autoencoder {name} must be a {'non-negative' if low_ok else 'positive'} number, "
                                  f"got {v!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Autoencoder(nn.Module):
    """MagNet's MNIST "Detector I & Reformer" autoencoder for images of ``spec``'s shape (even height and width).

    Inputs and outputs are in pixel space (``spec.bounds``): the input is mapped to [0, 1] and the sigmoid output
    back to the bounds."""

    def __init__(self, spec: DataSpec, *, channels: int = 3) -> None:
        super().__init__()
        c, h, w = (int(s) for s in spec.shape)
        if h % 2 or w % 2 or h < 4 or w < 4:
            raise ModelError(f"the MagNet autoencoder needs even image sides of at least 4 pixels, got {h}x{w}")
        self.bounds = (float(spec.bounds[0]), float(spec.bounds[1]))
        k = int(channels)

        def conv(i: int, o: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.Sigmoid())

        self.encoder = nn.Sequential(conv(c, k), nn.AvgPool2d(2), conv(k, k))
        self.decoder = nn.Sequential(conv(k, k), nn.Upsample(scale_factor=2), conv(k, k), conv(k, c))

    def forward(self, x: Tensor) -> Tensor:
        lo, hi = self.bounds
        unit = (x - lo) / (hi - lo)
        return lo + (hi - lo) * self.decoder(self.encoder(unit))


def reconstruction_error(ae: nn.Module, x: Tensor, error: str = "l1") -> Tensor:
    """Per-sample reconstruction error of ``x``: the mean over pixels of ``|x - AE(x)|`` (``l1``) or its square
    (``l2``), MagNet's detector statistic (Meng & Chen 2017; their code averages ``|x - AE(x)|^p`` over pixels, p = 1 or 2)."""
    diff = (x - ae(x)).flatten(1)
    if error == "l1":
        return diff.abs().mean(1)
    if error == "l2":
        return diff.pow(2).mean(1)
    raise ConfigError(f"error must be one of {', '.join(ERRORS)}, got {error!r}")


def validation_split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded indices into ``n`` training samples: those the autoencoder trains on and the held-out clean
    validation samples (``fraction`` of them, at least one) that set the detector's threshold."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    k = min(max(1, int(round(fraction * n))), n - 1)
    return perm[k:], perm[:k]


def train_autoencoder(
    x: Tensor, spec: DataSpec, *, config: AutoencoderConfig, seed: int, device: str = "cpu", progress: bool = True,
) -> Autoencoder:
    """Train a MagNet autoencoder on clean images ``x`` (seeded): minimise ``MSE(AE(x + noise * N(0, 1)), x)``,
    the noisy input clipped to the bounds (Meng & Chen 2017). Returned in eval mode."""
    torch.manual_seed(seed)
    ae = Autoencoder(spec, channels=config.channels).to(device)
    noise = torch.Generator().manual_seed(seed + 1)
    lo, hi = ae.bounds

    def denoising_loss(model: nn.Module, xb: Tensor, _: Tensor, epoch: int) -> Tensor:
        noisy = xb + config.noise * (hi - lo) * torch.randn(xb.shape, generator=noise).to(xb.device)
        return F.mse_loss(model(noisy.clamp(lo, hi)), xb)

    train = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        weight_decay=config.weight_decay)
    train_model(ae, x, torch.zeros(len(x)), config=train, seed=seed, loss_fn=denoising_loss,
                desc="train MagNet autoencoder", progress=progress)
    return ae.eval()
