"""Seeded training of the conditional and unconditional DCGANs (Goodfellow et al. 2014, Algorithm 1) and seeded
sampling."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..core.progress import progress_bar
from ..data import DataSpec
from ..errors import ConfigError, DataError
from .dcgan import ConditionalDiscriminator, ConditionalGenerator, Discriminator, Generator
from .packing import check_pack, pack_samples
from .steps import discriminator_step, generator_loss
from .unrolled import check_unroll, flush_denormals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GanConfig:
    """GAN hyperparameters. Adam with lr 2e-4 and beta1 0.5, batch 64 are the DCGAN settings (Radford et al. 2015,
    sec. 4); ``d_steps`` is ``k`` of Goodfellow et al. 2014, Algorithm 1 (they used k = 1). ``pack`` is PacGAN's
    degree of packing (Lin et al. 2018; 1 = off) and ``unroll`` the look-ahead of an unrolled GAN (Metz et al.
    2017; 0 = off); they combine."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    d_steps: int = 1
    z_dim: int = 64
    width: int = 64
    pack: int = 1
    unroll: int = 0
    d_width: int | None = None
    """The discriminator's width when not ``width`` (PacGAN's Table 3 weakens D to 1/4 and 1/2 of G's size)."""

    def __post_init__(self) -> None:
        check_pack(self.pack)
        check_unroll(self.unroll)
        if self.d_width is not None and (isinstance(self.d_width, bool) or not isinstance(self.d_width, int)
                                         or self.d_width < 1):
            raise ConfigError(f"d_width must be a positive integer (or left out: width), got {self.d_width!r}")
        for name in ("epochs", "batch_size", "d_steps", "z_dim", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name in ("lr", "beta1"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{name} must be a positive number, got {v!r}")
        if not self.beta1 < 1:
            raise ConfigError(f"beta1 must be in (0, 1), got {self.beta1!r}")

    def as_dict(self) -> dict[str, Any]:
        """The settings; ``pack``, ``unroll`` and ``d_width`` only when set, so a plain GAN keeps the cache key it
        always had."""
        d = asdict(self)
        for name, off in (("pack", 1), ("unroll", 0), ("d_width", None)):
            if d[name] == off:
                del d[name]
        return d


@dataclass
class GanHistory:
    """Per generator step: mean discriminator loss over its ``d_steps`` updates, generator loss, and the mean
    probabilities ``D(x)`` on real and ``D(G(z))`` on fake images seen by those discriminator updates."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    d_real: list[float] = field(default_factory=list)
    d_fake: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def generator_steps(n: int, config: GanConfig) -> int:
    """Number of generator updates :func:`train_gan` makes on ``n`` images.

    An epoch is one pass of the discriminator over the data in ``n // batch_size`` full minibatches (at least one);
    each generator step consumes ``d_steps`` of them, so there are ``epochs * batches // d_steps`` steps (at least 1).
    With ``pack`` m the step count is the same and each step draws m minibatches (``batch_size`` packs), so an
    epoch is m passes over the data: PacGAN keeps the iterations per epoch and makes the batches of packs.
    """
    batches = max(1, n // config.batch_size)
    return max(1, config.epochs * batches // config.d_steps)


def minibatch_stream(n: int, batch_size: int, gen: torch.Generator):
    """An endless stream of minibatch indices: full batches of seeded permutations, reshuffled after each pass."""
    bs = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - bs + 1, bs):
            yield perm[i : i + bs]


def train_gan(
    x: Tensor,
    y: Tensor,
    spec: DataSpec,
    *,
    config: GanConfig,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[ConditionalGenerator, GanHistory]:
    """Train a class-conditional DCGAN on ``(x, y)`` and return its generator (in eval mode) and the history.

    ``config.pack`` > 1 packs the discriminator's inputs (PacGAN; every step then draws ``batch_size * pack``
    real and generated images, see :mod:`.packing`), ``config.unroll`` > 0 unrolls it (:mod:`.unrolled`).

    Algorithm 1 of Goodfellow et al. 2014 ("Generative Adversarial Nets"): each generator step follows
    ``config.d_steps`` discriminator steps (``k``), each on a fresh real minibatch and fresh noise, minimising
    binary cross-entropy on real (target 1) and generated (target 0) images. The generator uses the
    *non-saturating* loss of the same paper (sec. 3): it maximises ``log D(G(z))`` (BCE of ``D(G(z))`` against 1)
    rather than minimising ``log(1 - D(G(z)))``, which gives stronger gradients early in training. Both nets
    use Adam(lr, betas=(beta1, 0.999)) as in DCGAN (Radford et al. 2015). Labels for generated images are drawn
    uniformly from the classes. Weights are initialised after ``torch.manual_seed(seed)``; shuffling and noise
    come from a CPU ``torch.Generator`` seeded with ``seed``, so a seed gives identical weights on the CPU.
    """
    if len(x) != len(y) or len(x) == 0:
        raise DataError(f"train_gan: need a non-empty set with one label per image, got {len(x)} images, {len(y)} labels")
    return _train(x, y, spec, config=config, seed=seed, device=device, progress=progress, who="train_gan")


def train_unconditional_gan(
    x: Tensor,
    spec: DataSpec,
    *,
    config: GanConfig = GanConfig(),
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[Generator, GanHistory]:
    """Train an unconditional DCGAN (:class:`~.dcgan.Generator`, :class:`~.dcgan.Discriminator`) on the images
    ``x`` and return its generator (in eval mode) and the loss history.

    The same loop as :func:`train_gan` (Goodfellow et al. 2014, Algorithm 1 with the non-saturating generator
    loss; Adam as in Radford et al. 2015) without labels: what Defense-GAN (Samangouei et al. 2018, sec. 3)
    projects onto. Seeded the same way: a seed gives identical weights on the CPU.
    """
    if len(x) == 0:
        raise DataError("train_unconditional_gan: need a non-empty set of images")
    return _train(x, None, spec, config=config, seed=seed, device=device, progress=progress,
                  who="train_unconditional_gan")


def _train(
    x: Tensor, y: Tensor | None, spec: DataSpec, *, config: GanConfig, seed: int, device: str, progress: bool,
    who: str,
) -> tuple[Any, GanHistory]:
    """The GAN loop of :func:`train_gan` (``y`` given: class-conditional) and :func:`train_unconditional_gan`."""
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(spec.shape):
        raise DataError(f"{who}: images have shape {tuple(x.shape)}, expected [N, {', '.join(map(str, spec.shape))}]")
    if min(len(x), config.batch_size) < 2:
        raise ConfigError(f"{who}: batch norm needs minibatches of at least 2 images (batch_size >= 2, N >= 2)")
    conditional = y is not None
    torch.manual_seed(seed)
    dev = torch.device(device)
    g: nn.Module
    d: nn.Module
    m = config.pack
    if conditional:
        g = ConditionalGenerator(spec, z_dim=config.z_dim, width=config.width).to(dev)
        d = ConditionalDiscriminator(spec, width=config.d_width or config.width, pack=m).to(dev)
    else:
        g = Generator(spec, z_dim=config.z_dim, width=config.width).to(dev)
        d = Discriminator(spec, width=config.d_width or config.width, pack=m).to(dev)
    betas = (config.beta1, 0.999)
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=betas)
    gen = torch.Generator().manual_seed(seed)
    x_cpu = x.detach().cpu()
    y_cpu = y.detach().cpu().long() if y is not None else None
    k = spec.num_classes
    n = len(x_cpu)
    stream = minibatch_stream(n, config.batch_size, gen)
    steps = generator_steps(n, config)
    bs = min(config.batch_size, n)

    def noise() -> tuple[Tensor, ...]:
        """Generator inputs for ``bs`` packs: ``(z, labels)`` when conditional (labels uniform over the classes),
        else ``(z,)``."""
        z = torch.randn(bs * m, config.z_dim, generator=gen)
        if not conditional:
            return (z.to(dev),)
        labels = torch.randint(0, k, (bs * m,), generator=gen)
        return z.to(dev), labels.to(dev)

    def real() -> tuple[Tensor, ...]:
        """``bs`` packs of real images (and labels): ``m`` consecutive minibatches of the stream."""
        idx = next(stream) if m == 1 else torch.cat([next(stream) for _ in range(m)])
        return (x_cpu[idx].to(dev),) if y_cpu is None else (x_cpu[idx].to(dev), y_cpu[idx].to(dev))

    def packed(x: Tensor, *labels: Tensor) -> tuple[Tensor, ...]:
        """Discriminator inputs: images in packs of ``m`` (and labels ``[bs, m]``; ``[bs]`` without packing)."""
        return (pack_samples(x, m), *(lab if m == 1 else lab.view(-1, m) for lab in labels))

    history = GanHistory()
    ones = torch.ones(bs, device=dev)
    zeros = torch.zeros(bs, device=dev)
    g.train()
    d.train()
    bar = progress_bar(total=steps, desc="gan", enabled=progress, leave=False)
    with flush_denormals(config.unroll > 0):
        for step in range(steps):
            d_losses, reals, fakes = [], [], []
            for _ in range(config.d_steps):
                xb = packed(*real())
                z = noise()
                with torch.no_grad():
                    fake = g(*z)
                loss, p_real, p_fake = discriminator_step(d, opt_d, xb, packed(fake, *z[1:]), ones, zeros)
                d_losses.append(loss)
                reals.append(p_real)
                fakes.append(p_fake)
            z = noise()
            loss_g, g_term = generator_loss(d, opt_d, xb, packed(g(*z), *z[1:]), ones, zeros, config.unroll)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            history.d_loss.append(sum(d_losses) / len(d_losses))
            history.g_loss.append(float(g_term.detach()))
            history.d_real.append(sum(reals) / len(reals))
            history.d_fake.append(sum(fakes) / len(fakes))
            bar.update(1)
            if step % 20 == 0 or step == steps - 1:
                bar.set_postfix(d=f"{history.d_loss[-1]:.3f}", g=f"{history.g_loss[-1]:.3f}")
    bar.close()
    tail = max(1, steps // 10)
    log.info(
        "%s: %d generator steps, last %d: d_loss %.3f g_loss %.3f D(x) %.3f D(G(z)) %.3f",
        "gan" if conditional else "unconditional gan", steps, tail,
        sum(history.d_loss[-tail:]) / tail, sum(history.g_loss[-tail:]) / tail,
        sum(history.d_real[-tail:]) / tail, sum(history.d_fake[-tail:]) / tail,
    )
    return g.eval(), history


def _device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def sample(generator: ConditionalGenerator, labels: Tensor, *, seed: int = 0, batch_size: int = 512) -> Tensor:
    """Images ``G(z, labels)`` in eval mode without gradients; ``z`` comes from a CPU generator seeded with ``seed``."""
    labels = labels.detach().cpu().long().reshape(-1)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= generator.num_classes):
        raise DataError(f"sample: labels must be in [0, {generator.num_classes - 1}]")
    return _generate(generator, len(labels), seed=seed, batch_size=batch_size, labels=labels)


@torch.no_grad()
def sample_unconditional(generator: Generator, n: int, *, seed: int = 0, batch_size: int = 512) -> Tensor:
    """``n`` images ``G(z)`` of an unconditional generator, in eval mode without gradients; ``z`` comes from a CPU
    generator seeded with ``seed``."""
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    return _generate(generator, int(n), seed=seed, batch_size=batch_size, labels=None)


def _generate(generator: nn.Module, n: int, *, seed: int, batch_size: int, labels: Tensor | None) -> Tensor:
    dev = _device(generator)
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    was_training = generator.training
    generator.eval()
    try:
        outs = [
            generator(z[i : i + batch_size].to(dev), *(() if labels is None else (labels[i : i + batch_size].to(dev),)))
            for i in range(0, n, batch_size)
        ]
    finally:
        generator.train(was_training)
    if not outs:
        return torch.empty(0, *generator.shape, device=dev)
    return torch.cat(outs)


def sample_balanced(generator: ConditionalGenerator, n_per_class: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n_per_class`` images of every class (labels ``0, 0, ..., 1, 1, ...``) and their labels."""
    if isinstance(n_per_class, bool) or int(n_per_class) != n_per_class or n_per_class < 1:
        raise ConfigError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    labels = torch.arange(generator.num_classes).repeat_interleave(int(n_per_class))
    images = sample(generator, labels, seed=seed)
    return images, labels.to(images.device)
