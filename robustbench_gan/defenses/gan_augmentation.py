"""GAN-based data augmentation: a class-conditional GAN trained on the training data supplies extra labelled
samples for the classifier's training, optionally combined with adversarial training on the mix
(Gowal et al. 2021, "Improving Robustness using Generated Data", do the latter with generated data)."""
from __future__ import annotations

import copy
import logging
from typing import Any

import torch

from ..classifier import Classifier
from ..core.validation import check_positive
from ..data import Data
from ..errors import ConfigError
from ..classifier_training import TrainConfig
from .adversarial_training import METHODS, AdversarialTraining
from .base import DEFENSES, Defense, FitContext, MakeModel, NoDefense, Prerequisite, ReportContext

log = logging.getLogger(__name__)

LABEL_MODES = ("conditional", "teacher")


@DEFENSES.register("gan-augmentation")
class GanAugmentation(Defense):
    """Train on real data plus ``samples`` generated ones (default: as many as the real training set).

    ``labels = "conditional"`` keeps the label the generator was conditioned on; ``"teacher"`` relabels every
    sample with a classifier trained on real data. ``min_confidence`` drops generated samples the teacher is
    less sure about than that (0: keep all). ``adversarial`` (``fgsm``, ``pgd``, ``fast`` or ``trades``) trains
    adversarially on the mix at ``eps``. ``gan_epochs``, ``d_steps``, ``z_dim`` and ``width`` configure the GAN
    (defaults: :class:`~robustbench_gan.gan.training.GanConfig`); ``pack`` (PacGAN, Lin et al. 2018: 2 to 4; 1 =
    off) packs its discriminator's inputs and ``unroll`` (Metz et al. 2017: 5 or 10; 0 = off) unrolls it, the two
    remedies for mode collapse (a class or style the generator drops is one the augmentation cannot protect).

    The GAN is trained once per (data, GAN settings, seed) and shared by every defense of a run that asks for
    the same one (through the fit context's memo; on disk in its weight cache). :meth:`report` hands back the
    generator's quality metrics, sample grid, losses and corner cases for the report.
    """

    report_uses_reference = True

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
        pack: int = 1,
        unroll: int = 0,
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
        self.gan_config = gan_config(gan_epochs=gan_epochs, d_steps=d_steps, z_dim=z_dim, width=width, pack=pack,
                                     unroll=unroll)
        self.generator: torch.nn.Module | None = None  # the GAN of the last fit (for a caller's own use)
        self.history: Any = None
        self.generator_key: str | None = None

    def params(self) -> dict[str, Any]:
        return {"samples": self.samples, "labels": self.labels, "min_confidence": self.min_confidence,
                "adversarial": self.adversarial, "eps": self.eps, "gan": self.gan_config.as_dict()}

    def generator_need(self, data: Data, *, seed: int, context: FitContext) -> Prerequisite:
        """The class-conditional GAN this defense samples from: one per (data, GAN settings, seed) in a run."""
        return GeneratorNeed(data, self.gan_config, seed, context.numerics)

    def prerequisites(self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int,
                      context: FitContext) -> list[Prerequisite]:
        return [self.generator_need(data, seed=seed, context=context)]

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        from ..gan.training import sample_balanced

        context = context or FitContext()
        need = self.generator_need(data, seed=seed, context=context)
        generator, self.history = context.obtain(need, device=device, progress=progress)
        generator, self.generator_key = generator.to(device).eval(), need.key
        self.generator = generator
        k = data.spec.num_classes
        n = self.samples if self.samples is not None else len(data.y_train)
        x_gen, y_gen = sample_balanced(generator, max(1, n // k), seed=seed + 7)
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

    def report(self, ctx: ReportContext) -> dict[str, Any]:
        """``{"gan": ...}``: the generator's metrics, grid and losses (computed once per generator and run) and the
        corner cases of this model's undefended classifier (once per generator and model)."""
        from ..gan.report import corner_case_report, generator_report

        need = self.generator_need(ctx.data, seed=ctx.seed, context=ctx.fit)
        generator, history = ctx.fit.obtain(need, device=ctx.device, progress=False)
        generator, key = generator.to(ctx.device).eval(), need.key
        memo = ctx.fit.shared.setdefault("gan-reports", {})
        if key not in memo:
            memo[key] = generator_report(generator, history, key, self.gan_config, reference=ctx.reference(),
                                         real_x=ctx.data.x_test, real_y=ctx.data.y_test, spec=ctx.data.spec,
                                         seed=ctx.seed, device=ctx.device)
        if (key, ctx.model) not in memo:  # the same for every defense of this model using this generator
            memo[(key, ctx.model)] = corner_case_report(generator, ctx.classifier(ctx.model, "none"), model=ctx.model,
                                                        spec=ctx.data.spec, seed=ctx.seed, device=ctx.device)
        details = copy.deepcopy(memo[key])
        details.update(model=ctx.model, defense=ctx.defense, corner_cases=copy.deepcopy(memo[(key, ctx.model)]))
        details["metrics"].update(model=ctx.model, defense=ctx.defense)
        return {"gan": details}


def gan_config(*, gan_epochs: int | None, d_steps: int, z_dim: int | None, width: int | None, pack: int = 1,
               unroll: int = 0) -> Any:
    """The validated :class:`~robustbench_gan.gan.training.GanConfig` of a GAN defense's suite keys (None: its
    default)."""
    from ..gan.training import GanConfig

    given = {"epochs": gan_epochs, "d_steps": d_steps, "z_dim": z_dim, "width": width, "pack": pack, "unroll": unroll}
    return GanConfig(**{k: v for k, v in given.items() if v is not None})


class GeneratorNeed(Prerequisite):
    """A trained class-conditional generator and its loss history, ``(generator, history)``, kept in the weight
    cache under :meth:`GeneratorCache.key <robustbench_gan.gan.cache.GeneratorCache.key>`."""

    label = "GAN generator"
    conditional = True

    def __init__(self, data: Data, config: Any, seed: int, numerics: str) -> None:
        self.data, self.config, self.seed = data, config, seed
        self.key = self._cache(None, numerics).key(data, config, seed)

    def _cache(self, weights: Any, numerics: str) -> Any:
        from ..gan.cache import GeneratorCache

        return GeneratorCache(weights, numerics, conditional=self.conditional)

    def build(self, *, device: str, progress: bool) -> tuple[Any, Any]:
        generator, history = self._cache(None, "").train(self.data, self.config, seed=self.seed, device=device,
                                                         progress=progress)
        return generator.eval(), history

    def load(self, context: FitContext) -> tuple[Any, Any] | None:
        return self._cache(context.weights, context.numerics).load(self.key, self.data, self.config)

    def save(self, context: FitContext, artefact: tuple[Any, Any]) -> None:
        self._cache(context.weights, context.numerics).save(self.key, *artefact, self.config, self.seed)


class UnconditionalGeneratorNeed(GeneratorNeed):
    """A trained unconditional generator (:class:`robustbench_gan.gan.dcgan.Generator`, trained on the training
    images by :func:`~robustbench_gan.gan.training.train_unconditional_gan`) and its loss history,
    ``(generator, history)``: one per (data, :class:`~robustbench_gan.gan.training.GanConfig`, seed) in a run,
    kept in the weight cache under an ``ugan-...`` key. ``UnconditionalGeneratorNeed(data, config, seed,
    context.numerics)``, then ``context.obtain(need, device=..., progress=...)``."""

    label = "unconditional GAN generator"
    conditional = False
