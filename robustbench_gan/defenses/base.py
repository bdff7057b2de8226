"""Defense protocol and registry. A defense turns a model recipe and training data into a defended classifier."""
from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, ClassVar

from torch import nn

from ..classifier import Classifier
from ..data import Data
from ..errors import ConfigError
from ..registry import Registry
from ..training import TrainConfig, seed_everything, train_model

log = logging.getLogger(__name__)

MakeModel = Callable[[], nn.Module]


class Defense:
    """Base class: ``fit`` returns a trained :class:`Classifier`; hyperparameters are keyword-only and stored as given."""

    kind: ClassVar[str] = "defense"

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or self.kind

    def classifier(self, make_model: MakeModel, data: Data, *, seed: int) -> Classifier:
        """A fresh, untrained classifier for ``data``, initialised from ``seed``."""
        seed_everything(seed)
        s = data.spec
        return Classifier(make_model(), num_classes=s.num_classes, bounds=s.bounds, mean=s.mean, std=s.std)

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True
    ) -> Classifier:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "name")]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}


DEFENSES: Registry[Callable[..., Defense]] = Registry("defense kind")


@DEFENSES.register("none")
class NoDefense(Defense):
    """Standard training on clean data (the undefended baseline every suite evaluates)."""

    kind = "none"

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True
    ) -> Classifier:
        clf = self.classifier(make_model, data, seed=seed).to(device)
        train_model(clf, data.x_train, data.y_train, config=train, seed=seed, desc=f"train {self.name}", progress=progress)
        return clf


def make_defense(kind: str, *, name: str | None = None, **params: Any) -> Defense:
    """Instantiate defense ``kind``; unknown parameters raise ConfigError naming them."""
    cls = DEFENSES.get(kind)
    accepted = [p for p in inspect.signature(cls).parameters if p != "name"]
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise ConfigError(
            f"defense kind {kind!r} has no parameter {unknown[0]!r}; it accepts: {', '.join(accepted) or 'none'}"
        )
    return cls(name=name, **params)
