"""2-D Gaussian-mixture benchmarks of mode collapse, MLP GANs for them (with packing and unrolling), and their
metrics.

The ring of 8 Gaussians is from Metz et al. 2016 ("Unrolled Generative Adversarial Networks", sec. 3.1); the
5x5 grid and the metrics (modes captured, fraction of high-quality samples) follow Srivastava et al. 2017
("VEEGAN", sec. 5.1 and Table 1), where a vanilla GAN captures 1.0 of 8 ring modes and VEEGAN 8.0. PacGAN
(Lin et al. 2018, sec. 5.1 and its code, fjxmlzn/PacGAN) re-configured both: a unit-circle ring with std 0.01
and the grid with std 0.05, 100,000 training points, 2,500 samples scored, and a reverse KL column;
:data:`BENCHMARKS` holds both papers' variants.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..core.progress import progress_bar
from ..errors import ConfigError, DataError
from .packing import check_pack, pack_samples
from .steps import discriminator_step, generator_loss
from .unrolled import check_unroll, flush_denormals

log = logging.getLogger(__name__)

RING_STD = 0.02
"""Standard deviation of each ring component (VEEGAN, sec. 5.1)."""
GRID_STD = 0.02
"""Standard deviation of each grid component (VEEGAN, sec. 5.1)."""


@dataclass(frozen=True)
class ToyBenchmark:
    """A 2-D mode-collapse benchmark: ``centers`` ``[k, 2]`` of an equal-weight mixture with isotropic ``std``,
    ``train_points`` drawn once to train on and ``samples`` generated points scored (:func:`toy_metrics`)."""

    name: str
    centers: Tensor
    std: float
    train_points: int
    samples: int
    source: str

    def data(self, *, seed: int = 0) -> Tensor:
        """The training points (seeded)."""
        return sample_mixture(self.centers, self.train_points, self.std, seed=seed)


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    return v


def ring_centers(n: int = 8, radius: float = 2.0) -> Tensor:
    """``n`` centres evenly spaced on a circle of ``radius`` around the origin, ``[n, 2]`` (Metz et al. 2016)."""
    _positive_int(n, "n")
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def grid_centers(n: int = 25, spacing: float = 2.0) -> Tensor:
    """A square grid of ``n`` centres (``n`` a perfect square) centred at 0: 25 with spacing 2 spans -4..4."""
    _positive_int(n, "n")
    side = math.isqrt(n)
    if side * side != n:
        raise ConfigError(f"grid_centers needs a perfect square n, got {n}")
    coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float()


def sample_mixture(centers: Tensor, n: int, std: float, *, seed: int) -> Tensor:
    """``n`` points of the equal-weight Gaussian mixture with the given ``centers`` and isotropic ``std``."""
    _positive_int(n, "n")
    if centers.ndim != 2 or len(centers) == 0:
        raise DataError(f"centers must be a non-empty [k, d] tensor, got shape {tuple(centers.shape)}")
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(0, len(centers), (n,), generator=gen)
    noise = torch.randn(n, centers.shape[1], generator=gen)
    return centers.float()[which] + float(std) * noise


def _benchmarks() -> dict[str, ToyBenchmark]:
    ring_pacgan = ToyBenchmark("ring-8", ring_centers(8, radius=1.0), 0.01, 100_000, 2_500,
                               "PacGAN (Lin et al. 2018) sec. 5.1 / fjxmlzn/PacGAN 2DRing config")
    grid_pacgan = ToyBenchmark("grid-25", grid_centers(25, spacing=2.0), 0.05, 100_000, 2_500,
                               "PacGAN (Lin et al. 2018) sec. 5.1 / fjxmlzn/PacGAN 2DGrid config")
    ring_veegan = ToyBenchmark("ring-8-veegan", ring_centers(8, radius=2.0), RING_STD, 10_000, 2_500,
                               "VEEGAN (Srivastava et al. 2017) sec. 5.1")
    grid_veegan = ToyBenchmark("grid-25-veegan", grid_centers(25, spacing=2.0), GRID_STD, 10_000, 2_500,
                               "VEEGAN (Srivastava et al. 2017) sec. 5.1")
    return {b.name: b for b in (ring_pacgan, grid_pacgan, ring_veegan, grid_veegan)}


def _mlp(d_in: int, d_out: int, hidden: int, layers: int, act: type[nn.Module] | nn.Module) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = d_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), act() if isinstance(act, type) else act]
        width = hidden
    mods.append(nn.Linear(width, d_out))
    return nn.Sequential(*mods)


class ToyGenerator(nn.Module):
    """MLP generator ``z -> x``: ``layers`` hidden ReLU layers of ``hidden`` units and a linear output."""

    def __init__(self, *, z_dim: int = 2, hidden: int = 128, layers: int = 3, out_dim: int = 2) -> None:
        super().__init__()
        self.z_dim = _positive_int(z_dim, "z_dim")
        self.net = _mlp(self.z_dim, out_dim, _positive_int(hidden, "hidden"), _positive_int(layers, "layers"), nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """MLP discriminator ``x -> logit``: ``layers`` hidden LeakyReLU(0.2) layers of ``hidden`` units."""

    def __init__(self, *, hidden: int = 128, layers: int = 3, in_dim: int = 2) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.net = _mlp(in_dim, 1, _positive_int(hidden, "hidden"), _positive_int(layers, "layers"), act)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


class Maxout(nn.Module):
    """``max`` over ``pieces`` linear maps ``in_dim -> out_dim`` (Goodfellow et al. 2013), as Blocks'
    ``LinearMaxout`` that PacGAN's discriminator uses."""

    def __init__(self, in_dim: int, out_dim: int, pieces: int) -> None:
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = nn.Linear(in_dim, out_dim * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(-1, self.out_dim, self.pieces).amax(dim=2)


class PacGanToyGenerator(nn.Module):
    """PacGAN's 2-D generator (fjxmlzn/PacGAN, ``create_model_brick``): ``z`` (2-D standard normal) through 4
    hidden layers of 400 units, each batch norm then ReLU without biases, and a linear output with a bias."""

    def __init__(self, *, z_dim: int = 2, hidden: int = 400, layers: int = 4, out_dim: int = 2) -> None:
        super().__init__()
        self.z_dim = _positive_int(z_dim, "z_dim")
        mods: list[nn.Module] = []
        width = self.z_dim
        for _ in range(_positive_int(layers, "layers")):
            mods += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()]
            width = hidden
        mods.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*mods)
        _gaussian_init(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class PacGanToyDiscriminator(nn.Module):
    """PacGAN's 2-D discriminator: 3 maxout layers of 200 units with 5 pieces and a linear logit; its input is
    ``pack`` points, ``2 * pack`` numbers (the only layer packing widens)."""

    def __init__(self, *, in_dim: int = 2, hidden: int = 200, layers: int = 3, pieces: int = 5) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        width = in_dim
        for _ in range(_positive_int(layers, "layers")):
            mods.append(Maxout(width, hidden, pieces))
            width = hidden
        mods.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*mods)
        _gaussian_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def _gaussian_init(module: nn.Module) -> None:
    """PacGAN's initialisation: weights N(0, 0.02), biases 0 (batch norm: scale 1, shift 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


ARCHS = ("mlp", "pacgan")
"""``mlp``: :class:`ToyGenerator`/:class:`ToyDiscriminator` (3 x 128); ``pacgan``: PacGAN's 4 x 400 batch-norm
generator and 3 x 200 maxout discriminator."""


@dataclass
class ToyHistory:
    """Per generator step: mean discriminator loss, generator loss, mean ``D(x)`` and ``D(G(z))`` probabilities."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    d_real: list[float] = field(default_factory=list)
    d_fake: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_toy_gan(
    data: Tensor,
    *,
    steps: int = 2500,
    batch_size: int = 256,
    lr: float = 1e-3,
    d_steps: int = 1,
    z_dim: int = 2,
    beta1: float = 0.5,
    lr_decay: bool = True,
    seed: int = 0,
    progress: bool = True,
    pack: int = 1,
    unroll: int = 0,
    arch: str = "mlp",
) -> tuple[nn.Module, ToyHistory]:
    """Train an MLP GAN on 2-D points ``data`` ``[N, 2]`` for ``steps`` generator steps; return G (eval) and history.

    Goodfellow et al. 2014, Algorithm 1 with ``d_steps`` discriminator steps per generator step, each on a fresh
    minibatch drawn with replacement from ``data``, and the non-saturating generator loss (maximise
    ``log D(G(z))``, sec. 3). Adam(lr, betas=(beta1, 0.999)); with ``lr_decay`` both learning rates fall linearly
    to 0 over the run, which lets the samples settle onto the modes instead of orbiting them (measured here: on
    the 8-Gaussian ring the high-quality fraction rises from about 0.45 to about 0.8; ``z_dim=2`` is more stable
    than 8). Weights after ``torch.manual_seed(seed)``; minibatches and noise from a CPU generator seeded with
    ``seed``. About 15 s on one CPU core with the defaults.

    ``pack`` > 1 is PacGAN (:mod:`.packing`): ``batch_size`` packs of ``pack`` independent points each, real or
    generated, so every step draws ``batch_size * pack`` of each. ``unroll`` = k > 0 is an unrolled GAN
    (:mod:`.unrolled`): the generator's loss is that of the discriminator after k look-ahead steps on the
    generator step's minibatch. ``arch`` picks the networks (:data:`ARCHS`). ``pack=1, unroll=0`` is the plain
    GAN, draw for draw.
    """
    for name, v in (("steps", steps), ("batch_size", batch_size), ("d_steps", d_steps), ("z_dim", z_dim)):
        _positive_int(v, name)
    pack, unroll = check_pack(pack), check_unroll(unroll)
    if arch not in ARCHS:
        raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if not lr > 0 or not 0 <= beta1 < 1:
        raise ConfigError(f"lr must be positive and beta1 in [0, 1), got lr={lr!r}, beta1={beta1!r}")
    if data.ndim != 2 or len(data) == 0:
        raise DataError(f"data must be a non-empty [N, d] tensor of points, got shape {tuple(data.shape)}")
    data = data.detach().float().cpu()
    dim = data.shape[1]
    torch.manual_seed(seed)
    g: nn.Module
    d: nn.Module
    if arch == "mlp":
        g, d = ToyGenerator(z_dim=z_dim, out_dim=dim), ToyDiscriminator(in_dim=dim * pack)
    else:
        g, d = PacGanToyGenerator(z_dim=z_dim, out_dim=dim), PacGanToyDiscriminator(in_dim=dim * pack)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(beta1, 0.999))
    gen = torch.Generator().manual_seed(seed)
    ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
    n = batch_size * pack
    history = ToyHistory()
    bar = progress_bar(total=steps, desc="toy gan", enabled=progress, leave=False)
    g.train()
    d.train()
    with flush_denormals(unroll > 0):
        _toy_loop(g, d, opt_g, opt_d, data, gen, history, bar, steps=steps, lr=lr, lr_decay=lr_decay,
                  d_steps=d_steps, z_dim=z_dim, n=n, pack=pack, unroll=unroll, ones=ones, zeros=zeros)
    bar.close()
    log.info("toy gan: %d steps, final d_loss %.3f g_loss %.3f", steps, history.d_loss[-1], history.g_loss[-1])
    return g.eval(), history


