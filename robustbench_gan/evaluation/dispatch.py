"""The one entry point that scores an attack, :func:`evaluate_attack`, and the evaluators of attacks with a
protocol of their own (registered with :func:`evaluates`; every other attack is scored by
:func:`~.batched.evaluate_batched`)."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from torch import Tensor

from ..attacks.base import Attack
from ..classifier import Classifier
from .batched import BATCH_SIZE, evaluate_batched
from .outcome import Outcome

Evaluator = Callable[..., list[Outcome]]
"""``evaluator(attack, clf, x, y, eps_list, *, batch_size, seed, gallery_size, desc, progress) -> outcomes``."""
F = TypeVar("F", bound=Evaluator)

EVALUATORS: dict[type, Evaluator] = {}
"""Attack class -> its evaluator; a subclass inherits its nearest base's."""


def evaluates(*classes: type) -> Callable[[F], F]:
    """Register the decorated function as the evaluator of ``classes`` (subclasses of :class:`Attack`)."""

    def decorator(fn: F) -> F:
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, Attack)):
                raise TypeError(f"evaluates() takes Attack subclasses, got {cls!r}")
            if cls in EVALUATORS:
                raise ValueError(f"{cls.__name__} already has an evaluator ({EVALUATORS[cls].__name__})")
            EVALUATORS[cls] = fn
        return fn

    return decorator


def evaluator_for(attack: Attack) -> Evaluator:
    """The evaluator of ``attack``'s class or its nearest registered base; :func:`evaluate_batched` by default."""
    return next((EVALUATORS[c] for c in type(attack).__mro__ if c in EVALUATORS), evaluate_batched)


def evaluate_attack(
    clf: Classifier, x: Tensor, y: Tensor, attack: Attack, eps_list: Sequence[float], *,
    batch_size: int = BATCH_SIZE, seed: int = 0, gallery_size: int = 4, desc: str | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """Run ``attack`` on ``(x, y)`` at every eps; one :class:`Outcome` per eps, in the order given. Batches of
    ``batch_size``, goals seeded from ``seed``, ``gallery_size`` examples kept for the report; ``desc`` labels the
    progress bar."""
    return evaluator_for(attack)(attack, clf, x, y, [float(e) for e in eps_list], batch_size=batch_size, seed=seed,
                                 gallery_size=gallery_size, desc=desc, progress=progress)
