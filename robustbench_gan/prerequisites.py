"""Artefacts built once per run and shared: what a defense's fit or an attack needs besides a classifier (a GAN
generator shared by several defenses, a distillation teacher, the generator and inverter of the natural adversarial
search). Defined below the attacks and defenses (both declare such needs); the run obtains them through a
:class:`FitContext` (memo + weight cache) and hands them over.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .core.weight_cache import WeightCache

log = logging.getLogger(__name__)


class Prerequisite:
    """Something a defense's ``fit`` needs that is built on its own, once per run, before the fits that use it: a
    GAN generator shared by several defenses, a distillation teacher. ``key`` names it in the run's memo and on
    disk ("" means: not shared, built every time). Executors may :meth:`build` it in another process and hand the
    result to the fits that need it (:meth:`FitContext.put`); the run never builds the same key twice."""

    key: str = ""
    label: str = "prerequisite"

    def build(self, *, device: str, progress: bool) -> Any:
        """Train it (no cache involved); the result is a CPU or ``device`` object that pickles."""
        raise NotImplementedError

    def load(self, context: FitContext) -> Any | None:
        """Read it from the context's weight cache; None when it is not there."""
        return None

    def save(self, context: FitContext, artefact: Any) -> None:
        """Write it to the context's weight cache (nothing when the cache has no folder)."""


@dataclass
class FitContext:
    """What a defense may share while fitting: the run's weight cache (a trained GAN is kept there), a memo shared by
    every defense of one run (one GAN trained for several defenses), the cache key of the classifier being fitted
    (``recipe``: what keys its own prerequisites) and ``built``, the (label, key) of every prerequisite built here."""

    weights: WeightCache = field(default_factory=lambda: WeightCache(None))
    shared: dict[str, Any] = field(default_factory=dict)
    numerics: str = ""  # device and CPU threads (core.device.numerics): part of the keys of cached artefacts
    recipe: str = ""
    built: list[tuple[str, str]] = field(default_factory=list)

    def for_recipe(self, recipe: str) -> FitContext:
        """This context (same memo, cache and ledger) for fitting the classifier whose cache key is ``recipe``."""
        return FitContext(self.weights, self.shared, self.numerics, recipe, self.built)

    def cached(self, need: Prerequisite) -> Any | None:
        """``need`` from the memo or the weight cache (then memoised), without building it."""
        if need.key and need.key in self.shared:
            return self.shared[need.key]
        artefact = need.load(self) if need.key else None
        if artefact is not None:
            self.shared[need.key] = artefact
        return artefact

    def obtain(self, need: Prerequisite, *, device: str, progress: bool = True) -> Any:
        """``need`` from the memo, the weight cache, or built now (then saved and recorded in ``built``)."""
        artefact = self.cached(need)
        if artefact is None:
            log.info("building %s %s", need.label, need.key or "(not shared)")
            artefact = need.build(device=device, progress=progress)
            self.built.append((need.label, need.key))
            if need.key:
                self.put(need, artefact)
        return artefact

    def put(self, need: Prerequisite, artefact: Any, *, save: bool = True) -> None:
        """Hand over ``need`` built elsewhere: memoised, and written to the weight cache when ``save``."""
        self.shared[need.key] = artefact
        if save:
            need.save(self, artefact)
