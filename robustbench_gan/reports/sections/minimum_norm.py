"""Minimum-norm attacks: per classifier and norm, robust accuracy against the perturbation size for every attack
and the per-sample best over them, and each attack's AttackBench optimality (:mod:`~robustbench_gan.curves`)."""
from __future__ import annotations

from typing import Any

from ...curves import optimality_table
from .. import plots
from ..formats import cell, fmt_num, fmt_pct, fmt_text
from .base import Run, Section, figures, guarded


def build(run: Run) -> dict[str, Any] | None:
    curves = figures(guarded("distance curves", lambda: plots.distance_curves(run.results.samples), []))
    table = guarded("optimality table", lambda: optimality_table(run.results.samples), None)
    if not curves and (table is None or table.empty):
        return None
    rows = [] if table is None else [
        [cell(fmt_text(r["model"])), cell(fmt_text(r["defense"])), cell("L" + fmt_text(r["norm"])),
         cell(fmt_text(r["attack"])), cell(fmt_pct(r["success_rate"]), r["success_rate"], num=True),
         cell("∞" if r["median_distance"] == float("inf") else fmt_num(r["median_distance"]),
              r["median_distance"], num=True),
         cell(fmt_pct(r["optimality"]), r["optimality"], num=True)] for r in table.to_dict("records")]
    heads = [("Model", False), ("Defense", False), ("Norm", False), ("Attack", False), ("Fooled", True),
             ("Median distance", True), ("Optimality", True)]
    return {"curves": curves, "headers": [{"text": t, "num": n} for t, n in heads], "rows": rows}


SECTION = Section("minimum-norm", "Minimum-norm attacks", build, "sections/minimum-norm.html", nav="Minimum-norm")
