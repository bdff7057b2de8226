"""Trained generators, shared by every defense that asks for the same (data, GAN config, seed) and kept on disk
next to the classifier weights, so a suite with several GAN defenses trains each distinct GAN once."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..core.io import atomic_write_text, config_hash
from ..data import Data
from ..core.weight_cache import WeightCache
from .dcgan import ConditionalGenerator, Generator
from . import training
from .training import GanConfig, GanHistory

log = logging.getLogger(__name__)


class GeneratorCache:
    """``get`` returns ``(generator, history, key)``: from memory, from the weight cache (checksummed state_dict
    plus a JSON loss history), or freshly trained with :func:`~robustbench_gan.gan.training.train_gan`
    (``conditional=False``: :func:`~robustbench_gan.gan.training.train_unconditional_gan`, keys ``ugan-...``)."""

    def __init__(self, weights: WeightCache | None = None, numerics: str = "", *, conditional: bool = True) -> None:
        self.weights = weights if weights is not None else WeightCache(None)
        self.numerics = numerics  # device and CPU threads: part of the key (see core.device.numerics)
        self.conditional = conditional
        self._memo: dict[str, tuple[ConditionalGenerator | Generator, GanHistory]] = {}
        self.trained = 0  # generators trained (not loaded) by this cache: a count tests and logs can rely on

    def key(self, data: Data, config: GanConfig, seed: int) -> str:
        parts = {"data": data.fingerprint(), "gan": config.as_dict(), "seed": seed}
        if self.numerics:
            parts["numerics"] = self.numerics
        return ("gan-" if self.conditional else "ugan-") + config_hash(parts)

    def _history_path(self, key: str) -> Path | None:
        path = self.weights.path(key)
        return path.with_suffix(".history.json") if path is not None else None

    def get(
        self, data: Data, config: GanConfig, *, seed: int, device: str, progress: bool = True
    ) -> tuple[ConditionalGenerator | Generator, GanHistory, str]:
        key = self.key(data, config, seed)
        if key in self._memo:
            return (*self._memo[key], key)
        loaded = self.load(key, data, config)
        if loaded is not None:
            generator, history = loaded[0].to(device).eval(), loaded[1]
        else:
            generator, history = self.train(data, config, seed=seed, device=device, progress=progress)
            self.trained += 1
            self.save(key, generator, history, config, seed)
        self._memo[key] = (generator, history)
        return generator, history, key

    def train(self, data: Data, config: GanConfig, *, seed: int, device: str, progress: bool = True,
              ) -> tuple[ConditionalGenerator | Generator, GanHistory]:
        """Train this cache's kind of GAN on ``data``'s training images (no cache involved)."""
        if self.conditional:  # looked up on the module at call time (tests count calls by patching it)
            return training.train_gan(data.x_train, data.y_train, data.spec, config=config, seed=seed, device=device,
                             progress=progress)
        return training.train_unconditional_gan(data.x_train, data.spec, config=config, seed=seed, device=device,
                                       progress=progress)

    def load(self, key: str, data: Data, config: GanConfig,
             ) -> tuple[ConditionalGenerator | Generator, GanHistory] | None:
        """The generator and its loss history from the weight cache (CPU, eval mode); None when not there."""
        kind = ConditionalGenerator if self.conditional else Generator
        generator = kind(data.spec, z_dim=config.z_dim, width=config.width)
        history = self._load_history(key)
        if history is None or not self.weights.load(key, generator):
            return None
        return generator.eval(), history

    def save(self, key: str, generator: ConditionalGenerator | Generator, history: GanHistory, config: GanConfig,
             seed: int) -> None:
        """Write the generator's weights and loss history to the weight cache (nothing without a folder)."""
        self.weights.save(key, generator, {"gan": config.as_dict(), "seed": seed})
        path = self._history_path(key)
        if path is not None:
            atomic_write_text(path, json.dumps(history.as_dict()))

    def _load_history(self, key: str) -> GanHistory | None:
        path = self._history_path(key)
        if path is None or not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return GanHistory(**{k: [float(v) for v in doc[k]] for k in ("d_loss", "g_loss", "d_real", "d_fake")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable GAN history %s (%s); retraining", path, exc)
            return None
