"""How the reports write values for people: missing values, percentages with intervals, eps (``8/255``), numbers,
seconds; sortable table cells. No torch, no plotting: the HTML and the plots both import it."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

MISSING = "–"  # en dash, shown for None / NaN


def is_missing(value: Any) -> bool:
    """None, NaN, pd.NA/NaT and empty strings are missing."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def as_float(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    if is_missing(value) or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fmt_text(value: Any) -> str:
    return MISSING if is_missing(value) else str(value)


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.913 -> '91.3%'``."""
    v = as_float(value)
    return MISSING if v is None else f"{100.0 * v:.{digits}f}%"


def fmt_interval(low: Any, high: Any) -> str:
    """A fraction interval in percent points: ``(0.88, 0.937) -> '[88.0, 93.7]'``; '' if either end is missing."""
    lo, hi = as_float(low), as_float(high)
    return "" if lo is None or hi is None else f"[{100.0 * lo:.1f}, {100.0 * hi:.1f}]"


def fmt_acc_ci(value: Any, low: Any, high: Any) -> str:
    """``'91.3% [88.0, 93.7]'``; just the percentage when the interval is missing, '–' when the value is."""
    pct = fmt_pct(value)
    if pct == MISSING:
        return MISSING
    ci = fmt_interval(low, high)
    return f"{pct} {ci}" if ci else pct


def fmt_eps(value: Any) -> str:
    """ε for people: ``0.0313725 -> '8/255'``, ``0.3 -> '0.3'``, ``0.5 -> '0.5'``."""
    v = as_float(value)
    if v is None:
        return MISSING
    if v == 0:
        return "0"
    k = v * 255.0
    if round(v, 4) != v and abs(k - round(k)) < 1e-6 and 0 < round(k) < 255:
        return f"{round(k)}/255"
    return f"{v:.4g}"


def fmt_num(value: Any, sig: int = 4) -> str:
    """A number with ``sig`` significant digits; integers stay integers."""
    v = as_float(value)
    if v is None:
        return MISSING
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.{sig}g}"


def fmt_seconds(value: Any) -> str:
    v = as_float(value)
    if v is None:
        return MISSING
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def truthy(value: Any) -> bool | None:
    """Booleans as stored in JSON or read back from CSV; None when missing."""
    if is_missing(value):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y")
    return bool(value)


def fmt_targeted(targeted: Any, mode: Any) -> str:
    t = truthy(targeted)
    if t is None:
        return MISSING
    if not t:
        return "no"
    return f"yes ({mode})" if not is_missing(mode) else "yes"


def sort_key(value: Any) -> str:
    """The ``data-v`` attribute the sorting script compares: a plain number, or '' when missing."""
    v = as_float(value)
    return "" if v is None else repr(v)


def cell(text: str, sort: Any = None, num: bool = False, title: str = "") -> dict[str, Any]:
    return {"text": text, "sort": sort_key(sort) if num else None, "num": num, "title": title, "value": text,
            "ci": "", "badge": None}


def acc_cell(value: Any, low: Any, high: Any, title: str = "") -> dict[str, Any]:
    """An accuracy cell whose 95% interval can be shown on a line of its own (``value`` and ``ci``)."""
    out = cell(fmt_acc_ci(value, low, high), value, num=True, title=title)
    if out["text"] != MISSING:
        out.update(value=fmt_pct(value), ci=fmt_interval(low, high))
    return out
