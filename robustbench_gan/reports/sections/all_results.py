"""All results: every record as a sortable table row, as in results.csv."""
from __future__ import annotations

from typing import Any

from .. import plots
from ..autoattack_notes import autoattack_note
from ..formats import (cell, fmt_acc_ci, fmt_eps, fmt_num, fmt_pct, fmt_seconds, fmt_targeted, fmt_text,
                       is_missing)
from .base import Run, Section, unique

ATTACK_HEADERS: tuple[tuple[str, bool], ...] = (
    ("Model", False), ("Defense", False), ("Attack", False), ("Threat", False), ("Source", False),
    ("Targeted", False), ("Norm", False), ("ε", True), ("n", True), ("Clean", True), ("Robust [95% CI]", True),
    ("Success rate", True), ("Mean L∞", True), ("Mean L2", True), ("Queries", True), ("Seconds", True),
)


DETECTION_HEADERS = (("Rejected clean", True), ("Rejected adv.", True))
"""Shown after "Success rate" when a defense with a detector (MagNet) was evaluated: the fractions of clean and
of adversarial inputs it rejected (a rejected adversarial input counts as robust)."""


def build_attack_rows(rows: list[dict[str, Any]], with_dataset: bool,
                      manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every record as a table row (plus a leading Dataset column when the run spans several datasets, and the
    detection columns when a defense with a detector was evaluated). An AutoAttack cascade's attack cell carries
    the badge of its :func:`autoattack_note` (the note itself as its title)."""
    headers = [{"text": t, "num": n} for t, n in ATTACK_HEADERS]
    with_detection = any(not is_missing(r.get("detected")) for r in rows)
    at = [t for t, _ in ATTACK_HEADERS].index("Success rate") + 1
    if with_detection:
        headers[at:at] = [{"text": t, "num": n} for t, n in DETECTION_HEADERS]
    if with_dataset:
        headers.insert(0, {"text": "Dataset", "num": False})
    body = []
    for r in rows:
        cells = [
            cell(fmt_text(r.get("model"))), cell(fmt_text(r.get("defense"))), cell(fmt_text(r.get("attack"))),
            cell(fmt_text(r.get("threat"))), cell(fmt_text(r.get("source"))),
            cell(fmt_targeted(r.get("targeted"), r.get("target_mode"))), cell(plots.norm_label(r.get("norm"))),
            cell(fmt_eps(r.get("eps")), r.get("eps"), num=True, title=fmt_num(r.get("eps"), 6)),
            cell(fmt_num(r.get("n")), r.get("n"), num=True),
            cell(fmt_pct(r.get("clean_accuracy")), r.get("clean_accuracy"), num=True),
            cell(fmt_acc_ci(r.get("robust_accuracy"), r.get("robust_accuracy_low"), r.get("robust_accuracy_high")),
                 r.get("robust_accuracy"), num=True),
            cell(fmt_pct(r.get("attack_success_rate")), r.get("attack_success_rate"), num=True),
            cell(fmt_num(r.get("mean_linf")), r.get("mean_linf"), num=True),
            cell(fmt_num(r.get("mean_l2")), r.get("mean_l2"), num=True),
            cell(fmt_num(r.get("queries")), r.get("queries"), num=True),
            cell(fmt_seconds(r.get("seconds")), r.get("seconds"), num=True),
        ]
        note = autoattack_note(r, manifest or {})
        if note is not None:
            cells[2].update(badge={"text": note["badge"], "cls": "aa-standard" if note["standard"] else "aa-other"},
                            title=f"{note['attack']} {note['text']}")
        if with_detection:
            cells[at:at] = [cell(fmt_pct(r.get(k)), r.get(k), num=True) for k in ("detected_clean", "detected")]
        if with_dataset:
            cells.insert(0, cell(fmt_text(r.get("dataset"))))
        body.append(cells)
    return {"headers": headers, "rows": body}


def build(run: Run) -> dict[str, Any]:
    with_dataset = len(unique(r.get("dataset") for r in run.rows)) > 1
    return build_attack_rows(run.rows, with_dataset=with_dataset, manifest=run.manifest)


SECTION = Section("attacks", "All results", build, "sections/attacks.html")
