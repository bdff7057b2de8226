"""An inverter ``I(x) -> z`` for a trained generator ``G(z)``, after Zhao, Dua & Singh 2018 ("Generating Natural
Adversarial Examples", ICLR, sec. 2): with ``G`` fixed, ``I`` minimises

    E_x ||G(I(x)) - x||^2 + lambda * E_z ||I(G(z)) - z||^2

over real images ``x`` and latent draws ``z ~ N(0, 1)``. Both terms are mean squared errors as in the authors' code
(``lamda = 0.1``, Adam, batch 80; their inverter mirrors the WGAN critic: strided convolutions with LeakyReLU, then
two linear layers). The paper trains ``I`` alongside its WGAN; here ``G`` is trained first (any generator module
with an int ``z_dim`` and ``forward(z) -> images`` in the data's bounds) and ``I`` after it.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.io import config_hash
from ..core.progress import progress_bar
from ..classifier import frozen
from ..core.validation import check_positive
from ..data import Data
from ..errors import ConfigError, DataError
from ..prerequisites import FitContext, Prerequisite
from .dcgan import Generator, _check_width, dcgan_init
from .training import GanConfig, minibatch_stream, train_unconditional_gan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InverterConfig:
    """Inverter training. ``lam`` (lambda, the weight of the latent term), Adam's betas (0.9, 0.999) and the batch of
    80 are Zhao et al.'s (their ``lamda = 0.1``); their lr is 1e-4 over 100k joint iterations, ours 1e-3 over
    ``epochs`` passes of the training data, so the inverter of a small data set trains in seconds on a CPU."""

    epochs: int = 30
    batch_size: int = 80
    lr: float = 1e-3
    lam: float = 0.1
    width: int = 64

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "width"):
            check_positive(f"inverter {name}", getattr(self, name), integer=True)
        check_positive("inverter lr", self.lr)
        check_positive("inverter lam", self.lam, allow_zero=True)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Inverter(nn.Module):
    """``I(x) -> z``: ``x`` (in ``bounds``) rescaled to ``[-1, 1]``, two stride-2 ``Conv2d(k=4, p=1)`` with
    LeakyReLU(0.2), then ``Linear -> LeakyReLU -> Linear(z_dim)`` (no batch norm: each image is inverted alone)."""

    def __init__(self, shape: tuple[int, int, int], bounds: tuple[float, float], *, z_dim: int,
                 width: int = 64) -> None:
        super().__init__()
        c, h, w = (int(s) for s in shape)
        self.z_dim = _check_width(z_dim, "Inverter", "z_dim")
        width = _check_width(width, "Inverter")
        self.shape, self.bounds = (c, h, w), (float(bounds[0]), float(bounds[1]))
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
        )
        hf, wf = h, w
        for _ in range(2):
            hf, wf = (hf - 2) // 2 + 1, (wf - 2) // 2 + 1
        self.head = nn.Sequential(nn.Linear(2 * width * hf * wf, 8 * width), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Linear(8 * width, self.z_dim))
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        lo, hi = self.bounds
        return self.head(self.features((x - lo) * (2.0 / (hi - lo)) - 1.0).flatten(1))


class InvertedGenerator(nn.Module):
    """A generator ``G(z)`` and its inverter ``I(x)``, kept (and cached) together: what the natural adversarial
    search needs. ``generate(z)`` and ``invert(x)`` run in eval mode on the module's device."""

    def __init__(self, generator: nn.Module, inverter: Inverter) -> None:
        super().__init__()
        z_dim = getattr(generator, "z_dim", None)
        if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim != inverter.z_dim:
            raise ConfigError(f"the generator's z_dim ({z_dim!r}) must be an int equal to the inverter's "
                              f"({inverter.z_dim})")
        self.generator, self.inverter = generator, inverter
        self.z_dim = z_dim

    def generate(self, z: Tensor) -> Tensor:
        return self.generator(z)

    def invert(self, x: Tensor) -> Tensor:
        return self.inverter(x)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction ``G(I(x))``."""
        return self.generator(self.inverter(x))


@dataclass
class InverterHistory:
    """Per step: the image term ``||G(I(x)) - x||^2`` and the latent term ``||I(G(z)) - z||^2`` (means)."""

    x_loss: list[float] = field(default_factory=list)
    z_loss: list[float] = field(default_factory=list)


def train_inverter(
    generator: nn.Module, x: Tensor, *, bounds: tuple[float, float], config: InverterConfig = InverterConfig(),
    seed: int = 0, device: str = "cpu", progress: bool = True,
) -> tuple[InvertedGenerator, InverterHistory]:
    """Train an :class:`Inverter` for the fixed ``generator`` on images ``x`` ``[N, C, H, W]`` (Zhao et al. 2018's
    objective, see the module docstring); the result (generator and inverter, eval mode) and the loss history.

    Weights are initialised after ``torch.manual_seed(seed)``; shuffling and latent draws come from a CPU generator
    seeded with ``seed``, so a seed gives identical weights on the CPU."""
    if x.ndim != 4 or len(x) == 0:
        raise DataError(f"train_inverter: need a non-empty batch of images [N, C, H, W], got shape {tuple(x.shape)}")
    z_dim = getattr(generator, "z_dim", None)
    if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
        raise ConfigError(f"train_inverter: the generator needs a positive int attribute z_dim, got {z_dim!r}")
    dev = torch.device(device)
    torch.manual_seed(seed)
    inverter = Inverter(tuple(x.shape[1:]), bounds, z_dim=z_dim, width=config.width).to(dev)  # type: ignore[arg-type]
    generator = generator.to(dev)
    opt = torch.optim.Adam(inverter.parameters(), lr=config.lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(seed)
    x_cpu = x.detach().cpu()
    n, bs = len(x_cpu), min(config.batch_size, len(x_cpu))
    steps = config.epochs * max(1, n // bs)
    history = InverterHistory()
    inverter.train()
    stream = minibatch_stream(n, bs, gen)
    with frozen(generator):  # the generator stays fixed, in eval mode
        for _ in progress_bar(range(steps), desc="inverter", enabled=progress, leave=False):
            xb = x_cpu[next(stream)].to(dev)
            z = torch.randn(bs, z_dim, generator=gen).to(dev)
            x_loss = F.mse_loss(generator(inverter(xb)), xb)
            z_loss = F.mse_loss(inverter(generator(z)), z)
            loss = x_loss + config.lam * z_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.x_loss.append(float(x_loss.detach()))
            history.z_loss.append(float(z_loss.detach()))
    tail = max(1, steps // 10)
    log.info("inverter: %d steps, last %d: ||G(I(x)) - x||^2 %.4f, ||I(G(z)) - z||^2 %.4f", steps, tail,
             sum(history.x_loss[-tail:]) / tail, sum(history.z_loss[-tail:]) / tail)
    return InvertedGenerator(generator, inverter.eval()).eval(), history


class InvertedGeneratorNeed(Prerequisite):
    """What the natural adversarial search (:mod:`robustbench_gan.attacks.natural`) needs: an unconditional DCGAN
    generator (:class:`~robustbench_gan.gan.dcgan.Generator`) trained on ``data``'s training images, then its
    inverter (:func:`train_inverter`), as one :class:`InvertedGenerator`: one per (data, GAN and inverter settings,
    seed, numerics) in a run, cached under a ``natural-...`` key."""

    label = "generator + inverter"

    def __init__(self, data: Data, *, seed: int, numerics: str = "", z_dim: int = 16, width: int = 64,
                 gan_epochs: int = 30, inverter_epochs: int = 30, lam: float = 0.1) -> None:
        self.data, self.seed = data, seed
        self.gan = GanConfig(epochs=gan_epochs, z_dim=z_dim, width=width)
        self.inverter = InverterConfig(epochs=inverter_epochs, lam=lam, width=width)
        parts = {"data": data.fingerprint(), "gan": self.gan.as_dict(), "inverter": self.inverter.as_dict(),
                 "seed": seed}
        if numerics:
            parts["numerics"] = numerics
        self.key = "natural-" + config_hash(parts)

    def build(self, *, device: str, progress: bool) -> InvertedGenerator:
        x = self.data.x_train
        if len(x) < 2:
            raise DataError("the natural attack trains a generator on the training split, which has "
                            f"{len(x)} image(s); give a data set with training images (e.g. a registered name)")
        generator, _ = train_unconditional_gan(x, self.data.spec, config=self.gan, seed=self.seed, device=device,
                                               progress=progress)
        models, history = train_inverter(generator, x, bounds=self.data.spec.bounds, config=self.inverter,
                                         seed=self.seed, device=device, progress=progress)
        return models.eval()

    def skeleton(self) -> InvertedGenerator:
        """An untrained generator and inverter of the right shapes (what the weight cache loads into)."""
        spec = self.data.spec
        return InvertedGenerator(Generator(spec, z_dim=self.gan.z_dim, width=self.gan.width),
                                 Inverter(spec.shape, spec.bounds, z_dim=self.gan.z_dim, width=self.inverter.width))

    def load(self, context: FitContext) -> InvertedGenerator | None:
        models = self.skeleton()
        return models.eval() if context.weights.load(self.key, models) else None

    def save(self, context: FitContext, artefact: InvertedGenerator) -> None:
        context.weights.save(self.key, artefact, {"gan": self.gan.as_dict(), "inverter": self.inverter.as_dict(),
                                                  "seed": self.seed})