def _toy_loop(g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, data: Tensor,
              gen: torch.Generator, history: ToyHistory, bar: Any, *, steps: int, lr: float, lr_decay: bool,
              d_steps: int, z_dim: int, n: int, pack: int, unroll: int, ones: Tensor, zeros: Tensor) -> None:
    """The training steps of :func:`train_toy_gan`."""
    for step in range(steps):
        if lr_decay:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr * (1 - step / steps)
        d_losses, reals, fakes = [], [], []
        for _ in range(d_steps):
            real = pack_samples(data[torch.randint(0, len(data), (n,), generator=gen)], pack)
            with torch.no_grad():
                fake = pack_samples(g(torch.randn(n, z_dim, generator=gen)), pack)
            loss, p_real, p_fake = discriminator_step(d, opt_d, (real,), (fake,), ones, zeros)
            d_losses.append(loss)
            reals.append(p_real)
            fakes.append(p_fake)
        fake = pack_samples(g(torch.randn(n, z_dim, generator=gen)), pack)
        loss_g, g_term = generator_loss(d, opt_d, (real,), (fake,), ones, zeros, unroll)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        history.d_loss.append(sum(d_losses) / d_steps)
        history.g_loss.append(float(g_term.detach()))
        history.d_real.append(sum(reals) / d_steps)
        history.d_fake.append(sum(fakes) / d_steps)
        bar.update(1)
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(d=f"{history.d_loss[-1]:.3f}", g=f"{history.g_loss[-1]:.3f}")


