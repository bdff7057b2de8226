"""Per attack: clean accuracy, then robust accuracy [95% CI] per attack group and ε, for every classifier; an
AutoAttack cascade's group carries its note (standard or not)."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ...results import THREATS
from .. import plots
from ..autoattack_notes import autoattack_note, build_autoattack_notes
from ..formats import MISSING, as_float, cell, fmt_acc_ci, fmt_eps, fmt_pct, fmt_text, is_missing, truthy
from .base import Run, Section

log = logging.getLogger(__name__)

THREAT_ORDER = {threat: i for i, threat in enumerate(THREATS)}  # the order results.THREATS gives

PROBE_NOTE = ("a probe, not an attack on the evaluated inputs: the fraction of (noise image, class) pairs that one "
              "gradient step makes the model assign to that class with high confidence (Goodfellow et al. 2014); "
              "left out of the worst case")

def _column_key(row: dict[str, Any]) -> tuple[str, str, str, bool, str, str]:
    """Which summary column group a record belongs to: (threat, attack, source, targeted, target_mode, norm)."""
    threat = fmt_text(row.get("threat"))
    source = "" if threat == "white-box" or is_missing(row.get("source")) else str(row.get("source"))
    targeted = bool(truthy(row.get("targeted")))
    mode = "" if not targeted or is_missing(row.get("target_mode")) else str(row.get("target_mode"))
    return (threat, fmt_text(row.get("attack")), source, targeted, mode, plots.norm_label(row.get("norm")))


def _group_detail(key: tuple[str, str, str, bool, str, str]) -> str:
    threat, _attack, source, targeted, mode, norm = key
    parts = [f"{threat} from {source}" if source else threat, norm]
    if mode == "each-class":  # the noise probe
        return " · ".join([*parts, "probe: fooling rate"])
    if targeted:
        parts.append(f"targeted ({mode})" if mode else "targeted")
    return " · ".join(parts)

def build_summary(rows: list[dict[str, Any]], manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Model × defense rows; clean accuracy, then robust accuracy [95% CI] per attack group and ε. A group of an
    AutoAttack cascade carries its :func:`autoattack_note` (``aa``), and ``autoattack`` lists those notes."""
    if not rows:
        return {"groups": [], "rows": [], "autoattack": []}
    manifest = manifest or {}
    df = pd.DataFrame.from_records(rows)
    df["_model"] = [fmt_text(r.get("model")) for r in rows]
    df["_defense"] = [fmt_text(r.get("defense")) for r in rows]
    keys = [_column_key(r) for r in rows]
    first_seen: dict[tuple[Any, ...], int] = {}
    for i, k in enumerate(keys):
        first_seen.setdefault(k, i)
    notes = {g: autoattack_note(rows[i], manifest) for g, i in first_seen.items()}
    group_keys = sorted(first_seen, key=lambda g: (THREAT_ORDER.get(g[0], 9), first_seen[g]))
    gid = {g: i for i, g in enumerate(group_keys)}
    df["_gid"] = [gid[k] for k in keys]
    df["_eps"] = pd.to_numeric(df["eps"], errors="coerce")
    df["_threat_rank"] = [THREAT_ORDER.get(k[0], 9) for k in keys]

    groups: list[dict[str, Any]] = []
    columns: list[tuple[int, float | None]] = []
    for g in group_keys:
        eps_values = df.loc[df["_gid"] == gid[g], "_eps"]
        eps_cols: list[float | None] = sorted({float(e) for e in eps_values.dropna()})
        if eps_values.isna().any():
            eps_cols.append(None)
        groups.append({"attack": g[1], "detail": _group_detail(g), "eps": [fmt_eps(e) for e in eps_cols],
                       "aa": notes[g]})
        columns.extend((gid[g], e) for e in eps_cols)

    out_rows = []
    for (model, defense), part in df.groupby(["_model", "_defense"], sort=False):
        clean_vals = [as_float(v) for v in part.sort_values("_threat_rank", kind="stable")["clean_accuracy"]]
        clean = next((v for v in clean_vals if v is not None), None)
        distinct = {round(v, 6) for v in clean_vals if v is not None}
        if len(distinct) > 1:
            log.debug("clean accuracy differs across rows of %s/%s: %s; showing %s", model, defense, distinct, clean)
        cells = []
        for g, e in columns:
            at_eps = part["_eps"].isna() if e is None else part["_eps"] == e
            hit = part[(part["_gid"] == g) & at_eps]
            if hit.empty:
                cells.append(cell(MISSING, None, num=True))
                continue
            if len(hit) > 1:
                log.warning("%d rows for %s/%s %s eps=%s; the summary shows the first", len(hit), model, defense,
                            group_keys[g][1], e)
            r = hit.iloc[0]
            n = as_float(r.get("n"))
            title = f"n = {int(n)}" if n is not None else ""
            if r.get("attack_role") == "probe":  # a probe has no robust accuracy: show what it measures
                cells.append(cell(f"fooling rate {fmt_pct(r.get('attack_success_rate'))}",
                                  r.get("attack_success_rate"), num=True, title=f"{title}; {PROBE_NOTE}"))
                continue
            cells.append(cell(fmt_acc_ci(r["robust_accuracy"], r["robust_accuracy_low"], r["robust_accuracy_high"]),
                              r["robust_accuracy"], num=True, title=title))
        out_rows.append({"model": model, "defense": defense, "clean": cell(fmt_pct(clean), clean, num=True),
                         "cells": cells})
    return {"groups": groups, "rows": out_rows, "autoattack": build_autoattack_notes(rows, manifest)}


def build(run: Run) -> dict[str, Any]:
    return build_summary(run.rows, run.manifest)


SECTION = Section("summary", "Per attack", build, "sections/summary.html")
