"""MagNet (Meng & Chen 2017, "MagNet: a Two-Pronged Defense against Adversarial Examples", CCS): an autoencoder
trained on clean data *reforms* inputs (the classifier sees ``AE(x)``) and *detects* them (inputs whose
reconstruction error is above a threshold are rejected).

Evaluation semantics (the same for every attack evaluated through :mod:`robustbench_gan.evaluation`): a
rejected adversarial input counts as defended, so robust accuracy is the fraction of samples classified
correctly when clean whose adversarial input is rejected or still classified correctly; an attack succeeds on a
sample only when its input is not rejected and misclassified. The records of a MagNet model add
``detected_clean`` (fraction of clean test inputs rejected: the false-positive rate on test data) and
``detected`` (fraction of adversarial inputs rejected); models without a detector have no such columns.

Adaptive attacks: the autoencoder is differentiable, so the naive white-box attack (``adaptive = "none"``)
already differentiates through the reformer (MagNet's white-box setting); ``bpda`` treats the reformer as the
identity; ``detector-aware`` differentiates through it *and* adds the detector to the loss (Carlini & Wagner 2017,
"Adversarial Examples Are Not Easily Detected"): the attack loses ``REJECTION_WEIGHT`` times how far the input is
over the threshold and succeeds only below it. Give that attack ``loss = "margin"``: the unbounded cross-entropy
outweighs the rejection term (MNIST, PGD-40 at eps 0.3: 44% success with CE, 87% with the margin loss;
``benchmarks/magnet_mnist.py``).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ..classifier import Classifier
from ..core.io import config_hash
from ..core.validation import check_bool
from ..data import Data
from ..errors import ConfigError
from ..gan.autoencoder import (
    ERRORS, Autoencoder, AutoencoderConfig, reconstruction_error, train_autoencoder, validation_split,
)
from ..purified import Purifier, PurifiedClassifier, Rejecting, Transform
from ..classifier_training import TrainConfig
from .base import DEFENSES, Defense, FitContext, MakeModel, NoDefense, Prerequisite

log = logging.getLogger(__name__)


class MagNetPurifier(Purifier):
    """The reformer (``AE(x)``, when ``reformer``) and the detector (reject when the reconstruction error of ``x``
    is above the ``threshold`` buffer, when ``detector``) around one autoencoder.

    Offers the gradient view ``detector-aware`` (when it detects): the reformer's output and how far the input is
    over the threshold, relative to the threshold (see :class:`~robustbench_gan.purified.Rejecting`)."""

    views = ("detector-aware",)  # offered when it detects (set per instance below)

    def __init__(self, autoencoder: torch.nn.Module, *, reformer: bool = True, detector: bool = True,
                 error: str = "l2") -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.reformer, self.detects, self.error = reformer, detector, error
        self.views = ("detector-aware",) if detector else ()  # type: ignore[misc]
        self.register_buffer("threshold", torch.tensor(float("inf")))

    def forward(self, x: Tensor) -> Tensor:
        return self.autoencoder(x) if self.reformer else x

    def reconstruction_error(self, x: Tensor) -> Tensor:
        return reconstruction_error(self.autoencoder, x, self.error)

    def detect(self, x: Tensor) -> Tensor | None:
        return self.reconstruction_error(x) > self.threshold if self.detects else None

    def view(self, mode: str) -> Transform:
        if mode != "detector-aware" or not self.detects:
            return super().view(mode)
        scale = self.threshold.clamp_min(1e-12)
        return lambda x: Rejecting(self(x), (self.reconstruction_error(x) - self.threshold) / scale)

    def calibrate(self, x_val: Tensor, fpr: float) -> float:
        """Set the threshold to the smallest validation error with at most ``fpr * len(x_val)`` errors above it
        (as MagNet sets it: a given false-positive rate on clean validation data)."""
        with torch.no_grad():
            errors = torch.cat([self.reconstruction_error(x_val[i : i + 512]) for i in range(0, len(x_val), 512)])
        ordered = errors.sort(descending=True).values
        self.threshold.fill_(float(ordered[min(int(fpr * len(ordered)), len(ordered) - 1)]))
        return float(self.threshold)


@DEFENSES.register("magnet")
class MagNet(Defense):
    """MagNet (Meng & Chen 2017): one kind, with the reformer and the detector switched by ``reformer`` and
    ``detector`` (both on by default, as in the paper; at least one).

    The inner classifier is trained on clean data, exactly as the undefended model (MagNet leaves the classifier
    untouched). The autoencoder (:mod:`robustbench_gan.gan.autoencoder`, trained once per run and data, kept in
    the weight cache) is trained on the training data minus a seeded ``validation`` fraction; the detector's
    threshold keeps a false-positive rate of ``fpr`` (default 0.01) on that held-out clean validation data.
    ``error`` is the reconstruction error: ``l2`` (mean squared, default) or ``l1`` (mean absolute); MagNet's
    MNIST code uses ``p = 2`` with the reformer's autoencoder ("Detector I") and ``p = 1`` with a second one.
    ``ae_epochs``, ``ae_lr``, ``noise`` and ``channels`` configure the autoencoder
    (:class:`~robustbench_gan.gan.autoencoder.AutoencoderConfig`: noise volume 0.1, 3 channels as in the paper).
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        reformer: bool = True,
        detector: bool = True,
        fpr: float = 0.01,
        error: str = "l2",
        validation: float = 0.3,
        ae_epochs: int | None = None,
        ae_lr: float | None = None,
        noise: float | None = None,
        channels: int | None = None,
    ) -> None:
        super().__init__(name=name)
        check_bool("reformer", reformer)
        check_bool("detector", detector)
        if not (reformer or detector):
            raise ConfigError("magnet needs the reformer or the detector; set reformer = true or detector = true")
        if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 <= fpr < 1:
            raise ConfigError(f"fpr must be a false-positive rate in [0, 1), e.g. 0.01, got {fpr!r}")
        if error not in ERRORS:
            raise ConfigError(f"error must be one of {', '.join(ERRORS)}, got {error!r}")
        if isinstance(validation, bool) or not isinstance(validation, (int, float)) or not 0 < validation < 1:
            raise ConfigError(f"validation must be a fraction of the training data in (0, 1), e.g. 0.3, got "
                              f"{validation!r}")
        self.reformer, self.detector, self.fpr, self.error = reformer, detector, float(fpr), error
        self.validation = float(validation)
        given = {"epochs": ae_epochs, "lr": ae_lr, "noise": noise, "channels": channels}
        self.ae_config = AutoencoderConfig(**{k: v for k, v in given.items() if v is not None})  # validates
        self.threshold: float | None = None  # of the last fit

    def params(self) -> dict[str, Any]:
        return {"reformer": self.reformer, "detector": self.detector, "fpr": self.fpr, "error": self.error,
                "validation": self.validation, "autoencoder": self.ae_config.as_dict()}

    def classifier(self, make_model: MakeModel, data: Data, *, seed: int) -> Classifier:
        """``PurifiedClassifier(inner, MagNetPurifier(autoencoder))``: the weight cache keeps the inner classifier,
        the autoencoder and the detector's threshold in one state_dict."""
        return PurifiedClassifier(super().classifier(make_model, data, seed=seed), self._purifier(data))

    def _purifier(self, data: Data) -> MagNetPurifier:
        return MagNetPurifier(Autoencoder(data.spec, channels=self.ae_config.channels), reformer=self.reformer,
                              detector=self.detector, error=self.error)

    def autoencoder_need(self, data: Data, *, seed: int, context: FitContext) -> AutoencoderNeed:
        return AutoencoderNeed(data, self.ae_config, self.validation, seed, context.numerics)

    def prerequisites(self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int,
                      context: FitContext) -> list[Prerequisite]:
        return [self.autoencoder_need(data, seed=seed, context=context)]

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        context = context or FitContext()
        need = self.autoencoder_need(data, seed=seed, context=context)
        purifier = self._purifier(data)
        purifier.autoencoder.load_state_dict(context.obtain(need, device=device, progress=progress).state_dict())
        purifier = purifier.to(device).eval()
        if self.detector:
            _, val = validation_split(len(data.x_train), self.validation, seed)
            self.threshold = purifier.calibrate(data.x_train[val].to(device), self.fpr)
            log.info("%s: detector threshold %.5g (%s error, fpr %g on %d validation images)", self.name,
                     self.threshold, self.error, self.fpr, len(val))
        inner = NoDefense(name=self.name).fit(make_model, data, train=train, seed=seed, device=device,
                                              progress=progress)
        return PurifiedClassifier(inner, purifier).eval()


