"""Minimum-norm attacks: the share of samples whose smallest perturbation found is larger than ε, as a curve."""
from __future__ import annotations

from .. import plots
from .base import Run, Section, figures, guarded


def build(run: Run) -> list[dict[str, str]] | None:
    return figures(guarded("distance curves", lambda: plots.distance_curves(run.results.samples), [])) or None


SECTION = Section("minimum-norm", "Minimum-norm attacks", build, "sections/minimum-norm.html", nav="Minimum-norm")
