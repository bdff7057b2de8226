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
SHARDING: set[Evaluator] = {evaluate_batched}
"""Evaluators whose outcomes keep per-sample parts and take ``ids``: a cell they score can be cut into shards."""


def evaluates(*classes: type, shards: bool = False) -> Callable[[F], F]:
    """Register the decorated function as the evaluator of ``classes`` (subclasses of :class:`Attack`);
    ``shards``: it takes ``ids`` and its outcomes keep :class:`~.parts.SampleParts` (see :func:`shardable`)."""

    def decorator(fn: F) -> F:
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, Attack)):
                raise TypeError(f"evaluates() takes Attack subclasses, got {cls!r}")
            if cls in EVALUATORS:
                raise ValueError(f"{cls.__name__} already has an evaluator ({EVALUATORS[cls].__name__})")
            EVALUATORS[cls] = fn
        if shards:
            SHARDING.add(fn)
        return fn

    return decorator


def evaluator_for(attack: Attack) -> Evaluator:
    """The evaluator of ``attack``'s class or its nearest registered base; :func:`evaluate_batched` by default."""
    return next((EVALUATORS[c] for c in type(attack).__mro__ if c in EVALUATORS), evaluate_batched)


def shardable(attack: Attack) -> bool:
    """Whether the evaluation of ``attack`` can be cut into shards of samples, each scored on its own and merged
    (:func:`~.parts.merge_outcomes`): every attack the batched evaluation scores and AutoAttack; not the substitute
    attack (it trains on a hold-out of the whole set) nor the probes."""
    return evaluator_for(attack) in SHARDING


def evaluate_attack(
    clf: Classifier, x: Tensor, y: Tensor, attack: Attack, eps_list: Sequence[float], *,
    batch_size: int = BATCH_SIZE, seed: int = 0, gallery_size: int = 4, desc: str | None = None,
    progress: bool = True, ids: Tensor | None = None,
) -> list[Outcome]:
    """Run ``attack`` on ``(x, y)`` at every eps; one :class:`Outcome` per eps, in the order given. Batches of
    ``batch_size``, each sample's draws keyed by ``seed`` and its id (``ids``, default its position; only for a
    :func:`shardable` attack), ``gallery_size`` examples kept for the report; ``desc`` labels the progress bar."""
    evaluator = evaluator_for(attack)
    extra = {} if ids is None else {"ids": ids}
    if ids is not None and evaluator not in SHARDING:
        raise ValueError(f"{type(attack).__name__} is evaluated on the whole set at once: it takes no ids")
    return evaluator(attack, clf, x, y, [float(e) for e in eps_list], batch_size=batch_size, seed=seed,
                     gallery_size=gallery_size, desc=desc, progress=progress, **extra)
