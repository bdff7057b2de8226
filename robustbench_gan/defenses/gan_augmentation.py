"""GAN-based data augmentation: a class-conditional GAN trained on the training data supplies extra labelled
samples for the classifier's training, optionally combined with adversarial training on the mix
(Gowal et al. 2021, "Improving Robustness using Generated Data", do the latter with generated data)."""
from __future__ import annotations

import logging
from typing import Any

import torch

from ..attacks.base import check_positive
from ..classifier import Classifier
from ..data import Data
from ..errors import ConfigError
from ..training import TrainConfig
from .adversarial_training import METHODS, AdversarialTraining
from .base import DEFENSES, Defense, MakeModel, NoDefense

log = logging.getLogger(__name__)

LABEL_MODES = ("conditional", "teacher")


@DEFENSES.register("gan-augmentation")
class GanAugmentation(Defense):
    """Train on real data plus ``samples`` generated ones (default: as many as the real training set).

    ``labels = "conditional"`` keeps the label the generator was conditioned on; ``"teacher"`` relabels every
    sample with a classifier trained on real data. ``min_confidence`` drops generated samples the teacher is
    less sure about than that (0: keep all). ``adversarial`` (``fgsm``, ``pgd``, ``fast`` or ``trades``) trains
    adversarially on the mix at ``eps``. ``gan_epochs``, ``d_steps``, ``z_dim`` and ``width`` configure the GAN
    (defaults: :class:`~robustbench_gan.gan.training.GanConfig`).

    After ``fit``, ``generator``, ``history`` and ``generator_key`` hold the trained GAN for quality metrics and the
    report. Set ``generators`` to a :class:`~robustbench_gan.gan.cache.GeneratorCache` to share one trained GAN
    between defenses with the same GAN settings (and to cache it on disk).
    """

    kind = "gan-augmentation"

    def __init__(
        self,
        *,
        name: str | None = None,
        samples: int | None = None,
        labels: str = "conditional",
        min_confidence: float = 0.0,
        adversarial: str | None = None,
        eps: float = 0.3,
        gan_epochs: int | None = None,
        d_steps: int = 1,
        z_dim: int | None = None,
        width: int | None = None,
    ) -> None:
        super().__init__(name=name)
        if samples is not None:
            check_positive("samples", samples, integer=True)
        if labels not in LABEL_MODES:
            raise ConfigError(f"labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}")
        if not isinstance(min_confidence, (int, float)) or not 0 <= min_confidence < 1:
            raise ConfigError(f"min_confidence must be in [0, 1), got {min_confidence!r}")
        if adversarial is not None and adversarial not in METHODS:
            raise ConfigError(f"adversarial must be one of {', '.join(METHODS)}, got {adversarial!r}")
        check_positive("eps", eps)
        self.samples, self.labels, self.min_confidence = samples, labels, float(min_confidence)
        self.adversarial, self.eps = adversarial, float(eps)
        self.gan_params = {k: v for k, v in {"epochs": gan_epochs, "d_steps": d_steps, "z_dim": z_dim,
                                              "width": width}.items() if v is not None}
        from ..gan.training import GanConfig

        self.gan_config = GanConfig(**self.gan_params)  # validates
        self.generator: torch.nn.Module | None = None
        self.history: Any = None
        self.generator_key: str | None = None
        self.generators: Any = None  # a GeneratorCache shared across defenses (the runner sets one)

    def params(self) -> dict[str, Any]:
        return {"samples": self.samples, "labels": self.labels, "min_confidence": self.min_confidence,
                "adversarial": self.adversarial, "eps": self.eps, "gan": self.gan_config.as_dict()}

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True
    ) -> Classifier:
        from ..gan.cache import GeneratorCache
        from ..gan.training import sample_balanced

        if self.generators is None:
            self.generators = GeneratorCache()
        self.generator, self.history, self.generator_key = self.generators.get(
            data, self.gan_config, seed=seed, device=device, progress=progress)
        k = data.spec.num_classes
        n = self.samples if self.samples is not None else len(data.y_train)
        x_gen, y_gen = sample_balanced(self.generator, max(1, n // k), seed=seed + 7)
        x_gen, y_gen = x_gen.cpu(), y_gen.cpu()
        if self.labels == "teacher" or self.min_confidence > 0:
            teacher = NoDefense(name=f"{self.name}-teacher").fit(make_model, data, train=train, seed=seed,
                                                                  device=device, progress=progress)
            probs = torch.softmax(teacher.predict(x_gen.to(device)), 1).cpu()
            conf, pred = probs.max(1)
            if self.labels == "teacher":
                y_gen = pred
            keep = conf >= self.min_confidence
            log.info("%s: kept %d of %d generated samples (teacher confidence >= %g)",
                     self.name, int(keep.sum()), len(keep), self.min_confidence)
            x_gen, y_gen = x_gen[keep], y_gen[keep]
        mixed = Data(torch.cat([data.x_train, x_gen]), torch.cat([data.y_train, y_gen]), data.x_test, data.y_test,
                     data.spec)
        log.info("%s: training on %d real + %d generated samples", self.name, len(data.y_train), len(y_gen))
        inner: Defense
        if self.adversarial is not None:
            inner = AdversarialTraining(name=self.name, method=self.adversarial, eps=self.eps)
        else:
            inner = NoDefense(name=self.name)
        return inner.fit(make_model, mixed, train=train, seed=seed, device=device, progress=progress)
