"""Certified robustness by randomized smoothing (Cohen et al. 2019): per classifier, certified accuracy against the
L2 radius next to the empirical accuracy of the same smoothed classifier under an attack (Salman et al. 2019), and
the abstentions."""
from __future__ import annotations

from typing import Any

from .. import plots
from ..formats import cell, fmt_eps, fmt_pct, fmt_text
from .base import Run, Section, figures, guarded


def abstentions(run: Run) -> dict[tuple[str, str, str], float]:
    """Per (model, defense, attack) of the certificates: the share of samples the smoothed classifier abstained on
    (its clean label -1 in the per-sample table)."""
    s = run.results.samples
    if s is None or s.empty or "attack_role" not in s.columns:
        return {}
    cert = s[s["attack_role"] == "certified"].drop_duplicates(["model", "defense", "attack", "sample_id"])
    return {k: float((g["clean_pred"] == -1).mean()) for k, g in cert.groupby(["model", "defense", "attack"])}


def build(run: Run) -> dict[str, Any] | None:
    rows = [r for r in run.rows if r.get("attack_role") in ("certified", "smoothed")]
    if not rows:
        return None
    abstained = abstentions(run)
    body = [[cell(fmt_text(r["model"])), cell(fmt_text(r["defense"])), cell(fmt_text(r["attack"])),
             cell("certified" if r["attack_role"] == "certified" else "attacked"),
             cell(fmt_eps(r["eps"]), r["eps"], num=True),
             cell(fmt_pct(r["clean_accuracy"]), r["clean_accuracy"], num=True),
             cell(fmt_pct(r["robust_accuracy"]), r["robust_accuracy"], num=True),
             cell(fmt_pct(abstained.get((r["model"], r["defense"], r["attack"]))),
                  abstained.get((r["model"], r["defense"], r["attack"])), num=True)] for r in rows]
    heads = [("Model", False), ("Defense", False), ("Row", False), ("Kind", False), ("L2 radius", True),
             ("Smoothed clean", True), ("Accuracy", True), ("Abstained", True)]
    return {"headers": [{"text": t, "num": n} for t, n in heads], "rows": body,
            "curves": figures(guarded("certification curves", lambda: plots.certification_curves(run.results.table),
                                      []))}


SECTION = Section("certification", "Certified robustness (randomized smoothing)", build,
                  "sections/certification.html", nav="Certified")