@torch.no_grad()
def sample_toy(generator: nn.Module, n: int, *, seed: int = 0) -> Tensor:
    """``n`` generated points, noise from a CPU generator seeded with ``seed``."""
    _positive_int(n, "n")
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return generator.eval()(z)


def toy_metrics(samples: Tensor, centers: Tensor, std: float) -> dict[str, Any]:
    """Mode-collapse metrics of Srivastava et al. 2017 (VEEGAN, sec. 5.1) as PacGAN's code computes them
    (fjxmlzn/PacGAN, ``MetricLogger``).

    A sample is *high quality* if it lies closer than ``3 * std`` to its nearest centre; a mode is *captured* if
    at least one high-quality sample is nearest to it. ``reverse_kl`` is ``KL(p || uniform)`` in nats, ``p`` the
    distribution of the high-quality samples over the modes (PacGAN's "reverse KL": ``log k`` minus the entropy
    of that coverage; ``inf`` when no sample is of high quality). Returns ``{"modes_captured": int,
    "high_quality_fraction": float, "reverse_kl": float}``.
    """
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1] or len(centers) == 0:
        raise DataError(
            f"samples [N, d] and centers [k, d] must agree in d, got {tuple(samples.shape)} and {tuple(centers.shape)}"
        )
    if len(samples) == 0:
        return {"modes_captured": 0, "high_quality_fraction": 0.0, "reverse_kl": math.inf}
    dist = torch.cdist(samples.detach().double().cpu(), centers.double().cpu())
    nearest_d, nearest = dist.min(dim=1)
    good = nearest_d < 3 * float(std)
    counts = torch.bincount(nearest[good], minlength=len(centers)).double()
    if counts.sum() > 0:
        p = counts[counts > 0] / counts.sum()
        reverse_kl = float((p * (p * len(centers)).log()).sum())
    else:
        reverse_kl = math.inf
    return {
        "modes_captured": int((counts > 0).sum()),
        "high_quality_fraction": float(good.double().mean()),
        "reverse_kl": reverse_kl,
    }


BENCHMARKS: dict[str, ToyBenchmark] = _benchmarks()
"""``ring-8``/``grid-25``: PacGAN's configuration (unit-circle ring, std 0.01; grid std 0.05; 100,000 training
points); ``ring-8-veegan``/``grid-25-veegan``: VEEGAN's (ring radius 2, both std 0.02; 10,000 training points
here, a number VEEGAN does not give). 2,500 samples are scored on each, as PacGAN does."""
