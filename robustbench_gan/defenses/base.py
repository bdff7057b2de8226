"""Defense protocol and registry. A defense turns a model recipe and training data into a defended classifier.

``fit`` trains and returns the classifier. A defense that makes something worth reporting besides the
classifier (the GAN of :class:`~.gan_augmentation.GanAugmentation`) hands it back through :meth:`Defense.report`,
so the run pipeline never needs to know which defense it holds. What a fit shares with others (a GAN, a teacher) is
a :class:`~robustbench_gan.prerequisites.Prerequisite` obtained from a
:class:`~robustbench_gan.prerequisites.FitContext` (defined below the attacks and defenses, which both use them).
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from torch import nn

from ..classifier import Classifier
from ..data import Data
from ..prerequisites import FitContext, Prerequisite
from ..registry import Registry
from ..classifier_training import TrainConfig, seed_everything, train_model

log = logging.getLogger(__name__)

MakeModel = Callable[[], nn.Module]


@dataclass
class ReportContext:
    """What :meth:`Defense.report` may use: the run's data, seed and device, the model and defense names,
    ``classifier(model, defense)`` for any trained classifier of the run (``defense="none"``: the undefended one),
    ``reference()`` for a CNN trained on the real data (a yardstick), and the fit context."""

    data: Data
    seed: int
    device: str
    model: str
    defense: str
    classifier: Callable[[str, str], Classifier]
    reference: Callable[[], Classifier]
    fit: FitContext = field(default_factory=FitContext)


class Defense:
    """Base class: ``fit`` returns a trained :class:`Classifier`; hyperparameters are keyword-only and stored as given."""

    kind: ClassVar[str] = "defense"
    report_uses_reference: ClassVar[bool] = False  # report() asks for the reference classifier (train it early)

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or self.kind

    def classifier(self, make_model: MakeModel, data: Data, *, seed: int) -> Classifier:
        """A fresh, untrained classifier for ``data``, initialised from ``seed``."""
        seed_everything(seed)
        s = data.spec
        return Classifier(make_model(), num_classes=s.num_classes, bounds=s.bounds, mean=s.mean, std=s.std,
                          input_bounds=s.input_bounds)

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        """Train a defended classifier on ``data`` (returned in eval mode)."""
        raise NotImplementedError

    def prerequisites(self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int,
                      context: FitContext) -> list[Prerequisite]:
        """What :meth:`fit` will obtain from ``context`` (in this order), so an executor can build each one once,
        before the fits that need it. Default: nothing."""
        return []

    def report(self, ctx: ReportContext) -> dict[str, Any] | None:
        """Report sections this defense adds for the classifier it fitted (JSON-able), e.g. ``{"gan": {...}}``.
        Called after ``fit`` or on a classifier loaded from the cache; ``None`` (the default): nothing."""
        return None

    def params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "name")]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}


DEFENSES: Registry[Callable[..., Defense]] = Registry("defense kind", base=Defense, key_attr="kind")
"""Defense classes by kind; registering one sets its ``kind`` to that key."""


@DEFENSES.register("none")
class NoDefense(Defense):
    """Standard training on clean data (the undefended baseline every suite evaluates)."""

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        clf = self.classifier(make_model, data, seed=seed).to(device)
        train_model(clf, data.x_train, data.y_train, config=train, seed=seed, desc=f"train {self.name}", progress=progress)
        return clf


def make_defense(kind: str, *, name: str | None = None, **params: Any) -> Defense:
    """Instantiate defense ``kind``; unknown parameters raise ConfigError naming them (with "did you mean")."""
    return DEFENSES.build(kind, skip=("name",), name=name, **params)
