"""The leaderboard: per classifier, clean accuracy and the worst-case robust accuracy [95% CI] per (norm, ε), the
strongest single attack and how many sanity flags it raised."""
from __future__ import annotations

from typing import Any

from .. import plots
from ..formats import MISSING, acc_cell, as_float, cell, fmt_eps, fmt_pct, fmt_text
from .base import Run, Section


def build_leaderboard(board: list[dict[str, Any]], flags: list[dict[str, Any]]) -> dict[str, Any]:
    """Model × defense rows: clean accuracy, then worst-case robust accuracy [95% CI] per (norm, ε), the
    strongest single attack (see :func:`_strongest`), and the number of sanity flags raised for that classifier."""
    if not board:
        return {"columns": [], "rows": []}
    columns = sorted({(fmt_text(b.get("norm")), as_float(b.get("eps"))) for b in board
                      if as_float(b.get("eps")) is not None}, key=lambda c: (c[0], c[1]))
    index = {c: i for i, c in enumerate(columns)}
    flagged: dict[tuple[str, str], int] = {}
    for f in flags:
        k = (fmt_text(f.get("model")), fmt_text(f.get("defense")))
        flagged[k] = flagged.get(k, 0) + 1
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for b in board:
        k = (fmt_text(b.get("model")), fmt_text(b.get("defense")))
        row = rows.setdefault(k, {"model": k[0], "defense": k[1], "flags": flagged.get(k, 0),
                                  "clean": cell(fmt_pct(b.get("clean_accuracy")), b.get("clean_accuracy"), num=True),
                                  "cells": [cell(MISSING, None, num=True) for _ in columns], "_entries": []})
        col = (fmt_text(b.get("norm")), as_float(b.get("eps")))
        if col not in index:
            continue
        acc = b.get("worst_case_accuracy")
        title = (f"n = {b.get('n')}; {b.get('attacks')} attacks; strongest alone: {fmt_text(b.get('strongest_attack'))}"
                 f" ({fmt_pct(b.get('strongest_attack_accuracy'))})")
        row["cells"][index[col]] = acc_cell(acc, b.get("worst_case_low"), b.get("worst_case_high"), title)
        row["_entries"].append(b)
    out = []
    for row in rows.values():
        row["strongest"] = _strongest(row.pop("_entries"))
        out.append(row)
    heads = [{"norm": plots.norm_label(norm), "eps": fmt_eps(eps)} for norm, eps in columns]
    return {"columns": heads, "rows": out}


def _strongest(entries: list[dict[str, Any]]) -> str:
    """The strongest single attack at the largest ε that leaves anything standing (else at the smallest ε)."""
    with_eps = [b for b in entries if as_float(b.get("eps")) is not None]
    if not with_eps:
        return MISSING
    alive = [b for b in with_eps if (as_float(b.get("worst_case_accuracy")) or 0) > 0]
    b = max(alive, key=lambda e: as_float(e.get("eps"))) if alive else min(with_eps, key=lambda e: as_float(e.get("eps")))
    return (f"{fmt_text(b.get('strongest_attack'))} at ε = {fmt_eps(b.get('eps'))}: "
            f"{fmt_pct(b.get('strongest_attack_accuracy'))}")


def build(run: Run) -> dict[str, Any] | None:
    board = build_leaderboard(list(run.results.leaderboard), list(run.results.flags or []))
    return board if board["rows"] else None


SECTION = Section("leaderboard", "Leaderboard", build, "sections/leaderboard.html")