class AutoencoderNeed(Prerequisite):
    """MagNet's autoencoder, trained on the training data minus its validation split; one per (data, settings,
    seed) in a run, kept in the weight cache."""

    label = "MagNet autoencoder"

    def __init__(self, data: Data, config: Any, validation: float, seed: int, numerics: str) -> None:
        self.data, self.config, self.validation, self.seed = data, config, validation, seed
        parts = {"data": data.fingerprint(), "autoencoder": config.as_dict(), "validation": validation, "seed": seed,
                 **({"numerics": numerics} if numerics else {})}
        self.key = "magnet-ae-" + config_hash(parts)

    def _skeleton(self) -> torch.nn.Module:
        return Autoencoder(self.data.spec, channels=self.config.channels)

    def build(self, *, device: str, progress: bool) -> torch.nn.Module:
        fit, _ = validation_split(len(self.data.x_train), self.validation, self.seed)
        return train_autoencoder(self.data.x_train[fit], self.data.spec, config=self.config, seed=self.seed,
                                 device=device, progress=progress).cpu()

    def load(self, context: FitContext) -> torch.nn.Module | None:
        ae = self._skeleton()
        return ae.eval() if context.weights.load(self.key, ae) else None

    def save(self, context: FitContext, artefact: torch.nn.Module) -> None:
        context.weights.save(self.key, artefact, {"autoencoder": self.config.as_dict(), "seed": self.seed,
                                                  "validation": self.validation})
