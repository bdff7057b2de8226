"""The self-contained HTML page of ``robustbench-gan compare``: leaderboard and per-attack differences of two runs,
worst-case curves of both, and which sanity flags each raised. Autoescaped like the report."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import plots
from .formats import MISSING, as_float, fmt_acc_ci, fmt_eps, fmt_text, sort_key
from .html import environment

if TYPE_CHECKING:
    from ..results import Results

log = logging.getLogger(__name__)

MAX_RECORD_ROWS = 200


def _pts(delta: Any) -> str:
    v = as_float(delta)
    return MISSING if v is None else f"{100 * v:+.1f}"


def _rows(df: pd.DataFrame, value: str, low: str, high: str, extra: list[str]) -> list[dict[str, Any]]:
    out = []
    for r in df.to_dict("records"):
        row = {k: fmt_text(r.get(k)) for k in extra}
        row.update(
            eps=fmt_eps(r.get("eps")), eps_sort=sort_key(r.get("eps")),
            a=fmt_acc_ci(r.get(f"{value}_a"), r.get(f"{low}_a"), r.get(f"{high}_a")), a_sort=sort_key(r.get(f"{value}_a")),
            b=fmt_acc_ci(r.get(f"{value}_b"), r.get(f"{low}_b"), r.get(f"{high}_b")), b_sort=sort_key(r.get(f"{value}_b")),
            delta=_pts(r.get("delta")), delta_sort=sort_key(r.get("delta")),
            significant="yes" if r.get("in") == "both" and bool(r.get("significant")) else "",
            where=fmt_text(r.get("in")),
        )
        if "norm" in row:
            row["norm"] = plots.norm_label(row["norm"])
        out.append(row)
    return out


def compare_curves(board: pd.DataFrame) -> list[dict[str, str]]:
    """Per model: worst-case accuracy vs ε, run A dashed and run B solid, one color per defense, 95% bands."""
    if board.empty:
        return []
    df = board.copy()
    df["_eps"] = pd.to_numeric(df["eps"], errors="coerce")
    out = []
    defenses = list(dict.fromkeys(df["defense"]))
    colors = {d: plots.PALETTE[i % len(plots.PALETTE)] for i, d in enumerate(defenses)}
    for (model, norm), panel in df.groupby(["model", "norm"], sort=False):
        fig = Figure(figsize=(6.4, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for defense, line in panel.groupby("defense", sort=False):
            line = line.sort_values("_eps")
            for side, style in (("a", "--"), ("b", "-")):
                acc = pd.to_numeric(line[f"worst_case_accuracy_{side}"], errors="coerce").to_numpy(float)
                ok = np.isfinite(acc)
                if not ok.any():
                    continue
                eps = line["_eps"].to_numpy(float)
                ax.plot(eps[ok], acc[ok], linestyle=style, marker="o", markersize=3.5, color=colors[defense],
                        label=f"{plots._text(defense)} ({side.upper()})")
                lo = pd.to_numeric(line[f"worst_case_low_{side}"], errors="coerce").to_numpy(float)[ok]
                hi = pd.to_numeric(line[f"worst_case_high_{side}"], errors="coerce").to_numpy(float)[ok]
                if ok.sum() > 1:
                    ax.fill_between(eps[ok], lo, hi, color=colors[defense], alpha=0.12, linewidth=0)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"ε ({plots.norm_label(str(norm))})")
        ax.set_ylabel("worst-case robust accuracy")
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
        title = f"{model} — {plots.norm_label(str(norm))}"
        ax.set_title(plots._text(title), fontsize=10)
        out.append({"title": title, "uri": plots.fig_to_data_uri(fig)})
    return out


def _flags(a: "Results", b: "Results") -> list[dict[str, str]]:
    def key(f: dict[str, Any]) -> tuple[str, ...]:
        return tuple(fmt_text(f.get(k)) for k in ("check", "model", "defense", "attack"))

    ka, kb = {key(f) for f in a.flags}, {key(f) for f in b.flags}
    rows = []
    for k in sorted(ka | kb):
        rows.append(dict(zip(("check", "model", "defense", "attack"), k),
                         where="both" if k in ka and k in kb else "only A" if k in ka else "only B"))
    return rows


def render_comparison(a: "Results", b: "Results", tables: dict[str, pd.DataFrame], *, names: tuple[str, str]) -> str:
    """One self-contained HTML page comparing runs ``a`` and ``b``."""
    board, records = tables["leaderboard"], tables["records"]
    try:
        curves = compare_curves(board)
    except Exception:  # a plotting failure must not cost the user the comparison
        log.exception("comparison curves failed; the page goes on without them")
        curves = []
    context = {
        "title_a": fmt_text(a.manifest.get("suite")), "title_b": fmt_text(b.manifest.get("suite")),
        "path_a": names[0], "path_b": names[1],
        "started_a": fmt_text(a.manifest.get("started")), "started_b": fmt_text(b.manifest.get("started")),
        "board": _rows(board, "worst_case_accuracy", "worst_case_low", "worst_case_high",
                       ["model", "defense", "norm"]),
        "records": _rows(records.head(MAX_RECORD_ROWS), "robust_accuracy", "robust_accuracy_low",
                         "robust_accuracy_high", ["model", "defense", "attack", "threat", "source"]),
        "n_records": len(records), "curves": curves, "flags": _flags(a, b),
    }
    return environment().get_template("compare.html").render(**context)
