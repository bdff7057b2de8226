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
    """GAN records as a plain table over the union of their keys (a record from before packing and unrolling
    existed, e.g. a cached section of a plain GAN, had neither: it is pack 1, unroll 0)."""
    if any("pack" in rec or "unroll" in rec for rec in gan):
        gan = [{"model": r.get("model"), "defense": r.get("defense"), "pack": 1, "unroll": 0, **r} for r in gan]
    columns: list[str] = []
    for rec in gan:
        columns.extend(k for k in rec if k not in columns)
    numeric = {c: all(as_float(rec.get(c)) is not None or is_missing(rec.get(c)) for rec in gan)
               and any(as_float(rec.get(c)) is not None for rec in gan) for c in columns}
    rows = [[cell(fmt_num(rec.get(c)), rec.get(c), num=True) if numeric[c] else cell(fmt_text(rec.get(c)))
             for c in columns] for rec in gan]
    return {"columns": [{"text": GAN_LABELS.get(c, c), "num": numeric[c]} for c in columns], "rows": rows}


GAN_LABELS = {"model": "Model", "defense": "Defense", "pack": "Packing (PacGAN)", "unroll": "Unrolled steps",
              "modes_captured": "Modes captured", "high_quality_fraction": "High-quality fraction",
              "class_kl": "Reverse KL over classes (gen ‖ real)",
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


def build_per_class(run: Run) -> dict[str, Any] | None:
    """Clean and worst-case robust accuracy per true class and classifier (one column per norm and eps), from the
    per-sample results; None when the run has none."""
    from ...samples import per_class

    rows = per_class(run.results.samples) if run.results.samples is not None else []
    if not rows:
        return None
    names: list[str] = []
    for d in run.results.gan_details or []:
        names = list((d.get("grid") or {}).get("class_names") or [])
        if names:
            break
    budgets = sorted({b for r in rows for b in r["robust"]}, key=lambda b: (b[0], b[1]))
    columns = [{"text": "Model", "num": False}, {"text": "Defense", "num": False}, {"text": "Class", "num": False},
               {"text": "n", "num": True}, {"text": "Clean accuracy", "num": True}]
    columns += [{"text": f"Robust, {norm} ε={fmt_num(eps)}", "num": True} for norm, eps in budgets]
    table = []
    for r in rows:
        label = names[r["class"]] if r["class"] < len(names) else str(r["class"])
        row = [cell(fmt_text(r["model"])), cell(fmt_text(r["defense"])), cell(fmt_text(label)),
               cell(str(r["n"]), r["n"], num=True), cell(fmt_num(r["clean_accuracy"]), r["clean_accuracy"], num=True)]
        row += [cell(fmt_num(r["robust"].get(b)), r["robust"].get(b), num=True) for b in budgets]
        table.append(row)
    return {"columns": columns, "rows": table}


def build(run: Run) -> dict[str, Any] | None:
    if not run.results.gan:
        return None
    return {**build_gan(list(run.results.gan)), "details": build_gan_details(list(run.results.gan_details)),
            "per_class": build_per_class(run)}


SECTION = Section("gan", "GAN", build, "sections/gan.html")
