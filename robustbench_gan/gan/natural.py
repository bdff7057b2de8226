"""What the natural adversarial search (:mod:`robustbench_gan.attacks.natural`) needs: an unconditional generator
trained on the run's training images and its inverter (Zhao, Dua & Singh 2018), built once per run and kept in the
weight cache, as one :class:`~robustbench_gan.gan.inverter.InvertedGenerator`."""
from __future__ import annotations

import logging

from ..core.io import config_hash
from ..data import Data
from ..errors import DataError
from ..prerequisites import FitContext, Prerequisite
from .dcgan import Generator
from .inverter import InvertedGenerator, Inverter, InverterConfig, train_inverter
from .training import GanConfig, train_unconditional_gan

log = logging.getLogger(__name__)


class NaturalNeed(Prerequisite):
    """An unconditional DCGAN generator (:class:`~robustbench_gan.gan.dcgan.Generator`) trained on ``data``'s
    training images, then its inverter (:func:`~robustbench_gan.gan.inverter.train_inverter`): one per (data, GAN
    and inverter settings, seed, numerics) in a run, cached under a ``natural-...`` key."""

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
