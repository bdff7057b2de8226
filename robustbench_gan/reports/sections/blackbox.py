"""Black-box attacks: robust accuracy against the queries each attack made, the substitute's training progress
(Papernot et al. 2017) and a table of every black-box row."""
from __future__ import annotations

from typing import Any

from .. import plots
from ..formats import MISSING, fmt_acc_ci, fmt_eps, fmt_pct, fmt_text, is_missing
from .base import Run, Section, guarded


def rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"model": fmt_text(r.get("model")), "defense": fmt_text(r.get("defense")),
             "attack": fmt_text(r.get("attack")), "eps": fmt_eps(r.get("eps")),
             "robust": fmt_acc_ci(r.get("robust_accuracy"), r.get("robust_accuracy_low"),
                                  r.get("robust_accuracy_high")),
             "success": fmt_pct(r.get("attack_success_rate")),
             "queries": MISSING if is_missing(r.get("queries")) else f"{int(r['queries']):,}"}
            for r in records if r.get("threat") == "black-box"]


def build(run: Run) -> dict[str, Any] | None:
    table = rows(run.rows)
    if not table:
        return None
    return {"rows": table,
            "plot": guarded("black-box plot", lambda: plots.blackbox_queries(run.results.table), None),
            "substitute_plot": guarded("substitute plot",
                                       lambda: plots.substitute_progress(list(run.results.substitute)), None)}


SECTION = Section("blackbox", "Black-box attacks", build, "sections/blackbox.html", nav="Black-box")
