"""Sanity checks: every flag raised (signs that a number may overstate robustness, such as gradient masking),
with one plain explanation and reference per check."""
from __future__ import annotations

from typing import Any

from ...checks.explanations import EXPLANATIONS
from ..formats import fmt_text
from .base import Run, Section


def flag_notes(flags: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One plain explanation and reference per distinct check that raised a flag."""
    notes, seen = [], set()
    for f in flags:
        check = str(f.get("check", ""))
        if check in seen:
            continue
        seen.add(check)
        explanation, reference = EXPLANATIONS.get(check, (f.get("explanation", ""), f.get("reference", "")))
        notes.append({"check": check, "explanation": explanation or "", "reference": reference or ""})
    return notes


def build(run: Run) -> dict[str, Any]:
    flags = list(run.results.flags or [])
    return {"rows": [{k: fmt_text(f.get(k)) for k in ("check", "model", "defense", "attack", "message")}
                     for f in flags],
            "notes": flag_notes(flags)}


SECTION = Section("flags", "Sanity checks", build, "sections/flags.html")
