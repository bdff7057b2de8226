"""Common corruptions (Hendrycks & Dietterich 2019): per classifier, the corruption x severity heatmap of accuracy
on the corrupted images, the mean corruption accuracy and mCE against a baseline classifier, and one test image
under every corruption and severity (:mod:`robustbench_gan.corruption_tables`)."""
from __future__ import annotations

from typing import Any

from ...corruption_tables import corruption_accuracy, corruption_summary
from .. import plots
from ..formats import cell, fmt_num, fmt_pct, fmt_text
from .base import Run, Section, figures, guarded


def build(run: Run) -> dict[str, Any] | None:
    accuracy = corruption_accuracy(run.results.samples)
    if accuracy.empty:
        return None
    summary = corruption_summary(run.results.samples)
    rows = [[cell(fmt_text(r["model"])), cell(fmt_text(r["defense"])),
             cell(fmt_pct(r["clean_accuracy"]), r["clean_accuracy"], num=True),
             cell(fmt_pct(r["mean_corruption_accuracy"]), r["mean_corruption_accuracy"], num=True),
             cell(fmt_num(r["mce"]), r["mce"], num=True), cell(fmt_text(r["baseline"])),
             cell(str(r["corruptions"]), r["corruptions"], num=True)] for r in summary.to_dict("records")]
    heads = [("Model", False), ("Defense", False), ("Clean", True), ("Mean corruption accuracy", True),
             ("mCE", True), ("Baseline of mCE", False), ("Corruptions", True)]
    return {"headers": [{"text": t, "num": n} for t, n in heads], "rows": rows,
            "heatmaps": figures(guarded("corruption heatmaps", lambda: plots.corruption_heatmaps(accuracy), [])),
            "strip": guarded("corruption strips", lambda: plots.corruption_strips(run.results.gallery or []), None)}


SECTION = Section("corruptions", "Common corruptions", build, "sections/corruptions.html", nav="Corruptions")
