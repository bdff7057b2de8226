"""The GAN: each class-conditional generator's quality metrics, and per generator its samples, losses and the
corner cases of the classifiers trained on it."""
from __future__ import annotations

import logging
from typing import Any

from .. import plots
from ..formats import as_float, cell, fmt_num, fmt_text, is_missing
from .base import Run, Section

log = logging.getLogger(__name__)


def build_gan(gan: list[dict[str, Any]]) -> dict[str, Any]:
    """GAN records as a plain table over the union of their keys."""
    columns: list[str] = []
    for rec in gan:
        columns.extend(k for k in rec if k not in columns)
    numeric = {c: all(as_float(rec.get(c)) is not None or is_missing(rec.get(c)) for rec in gan)
               and any(as_float(rec.get(c)) is not None for rec in gan) for c in columns}
    rows = [[cell(fmt_num(rec.get(c)), rec.get(c), num=True) if numeric[c] else cell(fmt_text(rec.get(c)))
             for c in columns] for rec in gan]
    return {"columns": [{"text": GAN_LABELS.get(c, c), "num": numeric[c]} for c in columns], "rows": rows}


GAN_LABELS = {"model": "Model", "defense": "Defense", "modes_captured": "Modes captured",
              "high_quality_fraction": "High-quality fraction", "class_kl": "Class KL (gen ‖ real)",
              "fid": "FID (reference CNN)", "conditional_accuracy": "Conditional accuracy"}


def _thousands(value: Any) -> str | None:
    return f"{int(value):,}" if isinstance(value, int) and value > 0 else None


def build_gan_details(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per trained generator: sample grid, loss curves and, per model, corner cases as images; failures are
    skipped (logged), never fatal."""
    out = []
    for d in details:
        users = d.get("used_by") or [{"model": d.get("model"), "defense": d.get("defense")}]
        entry: dict[str, Any] = {"title": ", ".join(f"{fmt_text(u.get('model'))} / {fmt_text(u.get('defense'))}"
                                                    for u in users), "corners": []}
        for key, fn, arg in (("grid", plots.gan_sample_grid, d.get("grid")),
                             ("losses", plots.gan_losses, d.get("losses"))):
            entry[key] = _safe_plot(fn, arg, key, entry["title"])
        cases = d.get("corner_cases") or []
        for c in cases if isinstance(cases, list) else [cases]:
            uri = _safe_plot(plots.corner_case_gallery, c, "corner cases", entry["title"])
            if uri:
                entry["corners"].append({"uri": uri, "classifier": fmt_text(c.get("classifier")),
                                         "fraction": as_float(c.get("fraction")), "n": _thousands(c.get("n"))})
        out.append(entry)
    return out


def _safe_plot(fn: Any, arg: Any, what: str, title: str) -> str | None:
    try:
        return fn(arg) if arg else None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        log.warning("GAN %s plot for %s skipped: %s", what, title, exc)
        return None


def build(run: Run) -> dict[str, Any] | None:
    if not run.results.gan:
        return None
    return {**build_gan(list(run.results.gan)), "details": build_gan_details(list(run.results.gan_details))}


SECTION = Section("gan", "GAN", build, "sections/gan.html")
