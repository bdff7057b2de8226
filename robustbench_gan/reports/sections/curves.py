"""Robust accuracy against ε: one figure per model, one line per defense; the first panel is the worst case over
all attacks (as in the leaderboard), the others single white-box attacks, each with its 95% Wilson band."""
from __future__ import annotations

from typing import Any

import pandas as pd

from .. import plots
from .base import Run, Section, figures, guarded

WORST_CASE = "worst case (all attacks)"


def with_worst_case(table: pd.DataFrame, board: list[dict[str, Any]]) -> pd.DataFrame:
    """The table with the leaderboard's worst case prepended as one more white-box "attack" (the first panel)."""
    if not board or table.empty:
        return table
    worst = pd.DataFrame([{"model": b.get("model"), "defense": b.get("defense"), "attack": WORST_CASE,
                           "threat": "white-box", "targeted": False, "target_mode": None, "norm": b.get("norm"),
                           "eps": b.get("eps"), "robust_accuracy": b.get("worst_case_accuracy"),
                           "robust_accuracy_low": b.get("worst_case_low"),
                           "robust_accuracy_high": b.get("worst_case_high")} for b in board])
    return pd.concat([worst, table], ignore_index=True)


def build(run: Run) -> list[dict[str, str]]:
    table = with_worst_case(run.results.table, list(run.results.leaderboard))
    return figures(guarded("accuracy-vs-eps plots", lambda: plots.accuracy_vs_eps(table), []))


SECTION = Section("curves", "Robust accuracy vs ε", build, "sections/curves.html", nav="Accuracy vs ε")
