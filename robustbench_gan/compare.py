"""Compare two runs: worst-case leaderboards and per-attack rows side by side, with the change and whether the
two 95% intervals are disjoint (a difference the sample size can vouch for)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .core.io import atomic_write_text
from .results import Results

log = logging.getLogger(__name__)

RECORD_KEY = ["model", "defense", "attack", "threat", "source", "norm", "eps"]
BOARD_KEY = ["model", "defense", "norm", "eps"]


def _frame(rows: list[dict[str, Any]], key: list[str], value: str, low: str, high: str) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows)
    if df.empty:
        return pd.DataFrame(columns=key + [value, low, high])
    for k in key:
        if k not in df.columns:
            df[k] = ""
    df = df[key + [value, low, high]].copy()
    for k in key:
        df[k] = df[k].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else
                          (f"{v:g}" if isinstance(v, float) else str(v)))
    return df.drop_duplicates(key)


def _side_by_side(a: pd.DataFrame, b: pd.DataFrame, key: list[str], value: str, low: str, high: str) -> pd.DataFrame:
    m = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
    m["in"] = m["_merge"].map({"both": "both", "left_only": "only A", "right_only": "only B"}).astype(str)
    m["delta"] = m[f"{value}_b"] - m[f"{value}_a"]
    m["significant"] = (m[f"{low}_b"] > m[f"{high}_a"]) | (m[f"{high}_b"] < m[f"{low}_a"])
    m = m.drop(columns="_merge")
    m["_abs"] = m["delta"].abs().fillna(-1)
    return m.sort_values(["in", "_abs"], ascending=[True, False]).drop(columns="_abs").reset_index(drop=True)


def compare_runs(a: Results, b: Results) -> dict[str, pd.DataFrame]:
    """``{"leaderboard": ..., "records": ...}``: A and B values, ``delta`` (B - A), ``significant``, ``in``."""
    board = _side_by_side(
        _frame(a.leaderboard or [], BOARD_KEY, "worst_case_accuracy", "worst_case_low", "worst_case_high"),
        _frame(b.leaderboard or [], BOARD_KEY, "worst_case_accuracy", "worst_case_low", "worst_case_high"),
        BOARD_KEY, "worst_case_accuracy", "worst_case_low", "worst_case_high")
    records = _side_by_side(
        _frame(a.records, RECORD_KEY, "robust_accuracy", "robust_accuracy_low", "robust_accuracy_high"),
        _frame(b.records, RECORD_KEY, "robust_accuracy", "robust_accuracy_low", "robust_accuracy_high"),
        RECORD_KEY, "robust_accuracy", "robust_accuracy_low", "robust_accuracy_high")
    return {"leaderboard": board, "records": records}


def write_comparison(run_a: str | Path, run_b: str | Path, out: str | Path) -> Path:
    """Load two run folders, write ``compare.csv`` (per-attack rows), ``compare.json`` and ``index.html``."""
    from .reports.compare_html import render_comparison

    a, b = Results.load(run_a), Results.load(run_b)
    tables = compare_runs(a, b)
    out = Path(out)
    atomic_write_text(out / "compare.csv", tables["records"].to_csv(index=False))
    doc = {"a": {"path": str(run_a), "manifest": a.manifest}, "b": {"path": str(run_b), "manifest": b.manifest},
           **{k: json.loads(v.to_json(orient="records")) for k, v in tables.items()}}
    atomic_write_text(out / "compare.json", json.dumps(doc, indent=1))
    atomic_write_text(out / "index.html", render_comparison(a, b, tables, names=(str(run_a), str(run_b))))
    log.info("wrote comparison of %s and %s to %s", run_a, run_b, out)
    return out
